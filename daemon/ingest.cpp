#include "ingest.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>

#include "event_keys.h"
#include "log.h"
#include "sources/gemini.h"
#include "sources/identity.h"
#include "sources/jsonl.h"
#include "store/schema.h"
#include "store/store.h"
#include "util/unique_fd.h"

namespace etld::daemon {

using sources::Provider;
using sources::UsageRecord;

namespace {

// How far a line longer than the step is scanned per read while looking for
// its end: the line itself is never held when it is over kMaxLineBytes.
constexpr std::uint64_t kScanPieceBytes = 64 * 1024;

std::uint64_t fnv1a(std::string_view bytes) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

// A step that stops inside a file, between the lines of one streamed Claude
// response (a line per content block, each with the message's id), would
// write the response from its first lines and, in the next step, revise it
// from the rest: a delete, an insert and a retraction, and in a first ingest
// a span the marts must seek (docs/performance.md, change 48). So when a
// step's budget cuts its read of a file and the lines read end with such a
// run, the step stops before the run, and the next step reads it whole. The
// lines dropped all carry a message id, which the Claude parser's state does
// not count: the state after the chunk is the state before them.
void stopBeforeTrailingResponse(std::string_view chunk, std::uint64_t start,
                                sources::ChunkResult& parsed) {
    auto& records = parsed.records;
    if (records.empty() || records.back().messageId.empty()) return;
    // The run must be the chunk's last lines, one record each.
    auto lineStart = [&](std::uint64_t end) {  // of the line whose '\n' is at `end`
        const auto nl = end == 0 ? std::string_view::npos : chunk.rfind('\n', end - 1);
        return nl == std::string_view::npos ? std::uint64_t{0} : nl + 1;
    };
    std::uint64_t lineEnd = parsed.consumedBytes - 1;  // the last line's '\n'
    std::size_t first = records.size();
    while (first > 0) {
        const sources::UsageRecord& r = records[first - 1];
        const std::uint64_t at = lineStart(lineEnd);
        if (r.messageId != records.back().messageId || r.sourceOffset != start + at) break;
        --first;
        if (at == 0) return;  // the whole chunk is the response: read it as it is
        lineEnd = at - 1;
    }
    if (first == records.size()) return;
    parsed.consumedBytes = records[first].sourceOffset - start;
    records.erase(records.begin() + static_cast<std::ptrdiff_t>(first), records.end());
}

std::int64_t mtimeNs(const struct stat& st) {
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Reads up to n bytes at offset into `into`; returns how many, fewer only
// at end of file.
Result<std::uint64_t> preadFully(int fd, char* into, std::uint64_t offset, std::uint64_t n) {
    std::uint64_t got = 0;
    while (got < n) {
        const ssize_t r = ::pread(fd, into + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return Error{"read", std::strerror(errno)};
        }
        if (r == 0) break;
        got += static_cast<std::uint64_t>(r);
    }
    return got;
}

// A small read (a fingerprint, a piece of a line over the budget) as a
// string of its own.
Result<std::string> readAt(int fd, std::uint64_t offset, std::uint64_t n) {
    std::string out(n, '\0');
    auto got = preadFully(fd, out.data(), offset, n);
    if (!got) return got.error();
    out.resize(*got);
    return out;
}

struct StoredEvent {
    std::int64_t id = 0;
    std::int64_t projectId = 0;
    UsageRecord record;  // the fields the winner rules and the change test compare
};

bool sameStoredFields(const UsageRecord& a, std::int64_t projectA, const UsageRecord& b,
                      std::int64_t projectB) {
    return projectA == projectB && a.sessionId == b.sessionId && a.tsText == b.tsText &&
           a.model == b.model && a.speed == b.speed && a.inputTokens == b.inputTokens &&
           a.outputTokens == b.outputTokens && a.cacheReadTokens == b.cacheReadTokens &&
           a.cacheCreateTokens == b.cacheCreateTokens && a.reasoningTokens == b.reasoningTokens &&
           a.cacheCreate1hTokens == b.cacheCreate1hTokens && a.costUsd == b.costUsd &&
           a.costSource == b.costSource && a.rawExtras == b.rawExtras && a.role == b.role;
}

bool sameBookkeeping(const UsageRecord& a, const UsageRecord& b) {
    return a.sourcePath == b.sourcePath && a.sourceOffset == b.sourceOffset &&
           a.isSidechain == b.isSidechain && a.hasSpeed == b.hasSpeed &&
           a.messageId == b.messageId && a.requestId == b.requestId;
}

constexpr std::string_view kSelectStoredEvent =
    "SELECT id, project_id, session_id, ts, model, speed, input_tokens, output_tokens, "
    "cache_read_tokens, cache_create_tokens, reasoning_tokens, cost_usd, cost_source, "
    "COALESCE(raw_extras, ''), cache_create_1h_tokens, source_path, source_offset, is_sidechain, "
    "has_speed, COALESCE(message_id, ''), COALESCE(request_id, ''), role FROM usage_events ";
const std::string kSelectByKey = std::string(kSelectStoredEvent) + "WHERE event_key = ?1";
// A candidate of the in-memory key index: the row only if it holds the key.
const std::string kSelectByIdAndKey = std::string(kSelectStoredEvent) + "WHERE id = ?2 AND event_key = ?1";

// Steps `s` (key bound as ?1, and a candidate id as ?2 when `keys` is set)
// to the row of the key; false when there is none. `s` is left to reset.
Result<bool> stepToKey(store::Statement& s, const EventKeyIndex* keys, std::string_view key) {
    if (!keys) {
        s.bindView(1, key);
        return s.step();
    }
    Status failed;
    const bool found = keys->findIf(key, [&](std::int64_t id) {
        s.reset();  // also clears the bindings
        s.bindView(1, key).bind(2, id);
        auto row = s.step();
        if (!row) failed = row.error();
        return !row || *row;
    });
    if (!failed) return failed.error();
    return found;
}

Result<std::optional<StoredEvent>> findByKey(store::Connection& db, const EventKeyIndex* keys,
                                             Provider provider, const std::string& key) {
    auto stmt = db.cached(keys ? kSelectByIdAndKey : kSelectByKey);
    if (!stmt) return stmt.error();
    store::Statement& s = **stmt;
    auto row = stepToKey(s, keys, key);  // s is reset below, on every path
    if (!row) {
        s.reset();
        return row.error();
    }
    if (!*row) {
        s.reset();
        return std::optional<StoredEvent>();
    }
    StoredEvent e;
    e.id = s.columnInt(0);
    e.projectId = s.columnInt(1);
    UsageRecord& r = e.record;
    r.provider = provider;
    r.eventKey = key;
    r.sessionId = s.columnText(2);
    r.tsText = s.columnText(3);
    r.model = s.columnText(4);
    r.speed = s.columnText(5) == "fast" ? sources::Speed::Fast : sources::Speed::Standard;
    r.inputTokens = s.columnInt(6);
    r.outputTokens = s.columnInt(7);
    r.cacheReadTokens = s.columnInt(8);
    r.cacheCreateTokens = s.columnInt(9);
    r.reasoningTokens = s.columnInt(10);
    r.costUsd = s.columnDouble(11);
    r.costSource = sources::costSourceFromName(s.columnText(12)).value_or(sources::CostSource::Unknown);
    r.rawExtras = s.columnText(13);
    r.cacheCreate1hTokens = s.columnInt(14);
    r.sourcePath = s.columnText(15);
    r.sourceOffset = static_cast<std::uint64_t>(s.columnInt(16));
    r.isSidechain = s.columnInt(17) != 0;
    r.hasSpeed = s.columnInt(18) != 0;
    r.messageId = s.columnText(19);
    r.requestId = s.columnText(20);
    r.role = s.columnText(21);
    s.reset();
    return std::optional<StoredEvent>(std::move(e));
}

Status insertRecord(store::Connection& db, EventKeyIndex* keys, const UsageRecord& r,
                    const std::string& key, std::int64_t projectId) {
    auto stmt = db.cached(
        "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, speed, "
        "input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, reasoning_tokens, "
        "cost_usd, cost_source, role, raw_extras, event_key, cache_create_1h_tokens, source_path, "
        "source_offset, is_sidechain, has_speed, message_id, request_id) VALUES (?1, ?2, ?3, ?4, "
        "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
        "?23, ?24)");
    if (!stmt) return stmt.error();
    // The record and the key outlive run(), which resets the statement.
    store::Statement& s = **stmt;
    s.bindView(1, sources::providerName(r.provider)).bind(2, projectId).bindView(3, r.sessionId);
    s.bindView(4, r.tsText).bindView(5, r.day).bindView(6, r.model);
    s.bindView(7, sources::speedName(r.speed));
    s.bind(8, r.inputTokens).bind(9, r.outputTokens).bind(10, r.cacheReadTokens);
    s.bind(11, r.cacheCreateTokens).bind(12, r.reasoningTokens).bind(13, r.costUsd);
    s.bindView(14, sources::costSourceName(r.costSource)).bindView(15, r.role);
    if (r.rawExtras.empty()) s.bindNull(16);
    else s.bindView(16, r.rawExtras);
    s.bindView(17, key).bind(18, r.cacheCreate1hTokens).bindView(19, r.sourcePath);
    s.bind(20, static_cast<std::int64_t>(r.sourceOffset)).bind(21, r.isSidechain ? 1 : 0);
    s.bind(22, r.hasSpeed ? 1 : 0);
    if (r.messageId.empty()) s.bindNull(23);
    else s.bindView(23, r.messageId);
    if (r.requestId.empty()) s.bindNull(24);
    else s.bindView(24, r.requestId);
    if (auto st = s.run(); !st) return st;
    if (keys) keys->add(key, db.lastInsertRowid());
    return {};
}

Status deleteEvent(store::Connection& db, std::int64_t id) {
    auto stmt = db.cached("DELETE FROM usage_events WHERE id = ?1");
    if (!stmt) return stmt.error();
    (*stmt)->bind(1, id);
    return (*stmt)->run();
}

Status updateBookkeeping(store::Connection& db, std::int64_t id, const UsageRecord& r) {
    auto stmt = db.cached(
        "UPDATE usage_events SET source_path = ?2, source_offset = ?3, is_sidechain = ?4, "
        "has_speed = ?5, message_id = NULLIF(?6, ''), request_id = NULLIF(?7, '') WHERE id = ?1");
    if (!stmt) return stmt.error();
    store::Statement& s = **stmt;
    s.bind(1, id).bind(2, r.sourcePath).bind(3, static_cast<std::int64_t>(r.sourceOffset));
    s.bind(4, r.isSidechain ? 1 : 0).bind(5, r.hasSpeed ? 1 : 0).bind(6, r.messageId);
    s.bind(7, r.requestId);
    return s.run();
}

// Claude rule 3: is there a non-sidechain record this sidechain record
// belongs to — one with its rule-2 key, or one of its session with its
// message.id (in whichever event that record ended up)?
Result<bool> sidechainHasOwner(store::Connection& db, const EventKeyIndex* keys,
                               const UsageRecord& r) {
    auto bySession = db.cached(
        "SELECT 1 FROM claude_message_sessions WHERE message_id = ?1 AND session_id = ?2");
    if (!bySession) return bySession.error();
    (*bySession)->bind(1, r.messageId).bind(2, r.sessionId);
    auto row = (*bySession)->step();
    if (!row) return row.error();
    (*bySession)->reset();
    if (*row || r.requestId.empty()) return *row;
    auto byKey = db.cached(keys ? "SELECT 1 FROM usage_events WHERE id = ?2 AND event_key = ?1 "
                                  "AND is_sidechain = 0"
                                : "SELECT 1 FROM usage_events WHERE event_key = ?1 AND is_sidechain = 0");
    if (!byKey) return byKey.error();
    const std::string key = sources::claudeMessageKey(r.messageId, r.requestId);
    auto keyRow = stepToKey(**byKey, keys, key);
    (*byKey)->reset();
    return keyRow;
}

Status rememberMessageSession(store::Connection& db, const UsageRecord& r) {
    auto stmt = db.cached(
        "INSERT INTO claude_message_sessions (message_id, session_id) VALUES (?1, ?2) "
        "ON CONFLICT DO NOTHING");
    if (!stmt) return stmt.error();
    (*stmt)->bind(1, r.messageId).bind(2, r.sessionId);
    return (*stmt)->run();
}

// Claude rule 3, the other way: sidechain-only events a non-sidechain record
// absorbs. Returns how many it merged away.
Result<std::int64_t> mergeSidechains(store::Connection& db, const UsageRecord& r,
                                     const std::string& key) {
    auto stmt = db.cached(
        "SELECT id FROM usage_events WHERE message_id = ?1 AND is_sidechain = 1 "
        "AND (session_id = ?2 OR (?3 <> '' AND request_id = ?3)) AND event_key <> ?4");
    if (!stmt) return stmt.error();
    store::Statement& s = **stmt;
    s.bind(1, r.messageId).bind(2, r.sessionId).bind(3, r.requestId).bind(4, key);
    std::vector<std::int64_t> ids;
    for (;;) {
        auto row = s.step();
        if (!row) return row.error();
        if (!*row) break;
        ids.push_back(s.columnInt(0));
    }
    s.reset();
    for (auto id : ids)
        if (auto st = deleteEvent(db, id); !st) return st.error();
    return static_cast<std::int64_t>(ids.size());
}

struct ApplyOutcome {
    std::int64_t changed = 0;
    std::int64_t merged = 0;
};

// A record's own event against the store, by the identity and winner rules:
// inserted when its key is new, written again when it wins over the stored
// record and a stored field changes.
Status applyEvent(store::Connection& db, EventKeyIndex* keys, const UsageRecord& r,
                  std::int64_t projectId, ApplyOutcome& out) {
    const std::string& key = r.eventKey;
    if (r.provider == Provider::Claude && !r.messageId.empty() && r.isSidechain) {
        auto owned = sidechainHasOwner(db, keys, r);
        if (!owned) return owned.error();
        if (*owned) return {};  // it can never win there: adds nothing
    }
    auto stored = findByKey(db, keys, r.provider, key);
    if (!stored) return stored.error();
    if (!*stored) {
        if (auto st = insertRecord(db, keys, r, key, projectId); !st) return st;
        out.changed = 1;
        return {};
    }
    const StoredEvent& e = **stored;
    const bool sameSource = e.record.sourcePath == r.sourcePath && e.record.sourceOffset == r.sourceOffset;
    // A re-read of the same line (a rewrite in place) is the truth about it.
    const bool wins = sources::betterRecord(r, e.record) ||
                      (sameSource && !sources::betterRecord(e.record, r));
    if (!wins) return {};
    if (!sameStoredFields(r, projectId, e.record, e.projectId)) {
        if (auto st = deleteEvent(db, e.id); !st) return st;
        if (auto st = insertRecord(db, keys, r, key, projectId); !st) return st;
        out.changed = 1;
    } else if (!sameBookkeeping(r, e.record)) {
        if (auto st = updateBookkeeping(db, e.id, r); !st) return st;
    }
    return {};
}

// Whether the non-sidechain Claude record `r` has the message-session row
// and sidechain merge of `previous`, the record applied just before it: a
// non-sidechain record of the same message, session and request (hence of
// the same key). Its merge would find nothing, as only a sidechain record
// adds sidechain events, and the row is there. A streamed response's chunks
// are such runs (half of Claude's records in the benchmark corpus).
bool repeatsMessageOf(const UsageRecord& r, const UsageRecord* previous) {
    return previous != nullptr && previous->provider == r.provider && !previous->isSidechain &&
           previous->messageId == r.messageId && previous->sessionId == r.sessionId &&
           previous->requestId == r.requestId;
}

// One record against the store. A record `superseded` by a better record of
// its key in the same step (a streamed response's earlier chunks, a repeated
// token count) cannot be the stored winner once the step is applied, so its
// event is not written only to be revised a few records later; what it
// implies beyond its own event (the sessions its message appears in, the
// sidechain events it absorbs) is applied all the same, unless the record
// applied just before it (`previous`) did exactly that.
Result<ApplyOutcome> applyRecord(store::Connection& db, EventKeyIndex* keys, const UsageRecord& r,
                                 std::int64_t projectId, bool superseded, const UsageRecord* previous) {
    ApplyOutcome out;
    if (!superseded)
        if (auto st = applyEvent(db, keys, r, projectId, out); !st) return st.error();
    if (r.provider == Provider::Claude && !r.messageId.empty() && !r.isSidechain &&
        !repeatsMessageOf(r, previous)) {
        if (auto st = rememberMessageSession(db, r); !st) return st.error();
        auto merged = mergeSidechains(db, r, r.eventKey);
        if (!merged) return merged.error();
        out.merged = *merged;
    }
    return out;
}

}  // namespace

// Storage for a step's reads, reused from file to file: a string per read
// was zero-filled before pread overwrote it, 4% of a first ingest's
// instructions. A read's bytes are valid until the next read.
class ReadBuffer {
public:
    Result<std::string_view> read(int fd, std::uint64_t offset, std::uint64_t n) {
        if (n > capacity_) {
            data_.reset(new char[n]);  // uninitialized: pread fills what is used
            capacity_ = n;
        }
        auto got = preadFully(fd, data_.get(), offset, n);
        if (!got) return got.error();
        return std::string_view(data_.get(), *got);
    }

private:
    std::unique_ptr<char[]> data_;
    std::uint64_t capacity_ = 0;
};

// One file of a step, as planned on the writer thread: a copy of what the
// read needs, so the read can run on the helper thread.
struct IngestEngine::ReadItem {
    FileEntry* file = nullptr;  // the writer thread's handle; the read never follows it
    std::string path;
    Provider provider = Provider::Claude;
    std::uint32_t rootIndex = 0;
    std::string relPath;
    bool geminiJson = false;
    std::int64_t seenSize = 0, seenMtimeNs = 0;
    std::uint64_t start = 0;  // 0 when read from the start
    std::string parserState;
    std::int64_t linesSkipped = 0;
    std::uint64_t headHash = 0, headLen = 0;
    std::uint64_t budget = 0;        // the step's bytes left at its turn in the plan
    std::uint64_t plannedBytes = 0;  // what the plan counted for it
};

enum class IngestEngine::ReadOutcome { Read, Failed };

// One file of a step, as read: its planned checkpoint change.
struct IngestEngine::PendingFile {
    FileEntry* file = nullptr;
    ReadOutcome outcome = ReadOutcome::Read;
    std::string error;  // why the file could not be opened or read
    std::uint64_t offset = 0;
    std::uint64_t headHash = 0, headLen = 0, tailHash = 0, tailLen = 0;
    std::string parserState;
    std::int64_t linesSkipped = 0;
    std::vector<UsageRecord> records;
    // Per record: beaten by a better record of its key in the same step
    // (sources::betterRecord), so its own event is not written.
    std::vector<bool> superseded;
    bool stillDirty = false;
    bool parseFailed = false;  // Gemini .json caught mid-write
    // For the writer thread: bytes read (all of them; of the step's budget).
    std::int64_t bytesRead = 0, stepBytes = 0;
    std::string warning, info;  // lines to log
};

struct IngestEngine::ReadStep {
    std::vector<PendingFile> files;  // in files_ order
};

// The steps after the one being written, planned and read on a helper thread
// in files_ order, at most kReadAheadSteps of them waiting for the writer.
//
// The helper plans each step from where the steps before it left each file
// (`progress_`), as their commits will leave it, and from files_ for the
// files no step has read yet; so the plans are the ones the writer would make
// after each commit. That is what makes it safe to share files_: within a
// run the writer thread changes only entries of files some step read (taking
// up and committing those steps), and the helper reads only the other
// entries' fields; the stat phase, which changes any entry, runs with the
// helper stopped. Steps not taken up change nothing, so dropping them (a
// failed step, a cycle with something to stat) loses nothing.
class IngestEngine::ReadAhead {
public:
    // Starts the helper.
    explicit ReadAhead(IngestEngine& engine)
        : engine_(engine), cursor_(engine.readOrder_.begin()), thread_(&ReadAhead::run, this) {}
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;
    // The helper ends after the step it is reading.
    ~ReadAhead() {
        {
            std::lock_guard lock(mutex_);
            stopWanted_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }
    // Whether next() would return at once.
    bool ready() {
        std::lock_guard lock(mutex_);
        return !ready_.empty() || ended_;
    }
    // Writer thread, waiting for a step: waits until the step is read, or
    // until a small file of it is next (the writer's buffer stays small),
    // and reads that file. False when the step came first.
    bool helpRead() {
        StepInProgress* work = nullptr;
        std::size_t i = 0;
        {
            std::unique_lock lock(mutex_);
            auto helpable = [this] {
                return reading_ != nullptr && canTake(*reading_) &&
                       reading_->items[reading_->next].plannedBytes <= kHelpReadMaxBytes;
            };
            changed_.wait(lock, [&] { return !ready_.empty() || ended_ || helpable(); });
            if (!helpable()) return false;
            work = reading_;
            i = work->next++;
        }
        readTaken(*work, i, writerBuffer_);
        return true;
    }
    // The next step, once read; nullopt when nothing is left.
    std::optional<ReadStep> next() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return !ready_.empty() || ended_; });
        if (ready_.empty()) {
            if (failure_) std::rethrow_exception(failure_);
            return std::nullopt;
        }
        ReadStep step = std::move(ready_.front());
        ready_.pop_front();
        lock.unlock();
        changed_.notify_all();
        return step;
    }
    // A step written: its records are freed on the helper thread (they were
    // a few percent of the writer's time), or here once the helper ended.
    void recycle(ReadStep spent) {
        std::lock_guard lock(mutex_);
        if (!ended_) spent_.push_back(std::move(spent));
    }

private:
    // Where the steps read so far leave a file.
    struct Progress {
        bool done = false;  // read to its end, failed, or a .json caught mid-write
        std::uint64_t offset = 0;
        std::string parserState;
        std::int64_t linesSkipped = 0;
        std::uint64_t headHash = 0, headLen = 0;
    };

    void run() {
        try {
            for (;;) {
                std::vector<ReadStep> spent;
                {
                    std::unique_lock lock(mutex_);
                    changed_.wait(lock, [this] { return stopWanted_ || ready_.size() < kReadAheadSteps; });
                    if (stopWanted_) break;
                    spent.swap(spent_);
                }
                spent.clear();
                std::vector<ReadItem> items = plan();
                if (items.empty()) break;
                ReadStep step = readShared(std::move(items));
                note(step);
                std::lock_guard lock(mutex_);
                ready_.push_back(std::move(step));
                changed_.notify_all();
            }
        } catch (...) {
            std::lock_guard lock(mutex_);
            failure_ = std::current_exception();
        }
        std::lock_guard lock(mutex_);
        ended_ = true;
        changed_.notify_all();
    }

    // The files the next step reads, in files_ order, and from where. Files
    // are taken while the step's bytes, counted as the read will count them
    // if the files are as stat saw them, are below kStepBytes: the same files
    // as one step reading in turn.
    std::vector<ReadItem> plan() {
        std::vector<ReadItem> items;
        std::uint64_t budget = kStepBytes;
        bool firstOpen = true;
        for (auto entry = cursor_; entry != engine_.readOrder_.end(); ++entry) {
            FileEntry& f = **entry;
            ReadItem item;
            // A file some step read is looked up here before any of its
            // fields is read: the writer may be committing them.
            if (auto it = progress_.find(&f); it != progress_.end()) {
                const Progress& p = it->second;
                if (p.done) continue;
                item.start = p.offset;
                item.parserState = p.parserState;
                item.linesSkipped = p.linesSkipped;
                item.headHash = p.headHash;
                item.headLen = p.headLen;
            } else {
                if (!f.dirty) continue;
                item.start = f.readFromStart ? 0 : f.offset;
                item.parserState = f.readFromStart ? std::string() : f.parserState;
                item.linesSkipped = f.readFromStart ? 0 : f.linesSkipped;
                item.headHash = f.headHash;
                item.headLen = f.headLen;
            }
            // Files only get done within a run (a stat is what makes one
            // dirty), so the next plan starts here.
            if (firstOpen) cursor_ = entry;
            firstOpen = false;
            if (budget == 0) break;
            item.file = &f;
            item.path = f.path;
            item.provider = f.provider;
            item.rootIndex = f.rootIndex;
            item.relPath = f.relPath;
            item.geminiJson = f.geminiJson;
            item.seenSize = f.seenSize;
            item.seenMtimeNs = f.seenMtimeNs;
            // The bytes readStep takes from the budget: a .json whole (none
            // when over the limit, as it is skipped unread), a .jsonl from
            // its start.
            const auto size = static_cast<std::uint64_t>(f.seenSize);
            std::uint64_t bytes = size > item.start ? size - item.start : 0;
            if (f.geminiJson) bytes = size > sources::kMaxGeminiJsonBytes ? 0 : size;
            item.budget = budget;
            item.plannedBytes = std::min(budget, bytes);
            budget -= item.plannedBytes;
            items.push_back(std::move(item));
        }
        if (firstOpen) cursor_ = engine_.readOrder_.end();
        return items;
    }

    struct StepInProgress {
        std::vector<ReadItem> items;
        ReadStep step;              // files[i] is items[i], as read
        std::size_t next = 0;       // files taken, and the next to take; guarded by mutex_
        std::size_t done = 0;       // files read (or failed); guarded by mutex_
        std::exception_ptr failure;  // the first file that failed; guarded by mutex_
    };

    // A step's files, read in turn by the helper and by the writer while it
    // waits (helpRead), each taking the next one.
    ReadStep readShared(std::vector<ReadItem> items) {
        StepInProgress work;
        work.items = std::move(items);
        work.step.files.resize(work.items.size());
        {
            std::lock_guard lock(mutex_);
            reading_ = &work;
        }
        changed_.notify_all();
        for (;;) {
            std::size_t i = 0;
            {
                std::lock_guard lock(mutex_);
                if (!canTake(work)) break;
                i = work.next++;
            }
            changed_.notify_all();  // the file after it may be one the writer can take
            readTaken(work, i, buffer_);
        }
        {
            // No file is taken any more; those the writer took, it is
            // reading now: `work` must outlive them.
            std::unique_lock lock(mutex_);
            reading_ = nullptr;
            changed_.wait(lock, [&] { return work.done == work.next; });
        }
        if (work.failure) std::rethrow_exception(work.failure);
        markSuperseded(work.step);
        return std::move(work.step);
    }

    // mutex_ held: a file is left to take, and none failed.
    static bool canTake(const StepInProgress& work) {
        return work.next < work.items.size() && !work.failure;
    }

    // Reads file `i` of `work`, taken by this thread; a failure (an
    // exception) is kept for the helper to raise once the step is done.
    void readTaken(StepInProgress& work, std::size_t i, ReadBuffer& buffer) {
        std::exception_ptr failure;
        try {
            readFile(work.items[i], work.step.files[i], buffer, engine_.prices_, engine_.beforeRead_);
        } catch (...) {
            failure = std::current_exception();
        }
        {
            std::lock_guard lock(mutex_);
            ++work.done;
            if (failure && !work.failure) work.failure = failure;
        }
        changed_.notify_all();
    }

    // Where `step` leaves its files, as its commit will.
    void note(const ReadStep& step) {
        for (const PendingFile& p : step.files) {
            Progress& progress = progress_[p.file];
            progress.done = p.outcome == ReadOutcome::Failed || p.parseFailed || !p.stillDirty;
            progress.offset = p.offset;
            progress.parserState = p.parserState;
            progress.linesSkipped = p.linesSkipped;
            progress.headHash = p.headHash;
            progress.headLen = p.headLen;
        }
    }

    // The largest file the writer helps with: its buffer, kept between
    // reads, stays this small (the RSS limit has little room left).
    static constexpr std::uint64_t kHelpReadMaxBytes = 512 * 1024;

    IngestEngine& engine_;
    ReadBuffer buffer_;        // the helper's: at most a step's budget, or one line over it
    ReadBuffer writerBuffer_;  // the writer's, in helpRead
    StepInProgress* reading_ = nullptr;  // guarded by mutex_; the helper's stack
    // The helper's alone.
    std::unordered_map<const FileEntry*, Progress> progress_;
    std::set<FileEntry*, ReadOrderLess>::iterator cursor_;  // no open file before it
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<ReadStep> ready_;  // guarded by mutex_, as are spent_ and the flags
    std::vector<ReadStep> spent_;
    bool stopWanted_ = false;
    bool ended_ = false;     // the helper has returned
    std::exception_ptr failure_;
    std::thread thread_;  // last: it starts in the constructor, once the rest is built
};

IngestEngine::IngestEngine(std::vector<ProviderRoots> roots, const sources::PriceTable& prices,
                           const Clock& clock)
    : roots_(std::move(roots)), prices_(prices), clock_(clock) {
    for (const auto& pr : roots_)
        for (auto& d : scanDirs(pr)) scanDirs_.push_back(std::move(d));
}

IngestEngine::~IngestEngine() = default;

void IngestEngine::dropReadAhead() { readAhead_.reset(); }

void IngestEngine::setBeforeReadForTest(std::function<void(const std::string& path)> hook) {
    dropReadAhead();  // its helper calls the hook
    beforeRead_ = std::move(hook);
}

std::vector<ScanDir> IngestEngine::allScanDirs() const { return scanDirs_; }

Status IngestEngine::load(store::Connection& db) {
    auto stmt = db.prepare(
        "SELECT path, provider, rel_path, dev, ino, size, mtime_ns, offset, head_hash, head_len, "
        "tail_hash, tail_len, parser_state, lines_skipped FROM file_checkpoints");
    if (!stmt) return stmt.error();
    for (;;) {
        auto row = stmt->step();
        if (!row) return row.error();
        if (!*row) break;
        FileEntry f;
        f.path = stmt->columnText(0);
        f.provider = sources::providerFromName(stmt->columnText(1)).value_or(Provider::Claude);
        const std::string rel = stmt->columnText(2);  // "<root>/<relative>"
        const auto slash = rel.find('/');
        f.rootIndex = static_cast<std::uint32_t>(std::stoul(rel.substr(0, slash)));
        f.relPath = rel.substr(slash + 1);
        f.geminiJson = f.provider == Provider::Gemini && f.path.size() > 5 &&
                       f.path.compare(f.path.size() - 5, 5, ".json") == 0;
        f.checkpointed = true;
        f.dev = static_cast<std::uint64_t>(stmt->columnInt(3));
        f.ino = static_cast<std::uint64_t>(stmt->columnInt(4));
        f.size = stmt->columnInt(5);
        f.mtimeNs = stmt->columnInt(6);
        f.offset = static_cast<std::uint64_t>(stmt->columnInt(7));
        f.headHash = static_cast<std::uint64_t>(stmt->columnInt(8));
        f.headLen = static_cast<std::uint64_t>(stmt->columnInt(9));
        f.tailHash = static_cast<std::uint64_t>(stmt->columnInt(10));
        f.tailLen = static_cast<std::uint64_t>(stmt->columnInt(11));
        f.parserState = stmt->columnText(12);
        f.linesSkipped = stmt->columnInt(13);
        addFile(std::move(f));
    }
    recountFiles();
    return {};
}

// Source paths compare as sourcePathOf's strings would: "<root>/" ends in
// the one character no root index has, so two different ones differ before
// either ends, and decide alone.
bool IngestEngine::ReadOrderLess::operator()(const FileEntry* a, const FileEntry* b) const {
    if (a->provider != b->provider) return a->provider < b->provider;
    if (a->rootIndex != b->rootIndex)
        return sources::sourcePathOf(a->rootIndex, "") < sources::sourcePathOf(b->rootIndex, "");
    return std::tie(a->relPath, a->path) < std::tie(b->relPath, b->path);
}

IngestEngine::FileEntry& IngestEngine::addFile(FileEntry f) {
    auto [it, inserted] = files_.emplace(f.path, std::move(f));
    if (inserted) readOrder_.insert(&it->second);
    return it->second;
}

const ScanDir* IngestEngine::scanDirFor(const std::string& path) const {
    const ScanDir* best = nullptr;
    for (const auto& d : scanDirs_) {
        if (path.size() > d.path.size() && path.compare(0, d.path.size(), d.path) == 0 &&
            path[d.path.size()] == '/' && (!best || d.path.size() > best->path.size()))
            best = &d;
    }
    return best;
}

void IngestEngine::walkDirectory(const ScanDir& dir, const std::string& path,
                                 std::set<std::string>& seen) {
    DIR* d = ::opendir(path.c_str());
    if (!d) {
        if (errno != ENOENT && errno != ENOTDIR) {
            const std::string msg = "cannot list " + path + ": " + std::strerror(errno);
            if (lastError_[dir.provider] != msg) log::warning(msg + ", skipping");
            lastError_[dir.provider] = msg;
        }
        return;
    }
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(d)) {
        const char* name = e->d_name;
        if (name[0] == '.') continue;  // ., .., and hidden files the agents keep
        const std::string child = path + "/" + name;
        unsigned char type = e->d_type;
        if (type == DT_UNKNOWN) {
            struct stat st {};
            if (::lstat(child.c_str(), &st) != 0) continue;
            type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR) subdirs.push_back(child);
        else if (type == DT_REG) considerFile(dir, child, seen);
    }
    ::closedir(d);
    for (const auto& s : subdirs) walkDirectory(dir, s, seen);
}

void IngestEngine::considerFile(const ScanDir& dir, const std::string& path,
                                std::set<std::string>& seen) {
    const auto slash = path.find_last_of('/');
    const std::string name = path.substr(slash + 1);
    if (!isSourceFile(dir.provider, name)) return;
    const std::string rel = path.substr(dir.path.size() + 1);
    if (dir.archive) {
        // The same relative path in sessions/ and archived_sessions/: sessions/ wins.
        struct stat st {};
        if (::stat((dir.root + "/sessions/" + rel).c_str(), &st) == 0) return;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    seen.insert(path);
    FileEntry* entry = nullptr;
    if (auto known = files_.find(path); known != files_.end()) {
        entry = &known->second;
    } else {
        FileEntry added;
        added.path = path;
        added.provider = dir.provider;
        added.rootIndex = dir.rootIndex;
        added.relPath = rel;
        added.geminiJson = dir.provider == Provider::Gemini && name.size() > 5 &&
                           name.compare(name.size() - 5, 5, ".json") == 0;
        entry = &addFile(std::move(added));
    }
    FileEntry& f = *entry;
    f.present = true;
    f.seenDev = static_cast<std::uint64_t>(st.st_dev);
    f.seenIno = static_cast<std::uint64_t>(st.st_ino);
    f.seenSize = static_cast<std::int64_t>(st.st_size);
    f.seenMtimeNs = mtimeNs(st);
    planRead(f);
}

void IngestEngine::planRead(FileEntry& f) {
    f.dirty = false;
    f.readFromStart = false;
    if (!f.checkpointed) {
        f.dirty = f.seenSize > 0;
        f.readFromStart = true;
        return;
    }
    if (f.seenDev == f.dev && f.seenIno == f.ino && f.seenSize == f.size && f.seenMtimeNs == f.mtimeNs)
        return;  // unchanged: no contents read
    if (f.geminiJson) {
        if (f.seenSize == f.failedSize && f.seenMtimeNs == f.failedMtimeNs) return;
        f.dirty = true;
        f.readFromStart = true;
        return;
    }
    f.dirty = true;
    if (static_cast<std::uint64_t>(f.seenSize) < f.offset) {
        f.readFromStart = true;  // truncated
        return;
    }
    // Same file, grown (or touched)? Both fingerprints must still match.
    UniqueFd fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        f.dirty = false;
        return;
    }
    auto head = readAt(fd.get(), 0, f.headLen);
    auto tail = readAt(fd.get(), f.offset - f.tailLen, f.tailLen);
    bytesReadSinceStart_[f.provider] +=
        static_cast<std::int64_t>((head ? head->size() : 0) + (tail ? tail->size() : 0));
    const bool same = head && tail && head->size() == f.headLen && tail->size() == f.tailLen &&
                      fnv1a(*head) == f.headHash && fnv1a(*tail) == f.tailHash;
    f.readFromStart = !same;
}

void IngestEngine::statPath(const std::string& path, std::set<std::string>& seen) {
    const ScanDir* dir = scanDirFor(path);
    struct stat st {};
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        for (const auto& d : scanDirs_)  // the scanned directory itself, or one inside it
            if (d.path == path) walkDirectory(d, path, seen);
        if (dir) walkDirectory(*dir, path, seen);
        return;
    }
    if (exists && dir) {
        considerFile(*dir, path, seen);
        return;
    }
    // Gone: the file, or a directory with whatever we tracked below it.
    const std::string prefix = path + "/";
    for (auto& [p, f] : files_) {
        if ((p == path || p.compare(0, prefix.size(), prefix) == 0) && f.present) {
            struct stat fst {};
            if (::stat(p.c_str(), &fst) != 0) {
                f.present = false;
                f.dirty = false;
                vanished_.push_back(p);
            }
        }
    }
}

Result<CycleReport> IngestEngine::runCycle(
    store::Connection& db, const CycleRequest& request,
    const std::function<Status(store::Connection&, const StepReport&)>& inStep,
    const std::function<void(const StepReport&)>& afterStep, std::int64_t maxSteps,
    const std::function<Result<bool>(store::Connection&)>& whileReading) {
    // The steps the previous cycle read ahead (it stopped at maxSteps with
    // bytes left, and its helper went on reading through the daemon's mart
    // refresh) are this cycle's own when it stats nothing: the same committed
    // files, and its helper reads on. A stat changes files_: the helper
    // stops and its steps go first. (Stopping it between the tasks of a
    // first ingest too made the writer wait for the step being read, 17
    // times 8.5 ms in 1 GB.)
    std::unique_ptr<ReadAhead> ahead = std::move(readAhead_);
    if (ahead && (request.fullRescan || request.rereadAll || !request.paths.empty())) ahead.reset();
    std::set<std::string> seen;
    if (request.fullRescan) {
        scanDirs_.clear();
        for (const auto& pr : roots_)
            for (auto& d : scanDirs(pr)) scanDirs_.push_back(std::move(d));
        for (const auto& pr : roots_) lastError_.erase(pr.provider);
        for (const auto& d : scanDirs_) walkDirectory(d, d.path, seen);
        for (auto& [p, f] : files_) {
            if (!seen.count(p) && (f.present || f.checkpointed)) {
                f.present = false;
                f.dirty = false;
                if (f.checkpointed) vanished_.push_back(p);
            }
        }
    }
    for (const auto& p : request.paths) statPath(p, seen);
    // Steps keep the totals as they commit; only a stat changes files behind
    // them. (A first ingest's cycles stat nothing: a pass over every file per
    // cycle was 2% of its writer thread.)
    if (request.fullRescan || !request.paths.empty()) recountFiles();

    CycleReport report;
    report.bytesToRead = request.rereadAll ? markAllForReread() : pendingBytes();
    if (auto st = deferIndexesOnFirstIngest(db, report.bytesToRead); !st) return st.error();
    // Steps are read ahead of the one being written (reading and parsing are
    // a third of a first ingest's CPU time): the writer thread takes up each
    // step (counts, logs) only once the step before it committed. An exit
    // stops the helper, and what it read and nobody took up is dropped with
    // it; but a cycle stopped at maxSteps with more to read leaves it reading
    // on for the next one.
    if (!ahead) ahead = std::make_unique<ReadAhead>(*this);
    // The next step; while it is still being read, the writer does
    // `whileReading`'s work for as long as it has some, then reads files of
    // that step itself, rather than wait.
    auto nextStep = [&]() -> Result<std::optional<ReadStep>> {
        while (!ahead->ready()) {
            if (whileReading) {
                auto worked = whileReading(db);
                if (!worked) return worked.error();
                if (*worked) continue;
            }
            if (!ahead->helpRead()) break;
        }
        return ahead->next();
    };
    auto first = nextStep();
    if (!first) return first.error();
    std::optional<ReadStep> step = std::move(*first);
    if (!step) {
        if (vanished_.empty()) {
            // Nothing to read or forget (a rescan that found everything as
            // checkpointed, an event for bytes already read): no transaction,
            // so an idle cycle writes nothing and does not count as progress.
            report.bytesReadBySteps = bytesReadBySteps_;
            if (auto st = buildDeferredIndexes(db); !st) return st.error();
            return report;
        }
        step.emplace();  // a step of checkpoints to delete only
    }
    for (;;) {
        takeReads(*step);
        auto written = writeStep(db, *step, inStep);
        if (!written) return written.error();
        if (deferredKeys_ && deferredKeys_->size() > maxDeferredKeys_)
            if (auto st = buildDeferredKeyIndex(db); !st) return st.error();
        ++report.steps;
        report.eventsChanged += written->eventsChanged;
        if (afterStep) afterStep(*written);
        ahead->recycle(std::move(*step));
        if (maxSteps > 0 && report.steps >= maxSteps) {
            report.morePending = hasPendingWork();
            if (report.morePending) readAhead_ = std::move(ahead);  // reading on meanwhile
            break;
        }
        auto next = nextStep();
        if (!next) return next.error();
        step = std::move(*next);
        if (!step) break;  // nothing was left to read
    }
    report.bytesReadBySteps = bytesReadBySteps_;
    if (auto st = buildDeferredIndexes(db); !st) return st.error();
    return report;
}

Status IngestEngine::deferIndexesOnFirstIngest(store::Connection& db, std::int64_t bytesToRead) {
    if (readIndexesDeferred_ || bytesToRead < static_cast<std::int64_t>(deferIndexesBytes_)) return {};
    auto empty = db.queryInt("SELECT NOT EXISTS (SELECT 1 FROM usage_events)");
    if (!empty) return empty.error();
    if (*empty == 0) return {};
    auto tx = store::Transaction::begin(db);
    if (!tx) return tx.error();
    if (auto st = store::dropReadIndexes(db); !st) return st;
    if (auto st = store::dropEventKeyIndex(db); !st) return st;
    if (auto st = tx->commit(); !st) return st;
    readIndexesDeferred_ = true;
    deferredKeys_ = std::make_unique<EventKeyIndex>();
    log::info("first ingest of " + std::to_string(bytesToRead / (1024 * 1024)) +
              " MiB into an empty store: usage_events' indexes are built when it is done");
    return {};
}

namespace {

std::string millisSince(std::chrono::steady_clock::time_point start) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
            .count());
}

}  // namespace

// Once nothing is left to read: a cycle stopped at maxSteps keeps them deferred.
Status IngestEngine::buildDeferredIndexes(store::Connection& db) {
    if (!readIndexesDeferred_ || hasPendingWork()) return {};
    const auto start = std::chrono::steady_clock::now();
    if (auto st = store::buildIndexes(db, {.read = true, .key = deferredKeys_ != nullptr}); !st) return st;
    readIndexesDeferred_ = false;
    deferredKeys_.reset();
    log::info("usage_events' indexes built in " + millisSince(start) + " ms");
    return {};
}

Status IngestEngine::buildDeferredKeyIndex(store::Connection& db) {
    if (!deferredKeys_) return {};
    const auto start = std::chrono::steady_clock::now();
    if (auto st = store::buildIndexes(db, {.key = true}); !st) return st;
    log::info("usage_events' key index built in " + millisSince(start) + " ms, after " +
              std::to_string(deferredKeys_->size()) + " keys held in memory");
    deferredKeys_.reset();
    return {};
}

std::optional<std::size_t> IngestEngine::deferredKeysForTest() const {
    if (!deferredKeys_) return std::nullopt;
    return deferredKeys_->size();
}

bool IngestEngine::hasPendingWork() const {
    if (!vanished_.empty()) return true;
    for (const auto& [path, f] : files_) {
        (void)path;
        if (f.dirty) return true;
    }
    return false;
}

std::int64_t IngestEngine::markAllForReread() {
    std::int64_t bytes = 0;
    for (auto& [path, f] : files_) {
        (void)path;
        if (!f.present) continue;
        f.dirty = true;
        f.readFromStart = true;
        f.failedSize = f.failedMtimeNs = -1;
        bytes += f.seenSize;
    }
    recountFiles();
    return bytes;
}

std::int64_t IngestEngine::pendingBytes() const {
    std::int64_t bytes = 0;
    for (const ProviderTotals& t : fileTotals_) bytes += t.bytesPending;
    return bytes;
}

Result<RepriceReport> IngestEngine::repriceStep(store::Connection& db, std::int64_t afterId,
                                                std::int64_t endId, std::int64_t batch) {
    if (auto st = buildDeferredKeyIndex(db); !st) return st.error();
    RepriceReport report;
    report.lastId = afterId;
    auto tx = store::Transaction::begin(db);
    if (!tx) return tx.error();
    auto select = db.cached(
        "SELECT id, model, speed, input_tokens, output_tokens, cache_read_tokens, "
        "cache_create_tokens, cache_create_1h_tokens, cost_usd, cost_source "
        "FROM usage_events WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3");
    if (!select) return select.error();
    store::Statement& s = **select;
    s.bind(1, afterId).bind(2, endId).bind(3, batch);
    struct Change {
        std::int64_t id;
        double cost;
        std::string source;
    };
    std::vector<Change> changes;
    for (;;) {
        auto row = s.step();
        if (!row) return row.error();
        if (!*row) break;
        ++report.examined;
        report.lastId = s.columnInt(0);
        if (s.columnText(9) == "live") continue;  // the line's own cost stands
        sources::TokenCounts tokens;
        tokens.input = s.columnInt(3);
        tokens.output = s.columnInt(4);
        tokens.cacheRead = s.columnInt(5);
        tokens.cacheCreate = s.columnInt(6);
        tokens.cacheCreate1h = s.columnInt(7);
        const auto speed = s.columnText(2) == "fast" ? sources::Speed::Fast : sources::Speed::Standard;
        const auto quote = sources::priceTokens(prices_, s.columnText(1), speed, tokens);
        const std::string source(sources::costSourceName(quote.source));
        if (quote.costUsd != s.columnDouble(8) || source != s.columnText(9))
            changes.push_back({s.columnInt(0), quote.costUsd, source});
    }
    s.reset();
    for (const auto& c : changes) {
        // A revision: the row again under a fresh id, with the new price; the
        // DELETE records the retraction (trigger), so marts take the old out.
        auto copy = db.cached(
            "INSERT INTO usage_events (provider, account, project_id, session_id, ts, day, model, "
            "speed, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, "
            "reasoning_tokens, cost_usd, cost_source, role, raw_extras, event_key, "
            "cache_create_1h_tokens, source_path, source_offset, is_sidechain, has_speed, "
            "message_id, request_id) SELECT provider, account, project_id, session_id, ts, day, "
            "model, speed, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, "
            "reasoning_tokens, ?2, ?3, role, raw_extras, '\x01' || event_key, "
            "cache_create_1h_tokens, source_path, source_offset, is_sidechain, has_speed, "
            "message_id, request_id FROM usage_events WHERE id = ?1");
        if (!copy) return copy.error();
        (*copy)->bind(1, c.id).bind(2, c.cost).bind(3, c.source);
        if (auto st = (*copy)->run(); !st) return st.error();
        const std::int64_t newId = db.lastInsertRowid();
        if (auto st = deleteEvent(db, c.id); !st) return st.error();
        // The copy took a placeholder key while the old row held the real one.
        auto rekey = db.cached("UPDATE usage_events SET event_key = substr(event_key, 2) WHERE id = ?1");
        if (!rekey) return rekey.error();
        (*rekey)->bind(1, newId);
        if (auto st = (*rekey)->run(); !st) return st.error();
        ++report.revised;
    }
    if (auto st = store::foldEventCounts(db); !st) return st.error();
    if (auto st = tx->commit(); !st) return st.error();
    report.done = report.examined < batch || report.lastId >= endId;
    return report;
}

// Opens, reads and parses one planned file of a step, into `p`. Touches
// nothing but its arguments (it runs on the helper thread, or on the writer
// while it waits for the step); what the writer thread must learn (bytes
// read, errors, log lines) comes back in `p`. A .jsonl file reads at most
// the step's budget left at its turn in the plan (item.budget): the bytes
// the plan counted for it, or fewer if it shrank since its stat.
void IngestEngine::readFile(ReadItem& item, PendingFile& p, ReadBuffer& buffer,
                            const sources::PriceTable& prices,
                            const std::function<void(const std::string&)>& beforeRead) {
    p.file = item.file;
    const std::uint64_t start = item.start;
    p.offset = start;
    p.parserState = std::move(item.parserState);
    p.linesSkipped = item.linesSkipped;
    p.headHash = item.headHash;
    p.headLen = item.headLen;
    if (beforeRead) beforeRead(item.path);
    UniqueFd fd(::open(item.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        p.outcome = ReadOutcome::Failed;
        p.error = "cannot open " + item.path + ": " + std::strerror(errno);
        return;
    }
    // A read of the step's own bytes: counted as the step's; a failure
    // marks the file skipped (takeReads).
    auto readCounted = [&](std::uint64_t offset, std::uint64_t n) -> std::optional<std::string_view> {
        auto bytes = buffer.read(fd.get(), offset, n);
        if (!bytes) {
            p.outcome = ReadOutcome::Failed;
            p.error = "cannot read " + item.path + ": " + bytes.error().message;
            return std::nullopt;
        }
        p.bytesRead += static_cast<std::int64_t>(bytes->size());
        p.stepBytes += static_cast<std::int64_t>(bytes->size());
        return *bytes;
    };
    const sources::FileContext ctx = sources::makeFileContext(
        item.provider, item.rootIndex, item.relPath, item.seenMtimeNs / 1000);
    const auto seenSize = static_cast<std::uint64_t>(item.seenSize);
    if (item.geminiJson) {
        if (seenSize > sources::kMaxGeminiJsonBytes) {
            p.linesSkipped = 1;
            p.offset = seenSize;
        } else {
            auto bytes = readCounted(0, seenSize);
            if (!bytes) return;
            auto parsed = sources::parseGeminiJsonFile(*bytes, ctx, prices);
            if (!parsed) {
                p.parseFailed = true;  // caught mid-write: retried when it changes again
            } else {
                p.records = std::move(parsed->records);
                p.linesSkipped = static_cast<std::int64_t>(parsed->skippedMessages);
                p.offset = bytes->size();
                p.headLen = std::min<std::uint64_t>(bytes->size(), kFingerprintBytes);
                p.headHash = fnv1a(std::string_view(*bytes).substr(0, p.headLen));
            }
        }
    } else {
        const std::uint64_t available = seenSize > start ? seenSize - start : 0;
        // Unless the step's budget cuts the read, what is left after the lines
        // read is a partial line: it waits for its newline (a change to the
        // file), not for another step.
        const bool cutByBudget = item.budget < available;
        auto bytes = readCounted(start, std::min(available, item.budget));
        if (!bytes) return;
        std::string_view chunk = *bytes;
        const auto lastNl = chunk.find_last_of('\n');
        std::uint64_t skipBytes = 0;  // a line over the limit, skipped unread
        if (lastNl == std::string::npos && start + chunk.size() < seenSize) {
            // A line longer than this step's budget: find its end without holding it.
            std::uint64_t pos = start + chunk.size();
            std::uint64_t end = 0;
            bool found = false;
            while (pos < seenSize) {
                auto piece = readAt(fd.get(), pos, kScanPieceBytes);
                if (!piece || piece->empty()) break;
                p.bytesRead += static_cast<std::int64_t>(piece->size());
                const auto nl = piece->find('\n');
                if (nl != std::string::npos) {
                    end = pos + nl;
                    found = true;
                    break;
                }
                pos += piece->size();
            }
            chunk = {};
            if (found && end - start <= sources::kMaxLineBytes) {
                auto line = buffer.read(fd.get(), start, end - start + 1);
                if (line) chunk = *line;
            } else if (found) {
                skipBytes = end - start + 1;
            }
        } else if (lastNl == std::string::npos) {
            chunk = {};  // a partial last line: it waits for its newline
        } else {
            chunk = chunk.substr(0, lastNl + 1);
        }
        if (skipBytes > 0) {
            p.warning = item.path + ": a line of " + std::to_string(skipBytes) +
                        " bytes is over the limit, skipping";
            p.offset = start + skipBytes;
            p.linesSkipped += 1;
        } else if (!chunk.empty()) {
            auto parsed = sources::parseJsonlChunk(chunk, start, ctx, p.parserState, prices);
            if (!parsed) {
                // A saved state this build cannot read: start the file over.
                parsed = sources::parseJsonlChunk(chunk, 0, ctx, "", prices);
            }
            if (parsed && item.provider == sources::Provider::Claude && cutByBudget)
                stopBeforeTrailingResponse(chunk, start, *parsed);
            if (parsed) {
                p.records = std::move(parsed->records);
                p.linesSkipped += static_cast<std::int64_t>(parsed->skippedLines);
                p.offset = start + parsed->consumedBytes;
                p.parserState = std::move(parsed->state);
                if (parsed->skippedLines > 0)
                    p.info = item.path + ": " + std::to_string(parsed->skippedLines) +
                             " malformed line(s), skipping";
            }
        }
        if (start == 0 || p.headLen < kFingerprintBytes) {
            p.headLen = std::min<std::uint64_t>(p.offset, kFingerprintBytes);
            auto head = readAt(fd.get(), 0, p.headLen);
            p.headHash = head ? fnv1a(*head) : 0;
        }
        p.stillDirty = cutByBudget && p.offset > start && p.offset < seenSize;
    }
    p.tailLen = std::min<std::uint64_t>(p.offset, kFingerprintBytes);
    auto tail = readAt(fd.get(), p.offset - p.tailLen, p.tailLen);
    p.tailHash = tail ? fnv1a(*tail) : 0;
}

// The step's best record of each key (keys name their provider) is the only
// one written: the winner order is total (sources/identity.h), so applying
// it alone leaves the store as applying each record in turn would.
void IngestEngine::markSuperseded(ReadStep& step) {
    std::unordered_map<std::string_view, std::pair<PendingFile*, std::size_t>> best;
    for (auto& p : step.files) {
        p.superseded.assign(p.records.size(), false);
        if (p.parseFailed) continue;
        for (std::size_t i = 0; i < p.records.size(); ++i) {
            auto [it, inserted] = best.try_emplace(p.records[i].eventKey, &p, i);
            if (inserted) continue;
            auto& [bestFile, bestIndex] = it->second;
            if (sources::betterRecord(p.records[i], bestFile->records[bestIndex])) {
                bestFile->superseded[bestIndex] = true;
                it->second = {&p, i};
            } else {
                p.superseded[i] = true;
            }
        }
    }
}

// Writer thread, as a step is taken up: what its reads tell the engine (bytes
// read, a file that could not be opened, log lines), in the order of the
// reads. Only the files actually read are left to write.
void IngestEngine::takeReads(ReadStep& step) {
    for (auto& p : step.files) {
        FileEntry& f = *p.file;
        if (p.outcome == ReadOutcome::Failed) {
            // Vanished, unreadable, or failing to read (EIO; a directory now
            // under the name): skip it until it changes or the next rescan,
            // rather than read it again at every step. Its checkpoint does not
            // move, so nothing is lost.
            if (lastError_[f.provider] != p.error) log::warning(p.error + ", skipping");
            lastError_[f.provider] = p.error;
            countFile(f, -1);
            f.dirty = false;
            countFile(f, +1);
            continue;
        }
        bytesReadSinceStart_[f.provider] += p.bytesRead;
        bytesReadBySteps_ += p.stepBytes;
        if (!p.warning.empty()) log::warning(p.warning);
        if (!p.info.empty()) log::info(p.info);
    }
    std::erase_if(step.files, [](const PendingFile& p) { return p.outcome != ReadOutcome::Read; });
}

// One transaction: the step's records, its files' checkpoints, `inStep`;
// memory moves only after the commit.
Result<StepReport> IngestEngine::writeStep(
    store::Connection& db, ReadStep& step,
    const std::function<Status(store::Connection&, const StepReport&)>& inStep) {
    std::vector<PendingFile>& pending = step.files;
    StepReport report;
    auto tx = store::Transaction::begin(db);
    if (!tx) return tx.error();
    for (const auto& path : vanished_) {
        auto del = db.cached("DELETE FROM file_checkpoints WHERE path = ?1");
        if (!del) return del.error();
        (*del)->bind(1, path);
        if (auto st = (*del)->run(); !st) return st.error();
    }
    const double nowSeconds = static_cast<double>(clock_.now()) / kMicrosPerSecond;
    // Per step, not per record: the projects this step met (committed into
    // projectIds_ only after the commit), each project's newest file mtime,
    // and each session's earliest cwd. The statements they stand for are
    // idempotent (an upsert keeping the first path, MAX, MIN), so running each
    // once per step with the folded value leaves the store as running it per
    // record would; nothing in the step reads those tables in between.
    std::unordered_map<std::string, ProjectEntry> stepProjects;
    std::unordered_map<std::int64_t, double> projectMtimes;
    struct SessionCwd {
        std::string_view provider, sessionId, cwd, firstTs;
    };
    std::map<std::pair<std::string_view, std::string_view>, SessionCwd> sessionCwds;
    for (auto& p : pending) {
        FileEntry& f = *p.file;
        if (p.parseFailed) continue;
        const double fileMtime = static_cast<double>(f.seenMtimeNs) / 1e9;
        for (std::size_t i = 0; i < p.records.size(); ++i) {
            const UsageRecord& r = p.records[i];
            const UsageRecord* previous = i > 0 ? &p.records[i - 1] : nullptr;
            const std::string_view provider = sources::providerName(r.provider);
            std::string projectKey = std::string(provider) + '\0' + r.projectSlug;
            const ProjectEntry* known = nullptr;
            if (auto it = stepProjects.find(projectKey); it != stepProjects.end()) known = &it->second;
            else if (auto it2 = projectIds_.find(projectKey); it2 != projectIds_.end()) known = &it2->second;
            std::int64_t projectId = 0;
            // ensureProject only sets a path the project lacks: once it has one,
            // or when this record brings none, the known id is the answer.
            if (known && (known->hasPath || r.cwd.empty())) {
                projectId = known->id;
            } else {
                auto id = store::ensureProject(db, std::string(provider), r.projectSlug,
                                               r.cwd.empty() ? std::nullopt : std::optional<std::string>(r.cwd),
                                               nowSeconds, fileMtime);
                if (!id) return id.error();
                projectId = *id;
                stepProjects[std::move(projectKey)] =
                    ProjectEntry{projectId, !r.cwd.empty() || (known && known->hasPath)};
            }
            auto applied = applyRecord(db, deferredKeys_.get(), r, projectId, p.superseded[i], previous);
            if (!applied) return applied.error();
            report.eventsChanged += applied->changed;
            report.eventsMerged += applied->merged;
            if (!r.cwd.empty()) {
                // The earliest record's cwd; among equal timestamps the first met.
                auto [it, inserted] = sessionCwds.try_emplace({provider, r.sessionId},
                                                              SessionCwd{provider, r.sessionId, r.cwd, r.tsText});
                if (!inserted && r.tsText < it->second.firstTs) it->second = {provider, r.sessionId, r.cwd, r.tsText};
            }
            auto [mt, fresh] = projectMtimes.try_emplace(projectId, fileMtime);
            if (!fresh) mt->second = std::max(mt->second, fileMtime);
        }
    }
    for (const auto& [key, c] : sessionCwds) {
        (void)key;
        auto cwd = db.cached(
            "INSERT INTO session_cwd (provider, session_id, cwd, first_ts) VALUES (?1, ?2, ?3, ?4) "
            "ON CONFLICT (provider, session_id) DO UPDATE SET cwd = excluded.cwd, "
            "first_ts = excluded.first_ts WHERE excluded.first_ts < session_cwd.first_ts");
        if (!cwd) return cwd.error();
        (*cwd)->bind(1, c.provider).bind(2, c.sessionId).bind(3, c.cwd).bind(4, c.firstTs);
        if (auto st = (*cwd)->run(); !st) return st.error();
    }
    for (const auto& [projectId, mtime] : projectMtimes) {
        auto lm = db.cached("UPDATE projects SET last_modified = MAX(last_modified, ?2) WHERE id = ?1");
        if (!lm) return lm.error();
        (*lm)->bind(1, projectId).bind(2, mtime);
        if (auto st = (*lm)->run(); !st) return st.error();
    }
    // The size a checkpoint records is the one its read saw to the end. A
    // file that a step's budget left mid-way records its offset instead: the
    // next stat then sees a change and reads on, where the real size would
    // make an unchanged file look read through (after a rescan or a restart).
    auto checkpointSize = [](const FileEntry& f, const PendingFile& p) {
        return p.stillDirty ? static_cast<std::int64_t>(p.offset) : f.seenSize;
    };
    for (auto& p : pending) {
        FileEntry& f = *p.file;
        if (p.parseFailed) continue;
        auto cp = db.cached(
            "INSERT INTO file_checkpoints (path, provider, rel_path, dev, ino, size, mtime_ns, offset, "
            "head_hash, head_len, tail_hash, tail_len, parser_state, lines_skipped, updated_at_us) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
            "ON CONFLICT (path) DO UPDATE SET provider = excluded.provider, rel_path = excluded.rel_path, "
            "dev = excluded.dev, ino = excluded.ino, size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "offset = excluded.offset, head_hash = excluded.head_hash, head_len = excluded.head_len, "
            "tail_hash = excluded.tail_hash, tail_len = excluded.tail_len, "
            "parser_state = excluded.parser_state, lines_skipped = excluded.lines_skipped, "
            "updated_at_us = excluded.updated_at_us");
        if (!cp) return cp.error();
        store::Statement& s = **cp;
        s.bind(1, f.path).bind(2, sources::providerName(f.provider));
        s.bind(3, sources::sourcePathOf(f.rootIndex, f.relPath));
        s.bind(4, static_cast<std::int64_t>(f.seenDev)).bind(5, static_cast<std::int64_t>(f.seenIno));
        s.bind(6, checkpointSize(f, p)).bind(7, f.seenMtimeNs).bind(8, static_cast<std::int64_t>(p.offset));
        s.bind(9, static_cast<std::int64_t>(p.headHash)).bind(10, static_cast<std::int64_t>(p.headLen));
        s.bind(11, static_cast<std::int64_t>(p.tailHash)).bind(12, static_cast<std::int64_t>(p.tailLen));
        s.bind(13, p.parserState).bind(14, p.linesSkipped).bind(15, clock_.now());
        if (auto st = s.run(); !st) return st.error();
    }
    if (auto st = store::foldEventCounts(db); !st) return st.error();
    report.committedAt = clock_.now();
    if (inStep)
        if (auto st = inStep(db, report); !st) return st.error();
    if (auto st = tx->commit(); !st) return st.error();

    // Committed: now memory may move.
    vanished_.clear();
    for (auto& [key, entry] : stepProjects) projectIds_[key] = entry;
    for (auto& p : pending) {
        FileEntry& f = *p.file;
        countFile(f, -1);
        if (p.parseFailed) {
            f.failedSize = f.seenSize;
            f.failedMtimeNs = f.seenMtimeNs;
            f.dirty = false;
        } else {
            f.checkpointed = true;
            f.dev = f.seenDev;
            f.ino = f.seenIno;
            f.size = checkpointSize(f, p);
            f.mtimeNs = f.seenMtimeNs;
            f.offset = p.offset;
            f.headHash = p.headHash;
            f.headLen = p.headLen;
            f.tailHash = p.tailHash;
            f.tailLen = p.tailLen;
            f.parserState = std::move(p.parserState);
            f.linesSkipped = p.linesSkipped;
            f.readFromStart = false;
            f.dirty = p.stillDirty;
        }
        countFile(f, +1);
    }
    return report;
}

void IngestEngine::countFile(const FileEntry& f, std::int64_t sign) {
    static_assert(static_cast<std::size_t>(Provider::Gemini) + 1 == kProviderCount);
    if (!f.present) return;
    ProviderTotals& t = fileTotals_[static_cast<std::size_t>(f.provider)];
    const auto offset = static_cast<std::int64_t>(f.offset);
    t.files += sign;
    t.bytesIngested += sign * offset;
    if (f.seenSize > offset && (f.dirty || !f.geminiJson)) t.bytesPending += sign * (f.seenSize - offset);
    t.linesSkipped += sign * f.linesSkipped;
}

void IngestEngine::recountFiles() {
    fileTotals_ = {};
    for (const auto& [path, f] : files_) {
        (void)path;
        countFile(f, +1);
    }
}

std::vector<status::SourceState> IngestEngine::sourcesState() const {
    const FileTotals& totals = fileTotals_;
    std::vector<status::SourceState> out;
    for (const auto& pr : roots_) {
        const ProviderTotals& t = totals[static_cast<std::size_t>(pr.provider)];
        status::SourceState s;
        s.provider = std::string(sources::providerName(pr.provider));
        s.roots = pr.roots;
        s.watching = "events";
        s.files = t.files;
        s.bytesIngested = t.bytesIngested;
        s.bytesPending = t.bytesPending;
        s.linesSkipped = t.linesSkipped;
        if (auto it = bytesReadSinceStart_.find(pr.provider); it != bytesReadSinceStart_.end())
            s.bytesReadSinceStart = it->second;
        if (auto it = lastError_.find(pr.provider); it != lastError_.end() && !it->second.empty())
            s.lastError = it->second;
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace etld::daemon
