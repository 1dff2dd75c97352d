// Ingest: source files -> usage_events, every complete line exactly once.
//
// The engine lives on the writer thread and owns, in memory, one entry per
// source file: its committed checkpoint (identity hints dev+ino, fingerprints
// of the first bytes and of the bytes just before the offset, size and mtime
// at the last read, the offset of the next unread line, the parser state) and
// what the last stat saw. The loop thread only says which paths to look at.
//
// A cycle stats what it was asked to (every file under every scanned
// directory for a full rescan), decides per file what to read, then reads,
// parses and writes in steps of at most kStepBytes. Each step is ONE
// transaction holding the events read from its bytes, the files' new
// checkpoints (invariant 2) and the daemon's state snapshot; memory is
// updated only after the commit, so a failed step is simply read again.
//
// Reading and writing are a pipeline: while step N is written, a helper
// thread plans and reads (parses) the steps after it, up to kReadAheadSteps
// of them. Each plan takes a file that an earlier step reads but leaves
// unfinished from where that read ends, as its commit will leave it, so the
// plans are the ones the writer would make after each commit. A read sees
// only its plan, the price table and the test hook; what it learns for the
// engine (bytes read, a file gone, log lines) is applied on the writer thread
// when the step is taken up, so steps read ahead and dropped unused change
// nothing: when step N fails, and when the next cycle has something to stat.
// A cycle stopped at maxSteps leaves the helper reading the next cycle's
// steps (it overlaps the daemon's mart refresh between the two); memory
// stays as the last commit left it.
//
// Per file, on a change of (dev, ino, size, mtime):
//   * size >= offset and both fingerprints match: read on from the offset
//     (an append; also a device-number change after a reboot);
//   * otherwise (truncated, replaced by rename, rewritten in place): read
//     again from byte 0 with a fresh parser state. Re-read records have the
//     same keys, so nothing is doubled; events no longer on disk stay.
//   * Gemini `.json` sessions are parsed whole on every change; a file that
//     does not parse (caught mid-write) is left as last read.
// Only bytes up to the last '\n' are consumed; a line longer than
// kMaxLineBytes is skipped (counted) without being held in memory. A read
// that a step's budget cuts ends before the chunks of a streamed Claude
// response that would end it, so the next step reads the response whole.
//
// Identity and winners follow sources/identity.h, applied against the
// store: a record whose key exists replaces the stored event only when it
// wins and a stored field actually changes (a revision: DELETE + INSERT under
// a fresh id; the retraction trigger records what the old row contributed);
// a Claude non-sidechain record merges away the sidechain-only event of its
// message (a merge: DELETE).
//
// Within a step, a record beaten by another record of its key in the same
// step (the earlier chunks of a streamed response, a repeated token count)
// does not write its event: the winner order is total (identity.h), so
// applying the step's best record alone leaves the store as applying each in
// turn would, without the insert-then-revise churn (a third of a first
// ingest's rows on real logs). Likewise the project upserts, the projects'
// last-modified times and the sessions' first cwd are folded in memory and
// written once per step.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "roots.h"
#include "sources/pricing.h"
#include "status/status.h"
#include "store/sqlite.h"
#include "util/time.h"

namespace etld::daemon {

class EventKeyIndex;

// Bytes of source files read and written per transaction: bounds memory and
// the time one step holds the writer, so status and sync stay prompt during
// a first ingest of years of logs.
constexpr std::uint64_t kStepBytes = 4ull * 1024 * 1024;
// Steps read and parsed ahead of the writer at most. Reading a step took
// longer than writing it (9.9 against 7.2 ms on average in a 1 GB first
// ingest) while the mart refresh after every few steps left the reader idle:
// a queue lets the reader fill those pauses. Peak RSS of that ingest went
// from 53 to 58 MiB (a step read ahead holds its parsed records).
constexpr std::size_t kReadAheadSteps = 4;
// A first ingest into an empty store of at least this many bytes defers
// usage_events' five read indexes and its key index (store/schema.h) until
// its catch-up is done: building each in one sort took a fifth off a 1 GB
// first ingest, and the key index another 15% of its CPU. Readers' ad-hoc
// queries scan meanwhile; the daemon's own reads use other indexes, and it
// looks keys up in memory (event_keys.h).
constexpr std::uint64_t kDeferIndexesBytes = 64ull * 1024 * 1024;
// Keys held in memory at most meanwhile (16 bytes each): past them the key
// index is built at once, and keys are looked up there again. 512Ki keys are
// ~3 GB of logs at the density of bench/gen_corpus.py; the table then takes
// 16 MiB.
constexpr std::size_t kMaxDeferredKeys = 512 * 1024;
// Fingerprint windows: enough to tell transcripts apart that share their
// first line, small enough to read for every changed file.
constexpr std::uint64_t kFingerprintBytes = 4096;

struct CycleRequest {
    bool fullRescan = false;
    bool rereadAll = false;          // forced backfill: every file again from byte 0
    std::vector<std::string> paths;  // files or directories (absolute)
};

// What one committed step changed.
struct StepReport {
    std::int64_t eventsChanged = 0;  // inserted or revised
    std::int64_t eventsMerged = 0;
    UnixMicros committedAt = 0;
};

struct CycleReport {
    std::int64_t eventsChanged = 0;
    std::int64_t steps = 0;
    bool morePending = false;  // stopped at maxSteps with bytes left to read
    std::int64_t bytesToRead = 0;  // pending after the stat phase (backfill progress)
    std::int64_t bytesReadBySteps = 0;  // engine total after the cycle
    // The sources block after the cycle, filled in by the caller: a cycle
    // with nothing to write commits no step, yet may have met new files.
    std::vector<status::SourceState> sources;
};

// A bounded pass of re-pricing stored events from their tokens.
struct RepriceReport {
    std::int64_t lastId = 0;        // continue after this id
    std::int64_t examined = 0;
    std::int64_t revised = 0;
    bool done = false;              // reached the end id
};

class ReadBuffer;  // ingest.cpp: a step's read bytes, reused from file to file

class IngestEngine {
public:
    IngestEngine(std::vector<ProviderRoots> roots, const sources::PriceTable& prices,
                 const Clock& clock);
    ~IngestEngine();  // joins a read still running ahead

    // Writer thread, once: loads every checkpoint into memory.
    Status load(store::Connection& db);

    // Writer thread. Stats what the request names, then reads and writes in
    // steps, at most `maxSteps` of them (<= 0: until nothing is left); what
    // is left stays pending for the next call (morePending). `inStep` runs
    // inside each step's transaction before its commit (the daemon records
    // its snapshot there); `afterStep` after each commit. While the next step
    // is still being read, `whileReading` runs (between transactions) as
    // long as it returns true: it did some work and has more.
    Result<CycleReport> runCycle(store::Connection& db, const CycleRequest& request,
                                 const std::function<Status(store::Connection&, const StepReport&)>& inStep,
                                 const std::function<void(const StepReport&)>& afterStep,
                                 std::int64_t maxSteps = 0,
                                 const std::function<Result<bool>(store::Connection&)>& whileReading = {});
    bool hasPendingWork() const;

    // Writer thread, forced backfill: every known file is read again from
    // its first byte by the following cycles. Returns the bytes to read.
    std::int64_t markAllForReread();
    // Source bytes read by steps since start (backfill progress).
    std::int64_t bytesReadBySteps() const { return bytesReadBySteps_; }
    // Bytes the watched files hold beyond their checkpoints.
    std::int64_t pendingBytes() const;

    // Writer thread, forced backfill: re-prices the events with ids in
    // (afterId, endId] from their stored tokens, at most `batch` of them in
    // one transaction; an event whose cost changes is revised (new id).
    // Events with a cost of their own (`live`) keep it.
    Result<RepriceReport> repriceStep(store::Connection& db, std::int64_t afterId,
                                      std::int64_t endId, std::int64_t batch);

    // Writer thread: stops the helper a cycle left reading ahead and drops
    // what it read, before the price table it parses with is replaced (the
    // new table prices what is written from then on).
    void dropReadAhead();

    // Writer thread: the sources block of the status (watching is the loop's).
    std::vector<status::SourceState> sourcesState() const;
    // Every directory scanned, as configured now (for the watcher).
    std::vector<ScanDir> allScanDirs() const;

    // Tests: runs just before a step opens a file it decided to read, so a
    // test can make the file vanish between the stat and the read. It runs
    // on the helper thread. Steps read ahead before it is set are dropped.
    void setBeforeReadForTest(std::function<void(const std::string& path)> hook);
    void setDeferIndexesBytesForTest(std::uint64_t bytes) { deferIndexesBytes_ = bytes; }
    void setMaxDeferredKeysForTest(std::size_t keys) { maxDeferredKeys_ = keys; }
    // Whether keys are looked up in memory now, and how many it holds.
    std::optional<std::size_t> deferredKeysForTest() const;

private:
    struct FileEntry {
        std::string path;
        sources::Provider provider = sources::Provider::Claude;
        std::uint32_t rootIndex = 0;
        std::string relPath;
        bool geminiJson = false;
        // Committed checkpoint.
        bool checkpointed = false;
        std::uint64_t dev = 0, ino = 0;
        std::int64_t size = 0, mtimeNs = 0;
        std::uint64_t offset = 0;
        std::uint64_t headHash = 0, headLen = 0, tailHash = 0, tailLen = 0;
        std::string parserState;
        std::int64_t linesSkipped = 0;
        // Last stat.
        bool present = false;
        std::uint64_t seenDev = 0, seenIno = 0;
        std::int64_t seenSize = 0, seenMtimeNs = 0;
        bool dirty = false;          // needs reading
        bool readFromStart = false;  // decided at stat time
        // A Gemini .json that did not parse: not retried until it changes.
        std::int64_t failedSize = -1, failedMtimeNs = -1;
    };

    struct ReadItem;     // a file as a step plans to read it
    enum class ReadOutcome;
    struct PendingFile;  // a file as a step read it: its planned checkpoint change
    struct ReadStep;     // a step's reads, ready to write

    void statPath(const std::string& path, std::set<std::string>& seenFiles);
    void walkDirectory(const ScanDir& dir, const std::string& path, std::set<std::string>& seen);
    void considerFile(const ScanDir& dir, const std::string& path, std::set<std::string>& seen);
    void planRead(FileEntry& f);
    const ScanDir* scanDirFor(const std::string& path) const;
    class ReadAhead;     // the helper thread reading steps ahead
    // Static: it sees nothing of the engine, so it can run on the helper
    // thread (or on the writer's, waiting for the step).
    static void readFile(ReadItem& item, PendingFile& p, ReadBuffer& buffer,
                         const sources::PriceTable& prices,
                         const std::function<void(const std::string&)>& beforeRead);
    static void markSuperseded(ReadStep& step);
    void takeReads(ReadStep& step);
    Result<StepReport> writeStep(store::Connection& db, ReadStep& step,
                                 const std::function<Status(store::Connection&, const StepReport&)>& inStep);
    Status deferIndexesOnFirstIngest(store::Connection& db, std::int64_t bytesToRead);
    // Once nothing is left to read: the read indexes and the key index.
    Status buildDeferredIndexes(store::Connection& db);
    // Past maxDeferredKeys_ (memory), and before a re-pricing (which copies
    // events under new ids behind the in-memory index's back).
    Status buildDeferredKeyIndex(store::Connection& db);

    std::vector<ProviderRoots> roots_;
    std::vector<ScanDir> scanDirs_;
    const sources::PriceTable& prices_;
    const Clock& clock_;
    std::map<std::string, FileEntry> files_;  // by absolute path
    // The same files in the order steps take them: by provider, then by
    // source path, the order that breaks identity's ties (sources/identity.h).
    // A record copied into several files (Codex repeats a forked session's
    // history in the new rollout) is then mostly met first where it wins, and
    // its later copies lose at once instead of revising it. The absolute path
    // tells apart two files of one source path (sessions/ and
    // archived_sessions/). An entry keeps the source path it was added with,
    // as the file keeps its name in the store (a root moving in the list
    // changes neither).
    struct ReadOrderLess {
        bool operator()(const FileEntry* a, const FileEntry* b) const;
    };
    std::set<FileEntry*, ReadOrderLess> readOrder_;
    // Adds `f` to files_ and readOrder_ (nothing removes entries).
    FileEntry& addFile(FileEntry f);
    std::vector<std::string> vanished_;       // checkpoints to delete in the next step
    // A project the store holds, and whether its path is set (ensureProject
    // then has nothing left to do for it).
    struct ProjectEntry {
        std::int64_t id = 0;
        bool hasPath = false;
    };
    std::unordered_map<std::string, ProjectEntry> projectIds_;  // "provider\0slug"; committed only
    std::map<sources::Provider, std::int64_t> bytesReadSinceStart_;
    std::map<sources::Provider, std::string> lastError_;
    std::int64_t bytesReadBySteps_ = 0;
    std::function<void(const std::string&)> beforeRead_;
    std::uint64_t deferIndexesBytes_ = kDeferIndexesBytes;
    std::size_t maxDeferredKeys_ = kMaxDeferredKeys;
    bool readIndexesDeferred_ = false;
    // Set while idx_events_key is deferred: the keys written meanwhile.
    std::unique_ptr<EventKeyIndex> deferredKeys_;
    // The next cycle's steps, read on when a cycle stops at maxSteps with
    // bytes left (runCycle). Last: destroyed (its helper joined) first,
    // while what the helper refers to still exists.
    std::unique_ptr<ReadAhead> readAhead_;
    // Per provider, sums over its present files for sourcesState() (writer
    // thread only). A cycle's stat phase recounts them in one pass over every
    // file; a step then moves only the files it read: with ten thousand files,
    // a pass per step was 8% of a first ingest's writer thread.
    static constexpr std::size_t kProviderCount = 3;  // sources::Provider's values
    struct ProviderTotals {
        std::int64_t files = 0, bytesIngested = 0, bytesPending = 0, linesSkipped = 0;
    };
    using FileTotals = std::array<ProviderTotals, kProviderCount>;
    void recountFiles();
    // Adds (sign +1) or takes out (-1) what one file contributes: around
    // every change a step makes to a file entry.
    void countFile(const FileEntry& f, std::int64_t sign);
    FileTotals fileTotals_{};
};

}  // namespace etld::daemon
