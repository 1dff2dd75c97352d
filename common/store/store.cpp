#include "store/store.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <string_view>
#include <tuple>
#include <vector>

#include "store/schema.h"
#include "util/instance_lock.h"
#include "util/paths.h"

namespace etld::store {
namespace {

constexpr int kStoreDirMode = 0700;

bool fileExists(const std::string& path, off_t* size = nullptr) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return false;
    if (size) *size = st.st_size;
    return true;
}

// A file: URI for sqlite3_open_v2, with reserved characters escaped.
std::string fileUri(const std::string& path, const std::string& query) {
    std::string uri = "file:";
    for (char c : path) {
        if (c == '?' || c == '#' || c == '%') {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
            uri += buf;
        } else {
            uri += c;
        }
    }
    return uri + "?" + query;
}

Status checkReadable(Connection& db) {
    auto version = schemaVersion(db);
    if (!version) return version.error();
    if (*version > latestSchemaVersion()) {
        return Error{"schema_too_new", "the store's schema version " + std::to_string(*version) +
                                           " is newer than this etlctl knows (" +
                                           std::to_string(latestSchemaVersion()) +
                                           "); upgrade etlctl"};
    }
    if (*version < 1) return Error{"no_store", "the store has not been initialised by etld yet"};
    return {};
}

std::optional<UnixMicros> optMicros(const Statement& s, int col) { return s.columnOptInt(col); }

// Keep -wal and -shm after the last connection closes: a read-only user
// could not create them, and SQLite cannot open a WAL store without them.
// Every connection that writes the store, or checkpoints it, sets it.
void keepWalFilesOnClose(Connection& db) {
    int persist = 1;
    sqlite3_file_control(db.handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}

Status useMemoryBudget(Connection& db, int cacheKiB, std::string_view tempStore) {
    if (auto st = db.exec("PRAGMA cache_size = -" + std::to_string(cacheKiB)); !st) return st;
    return db.exec("PRAGMA temp_store = " + std::string(tempStore));
}

// Runs `build` within the index builds' budget, then restores the writer's,
// also when `build` fails (its first error is the one returned).
Status withIndexBuildBudget(Connection& db, const std::function<Status()>& build) {
    Status built = useMemoryBudget(db, kIndexBuildCacheKiB, "FILE");
    if (built) built = build();
    if (auto st = useMemoryBudget(db, kWriterCacheKiB, "MEMORY"); !st && built) return st;
    return built;
}

}  // namespace

Result<Connection> openWriter(const std::string& path, const WriterOptions& options) {
    const std::string dir = parentDirectory(path);
    if (!makeDirectories(dir, kStoreDirMode))
        return Error{"store_cantopen", "cannot create the store's directory " + dir};
    auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                         SQLITE_OPEN_NOMUTEX);
    if (!db) return db.error();
    sqlite3_busy_timeout(db->handle(), kBusyTimeoutMs);
    keepWalFilesOnClose(*db);
    // Before WAL mode, which writes the first page of a new file; a no-op on
    // a store that exists.
    if (auto st = db->exec("PRAGMA page_size = " + std::to_string(kNewStorePageBytes)); !st)
        return st.error();
    // recursive_triggers: a row that INSERT OR REPLACE (or an upsert's REPLACE)
    // deletes fires its DELETE triggers only with it on; without it the
    // counters of invariant 7 and the retractions would miss that delete.
    for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL",
                               "PRAGMA foreign_keys = ON", "PRAGMA recursive_triggers = ON"}) {
        if (auto st = db->exec(pragma); !st) return st.error();
    }
    // Migrations rebuild tables and indexes: they sort within the budget of
    // an index build, which buildIndexes below ends.
    if (auto st = useMemoryBudget(*db, kIndexBuildCacheKiB, "FILE"); !st) return st.error();
    if (auto st = db->exec("PRAGMA journal_size_limit = " + std::to_string(kWalLimitBytes)); !st)
        return st.error();
    auto pageBytes = db->queryInt("PRAGMA page_size");
    if (!pageBytes) return pageBytes.error();
    if (auto st = db->exec("PRAGMA wal_autocheckpoint = " +
                           std::to_string(kWalCheckpointBytes / std::max<std::int64_t>(*pageBytes, 512)));
        !st)
        return st.error();
    if (auto st = migrate(*db, options.beforeMigration); !st) return st.error();
    // A first ingest stopped before its end left them dropped (schema.h).
    if (auto st = buildIndexes(*db, {.read = true, .key = true}); !st) return st.error();
    return db;
}

Status buildIndexes(Connection& db, DeferredIndexes which) {
    return withIndexBuildBudget(db, [&]() -> Status {
        auto tx = Transaction::begin(db);
        if (!tx) return tx.error();
        if (which.read)
            if (auto st = ensureReadIndexes(db); !st) return st;
        if (which.key)
            if (auto st = ensureEventKeyIndex(db); !st) return st;
        return tx->commit();
    });
}

Status ensureReadIndexInTransaction(Connection& db, std::string_view name) {
    // A row per column if the index is there (no scan of sqlite_schema).
    auto columns = db.prepare("PRAGMA index_info(" + std::string(name) + ")");
    if (!columns) return columns.error();
    auto present = columns->step();
    if (!present) return present.error();
    if (*present) return {};
    // A sort of every event so far: spilled to files, not held in memory.
    return withIndexBuildBudget(db, [&] { return ensureReadIndex(db, name); });
}

Result<Connection> openWriterCompanion(const std::string& path) {
    auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
    if (!db) return db.error();
    keepWalFilesOnClose(*db);
    // Should it close last, it cuts the WAL it checkpoints to nothing, as the
    // writer does: a reader opening the store then has no frames to read.
    if (auto st = db->exec("PRAGMA journal_size_limit = " + std::to_string(kWalLimitBytes)); !st)
        return st.error();
    if (auto st = db->exec("PRAGMA query_only = 1"); !st) return st.error();
    return db;
}

Result<Connection> openReader(const std::string& path) {
    if (!fileExists(path)) return Error{"no_store", "no store at " + path};
    auto tryOpen = [&](const std::string& query) -> Result<Connection> {
        auto db = Connection::open(fileUri(path, query), SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
        if (!db) return db.error();
        sqlite3_busy_timeout(db->handle(), kBusyTimeoutMs);
        if (auto st = db->exec("PRAGMA query_only = 1"); !st) return st.error();
        if (auto st = checkReadable(*db); !st) return st.error();
        return db;
    };
    auto db = tryOpen("mode=ro");
    if (db || db.error().code == "schema_too_new" || db.error().code == "no_store") return db;
    // A plain read-only open of a WAL store fails when -shm is missing and
    // cannot be created. Immutable is safe only with no writer and no WAL
    // content to miss.
    off_t walSize = 0;
    const bool walHasContent = fileExists(path + "-wal", &walSize) && walSize > 0;
    const auto holder = lockHolder(lockPathFor(path));
    if (holder || walHasContent) {
        // Refuse rather than read a snapshot that may miss commits; say why.
        Error e = db.error();
        e.message += holder ? "; a daemon (pid " + std::to_string(*holder) +
                                  ") is running, so the store cannot be read without its -shm file"
                            : "; its -wal file holds transactions an immutable read would miss "
                              "(start etld once to checkpoint them)";
        return e;
    }
    return tryOpen("mode=ro&immutable=1");
}

namespace {

// The schema version that introduced event_counts_through.
constexpr std::int64_t kCountsWatermarkSchema = 4;

// Events above the counted watermark, per (provider, cost_source): a range
// read on the primary key, empty whenever the writer has folded.
using UncountedTail = std::vector<std::tuple<std::string, std::string, std::int64_t>>;

Result<UncountedTail> readUncountedTail(Connection& db) {
    UncountedTail tail;
    // A store a daemon of before migration 4 left behind counts every row.
    auto version = schemaVersion(db);
    if (!version) return version.error();
    if (*version < kCountsWatermarkSchema) return tail;
    auto through = db.queryInt("SELECT last_id FROM event_counts_through");
    if (!through) return through.error();
    // The primary key's range, counted here: a GROUP BY sorted the rows
    // first (a step's fold was 3% of a first ingest's writer thread). NOT
    // INDEXED: the planner could otherwise walk idx_events_provider whole.
    auto rows = db.cached("SELECT provider, cost_source FROM usage_events NOT INDEXED WHERE id > ?1");
    if (!rows) return rows.error();
    Statement& r = **rows;
    r.bind(1, *through);
    for (;;) {
        auto row = r.step();
        if (!row) {
            r.reset();
            return row.error();
        }
        if (!*row) break;
        const std::string_view provider = r.columnView(0), costSource = r.columnView(1);
        auto same = std::find_if(tail.begin(), tail.end(), [&](const auto& t) {
            return std::get<0>(t) == provider && std::get<1>(t) == costSource;
        });
        if (same == tail.end()) tail.emplace_back(std::string(provider), std::string(costSource), 1);
        else ++std::get<2>(*same);
    }
    r.reset();
    std::sort(tail.begin(), tail.end());  // in key order, as the GROUP BY gave them
    return tail;
}

void addCount(std::vector<std::pair<std::string, std::int64_t>>& counts, const std::string& key,
              std::int64_t n) {
    for (auto& [k, v] : counts) {
        if (k == key) {
            v += n;
            return;
        }
    }
    counts.emplace_back(key, n);
}

}  // namespace

Status readCounters(Connection& db, status::StatusInput& in) {
    auto counts = db.cached("SELECT dimension, key, n FROM event_counts");
    if (!counts) return counts.error();
    in.eventsByProvider.clear();
    in.eventsByCostSource.clear();
    in.eventsTotal = 0;
    Statement& c = **counts;
    for (;;) {
        auto row = c.step();
        if (!row) return row.error();
        if (!*row) break;
        const std::string dim = c.columnText(0);
        const std::int64_t n = c.columnInt(2);
        if (dim == "total") in.eventsTotal = n;
        else if (dim == "provider") in.eventsByProvider.emplace_back(c.columnText(1), n);
        else if (dim == "cost_source") in.eventsByCostSource.emplace_back(c.columnText(1), n);
    }
    c.reset();
    auto tail = readUncountedTail(db);
    if (!tail) return tail.error();
    for (const auto& [provider, costSource, n] : *tail) {
        in.eventsTotal += n;
        addCount(in.eventsByProvider, provider, n);
        addCount(in.eventsByCostSource, costSource, n);
    }
    auto maxId = db.queryInt("SELECT COALESCE(MAX(id), 0) FROM usage_events");
    if (!maxId) return maxId.error();
    in.maxEventId = *maxId;

    in.marts = {};
    auto marts = db.cached(
        "SELECT c.mart, c.n, w.last_event_id, w.last_refresh_ts FROM mart_row_counts c "
        "LEFT JOIN mart_watermark w ON w.mart_name = c.mart");
    if (!marts) return marts.error();
    Statement& m = **marts;
    for (;;) {
        auto row = m.step();
        if (!row) return row.error();
        if (!*row) break;
        const std::string name = m.columnText(0);
        for (size_t i = 0; i < status::kMartNames.size(); ++i) {
            if (status::kMartNames[i] != name) continue;
            in.marts[i].rowCount = m.columnInt(1);
            in.marts[i].watermark = m.columnOptInt(2).value_or(0);
            if (auto ts = m.columnOptText(3)) in.marts[i].lastRefresh = parseStatusTime(*ts);
        }
    }
    m.reset();
    return {};
}

Result<status::StatusInput> readStatusInput(Connection& db, const std::string& storePath) {
    status::StatusInput in;
    in.origin = status::Origin::Database;
    in.storePath = canonicalPath(storePath);
    auto tx = Transaction::begin(db, Transaction::Kind::Deferred);  // one consistent snapshot
    if (!tx) return tx.error();
    if (auto st = readCounters(db, in); !st) return st.error();
    auto version = schemaVersion(db);
    if (!version) return version.error();
    in.schemaVersion = *version;
    if (auto holder = lockHolder(lockPathFor(storePath))) in.lockHeldBy = *holder;

    auto state = db.cached(
        "SELECT watcher_enabled, last_refresh_us, events_in_last_cycle, sources_json, "
        "fault_code, fault_message, fault_since_us, recorded_at_us FROM daemon_state WHERE id = 1");
    if (!state) return state.error();
    Statement& s = **state;
    auto row = s.step();
    if (!row) return row.error();
    if (*row) {
        in.watcherEnabled = s.columnInt(0) != 0;
        in.lastRefresh = optMicros(s, 1);
        in.eventsInLastCycle = s.columnOptInt(2);
        in.sources = sourcesFromJson(s.columnText(3));
        if (auto code = s.columnOptText(4)) {
            in.fault = status::Fault{*code, s.columnText(5), s.columnInt(6)};
        }
        in.asOf = s.columnInt(7);
    }
    s.reset();

    auto jobs = db.cached(
        "SELECT job_id, started_at_us, force, status, completed_at_us, error, bytes_done, "
        "bytes_total, events_done, progress_at_us FROM backfill_jobs "
        "WHERE status = 'running' "
        "UNION ALL SELECT * FROM (SELECT job_id, started_at_us, force, status, completed_at_us, "
        "error, bytes_done, bytes_total, events_done, progress_at_us FROM backfill_jobs "
        "WHERE status <> 'running' ORDER BY completed_at_us DESC LIMIT 1)");
    if (!jobs) return jobs.error();
    Statement& j = **jobs;
    for (;;) {
        auto jr = j.step();
        if (!jr) return jr.error();
        if (!*jr) break;
        status::Job job;
        job.jobId = j.columnText(0);
        job.startedAt = j.columnInt(1);
        job.force = j.columnInt(2) != 0;
        job.status = j.columnText(3);
        job.completedAt = j.columnOptInt(4);
        job.error = j.columnOptText(5);
        job.progress.bytesDone = j.columnInt(6);
        job.progress.bytesTotal = j.columnInt(7);
        job.progress.eventsDone = j.columnInt(8);
        job.progress.updatedAt = j.columnInt(9);
        if (job.status == "running" && !in.lockHeldBy) {
            // Its daemon is gone: show it as the next daemon will record it.
            job.status = "failed";
            job.error = "interrupted";
            job.completedAt = job.progress.updatedAt;
        }
        if (job.status == "running") {
            in.currentJob = std::move(job);
        } else if (!in.lastJob || job.completedAt > in.lastJob->completedAt) {
            in.lastJob = std::move(job);
        }
    }
    j.reset();
    return in;
}

Status recordDaemonState(Connection& db, const DaemonSnapshot& snap) {
    auto stmt = db.cached(
        "INSERT INTO daemon_state (id, pid, version, started_at_us, watcher_enabled, "
        "last_refresh_us, events_in_last_cycle, sources_json, fault_code, fault_message, "
        "fault_since_us, recorded_at_us) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
        "ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, version = excluded.version, "
        "started_at_us = excluded.started_at_us, watcher_enabled = excluded.watcher_enabled, "
        "last_refresh_us = excluded.last_refresh_us, "
        "events_in_last_cycle = excluded.events_in_last_cycle, "
        "sources_json = excluded.sources_json, fault_code = excluded.fault_code, "
        "fault_message = excluded.fault_message, fault_since_us = excluded.fault_since_us, "
        "recorded_at_us = excluded.recorded_at_us");
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    s.bind(1, snap.pid).bind(2, snap.version).bind(3, snap.startedAt);
    s.bind(4, snap.watcherEnabled ? 1 : 0).bind(5, snap.lastRefresh).bind(6, snap.eventsInLastCycle);
    s.bind(7, sourcesToJson(snap.sources));
    if (snap.fault) {
        s.bind(8, snap.fault->code).bind(9, snap.fault->message).bind(10, snap.fault->since);
    } else {
        s.bindNull(8).bindNull(9).bindNull(10);
    }
    s.bind(11, snap.recordedAt);
    return s.run();
}

Status recordJob(Connection& db, const status::Job& job) {
    auto stmt = db.cached(
        "INSERT INTO backfill_jobs (job_id, started_at_us, force, status, completed_at_us, error, "
        "bytes_done, bytes_total, events_done, progress_at_us) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
        "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, "
        "completed_at_us = excluded.completed_at_us, error = excluded.error, "
        "bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, "
        "events_done = excluded.events_done, progress_at_us = excluded.progress_at_us");
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    s.bind(1, job.jobId).bind(2, job.startedAt).bind(3, job.force ? 1 : 0).bind(4, job.status);
    s.bind(5, job.completedAt).bind(6, job.error).bind(7, job.progress.bytesDone);
    s.bind(8, job.progress.bytesTotal).bind(9, job.progress.eventsDone);
    s.bind(10, job.progress.updatedAt);
    return s.run();
}

Result<int> failInterruptedJobs(Connection& db) {
    auto stmt = db.cached(
        "UPDATE backfill_jobs SET status = 'failed', error = 'interrupted', "
        "completed_at_us = progress_at_us WHERE status = 'running'");
    if (!stmt) return stmt.error();
    if (auto st = (*stmt)->run(); !st) return st.error();
    return db.changes();
}

Result<std::int64_t> ensureProject(Connection& db, const std::string& provider,
                                   const std::string& slug, const std::optional<std::string>& path,
                                   double nowSeconds, double lastModifiedSeconds) {
    auto stmt = db.cached(
        "INSERT INTO projects (provider, slug, path, display_name, first_seen, last_modified) "
        "VALUES (?1, ?2, ?3, ?2, ?4, ?5) ON CONFLICT (provider, slug) DO UPDATE SET "
        "path = COALESCE(projects.path, excluded.path) RETURNING id");
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    s.bind(1, provider).bind(2, slug).bind(3, path).bind(4, nowSeconds).bind(5, lastModifiedSeconds);
    auto row = s.step();
    if (!row) return row.error();
    const std::int64_t id = s.columnInt(0);
    s.reset();
    return id;
}

Status foldEventCounts(Connection& db) {
    auto tail = readUncountedTail(db);
    if (!tail) return tail.error();
    if (tail->empty()) return {};
    auto add = db.cached(
        "INSERT INTO event_counts (dimension, key, n) VALUES (?1, ?2, ?3) "
        "ON CONFLICT DO UPDATE SET n = n + excluded.n");
    if (!add) return add.error();
    auto bump = [&](const char* dimension, const std::string& key, std::int64_t n) -> Status {
        (*add)->bind(1, dimension).bind(2, key).bind(3, n);
        return (*add)->run();
    };
    for (const auto& [provider, costSource, n] : *tail) {
        if (auto st = bump("total", "", n); !st) return st;
        if (auto st = bump("provider", provider, n); !st) return st;
        if (auto st = bump("cost_source", costSource, n); !st) return st;
    }
    auto advance = db.cached(
        "UPDATE event_counts_through SET last_id = "
        "MAX(last_id, (SELECT COALESCE(MAX(id), 0) FROM usage_events))");
    if (!advance) return advance.error();
    return (*advance)->run();
}

Result<std::int64_t> insertEvent(Connection& db, const NewEvent& e) {
    auto project = ensureProject(db, e.provider, e.projectSlug, std::nullopt, 0, 0);
    if (!project) return project.error();
    auto stmt = db.cached(
        "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, speed, "
        "input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, reasoning_tokens, "
        "cost_usd, cost_source, role, event_key, cache_create_1h_tokens) "
        "VALUES (?1, ?2, ?3, ?4, substr(?4, 1, 10), ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
        "'assistant', COALESCE(NULLIF(?14, ''), lower(hex(randomblob(16)))), ?15)");
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    s.bind(1, e.provider).bind(2, *project).bind(3, e.sessionId).bind(4, e.ts).bind(5, e.model);
    s.bind(6, e.speed).bind(7, e.inputTokens).bind(8, e.outputTokens).bind(9, e.cacheReadTokens);
    s.bind(10, e.cacheCreateTokens).bind(11, e.reasoningTokens).bind(12, e.costUsd);
    s.bind(13, e.costSource);
    s.bind(14, e.eventKey);  // empty: a random key (see the statement)
    s.bind(15, e.cacheCreate1hTokens);
    if (auto st = s.run(); !st) return st.error();
    return db.lastInsertRowid();
}

std::string sourcesToJson(const std::vector<status::SourceState>& sources) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    for (const auto& s : sources) {
        w.Key(s.provider.c_str());
        w.StartObject();
        w.Key("roots");
        w.StartArray();
        for (const auto& r : s.roots) w.String(r.c_str(), static_cast<rapidjson::SizeType>(r.size()));
        w.EndArray();
        w.Key("watching");
        w.String(s.watching.c_str());
        w.Key("files");
        w.Int64(s.files);
        w.Key("bytes_ingested");
        w.Int64(s.bytesIngested);
        w.Key("bytes_pending");
        w.Int64(s.bytesPending);
        w.Key("bytes_read_since_start");
        w.Int64(s.bytesReadSinceStart);
        w.Key("lines_skipped");
        w.Int64(s.linesSkipped);
        w.Key("last_error");
        if (s.lastError) w.String(s.lastError->c_str());
        else w.Null();
        w.EndObject();
    }
    w.EndObject();
    return buf.GetString();
}

std::vector<status::SourceState> sourcesFromJson(const std::string& json) {
    std::vector<status::SourceState> out;
    rapidjson::Document doc;
    if (doc.Parse(json.data(), json.size()).HasParseError() || !doc.IsObject()) return out;
    auto i64 = [](const rapidjson::Value& o, const char* k) -> std::int64_t {
        auto it = o.FindMember(k);
        return it != o.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
    };
    for (const auto& m : doc.GetObject()) {
        if (!m.value.IsObject()) continue;
        status::SourceState s;
        s.provider = m.name.GetString();
        const auto& o = m.value;
        if (auto r = o.FindMember("roots"); r != o.MemberEnd() && r->value.IsArray())
            for (const auto& root : r->value.GetArray())
                if (root.IsString()) s.roots.emplace_back(root.GetString());
        if (auto w = o.FindMember("watching"); w != o.MemberEnd() && w->value.IsString())
            s.watching = w->value.GetString();
        s.files = i64(o, "files");
        s.bytesIngested = i64(o, "bytes_ingested");
        s.bytesPending = i64(o, "bytes_pending");
        s.bytesReadSinceStart = i64(o, "bytes_read_since_start");
        s.linesSkipped = i64(o, "lines_skipped");
        if (auto e = o.FindMember("last_error"); e != o.MemberEnd() && e->value.IsString())
            s.lastError = e->value.GetString();
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace etld::store
