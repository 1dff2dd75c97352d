// The store: how each program opens it, and the reads and writes the status
// surface needs. Access rules (store.md): the daemon's writer thread owns the
// only write connection; everyone else opens read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status/status.h"
#include "store/sqlite.h"
#include "util/time.h"

namespace etld::store {

// Bound on the WAL: past this the writer checkpoints and truncates it.
constexpr std::int64_t kWalLimitBytes = 64LL * 1024 * 1024;
// The WAL is checkpointed once it holds this much (SQLite's default is 1000
// pages, ~4 MiB). Each checkpoint copies pages to the database and syncs it;
// on a first ingest the same index pages are written again and again, and
// checkpointing every 32 MiB instead of every 4 took ~10% of the CPU and
// ~15% of the wall time off a 1 GB ingest (docs/performance.md).
constexpr std::int64_t kWalCheckpointBytes = 32LL * 1024 * 1024;
static_assert(kWalCheckpointBytes < kWalLimitBytes);
// The page size of a store etld creates (one that exists keeps its own).
// Each page is a WAL frame of two writes, and a read into the cache: with
// SQLite's default 4096 bytes, a first ingest of 1 GB made 450,000 such
// system calls, with 8192 bytes 260,000, and took 7% less CPU.
constexpr int kNewStorePageBytes = 8192;
// How long a writer or reader waits for a lock held by another connection.
constexpr int kBusyTimeoutMs = 5000;

struct WriterOptions {
    // Called before each migration is applied (systemd EXTEND_TIMEOUT_USEC).
    std::function<void(std::int64_t)> beforeMigration;
};

// Opens (creating it and its directory) the store for writing: WAL,
// synchronous=NORMAL, foreign keys, busy timeout, persistent WAL files (so
// read-only users can open it after the daemon stops), migrations applied.
Result<Connection> openWriter(const std::string& path, const WriterOptions& options = {});

// The writer's page cache. With temporary data kept in memory too, statement
// journals never touch the disk, and a first ingest's index pages stay
// cached (about 10% less CPU on a 1 GB ingest, for ~16 MiB of RSS).
constexpr int kWriterCacheKiB = 16 * 1024;
// The page cache while building indexes a first ingest deferred: a sort
// holds up to a cache's worth of rows in memory, and the key index's 100-byte
// keys, sorted in the writer's cache with temporary data in memory, took the
// peak RSS of a 1 GB ingest from 50 to 69 MB. With this cache, runs spill to
// temporary files instead.
constexpr int kIndexBuildCacheKiB = 4 * 1024;

// Ensures, in one transaction, indexes a first ingest defers (schema.h);
// then restores the writer's cache and temporary store, also on failure.
struct DeferredIndexes {
    bool read = false;  // store.md's five
    bool key = false;   // idx_events_key
};
Status buildIndexes(Connection& db, DeferredIndexes which);

// Builds one of store.md's indexes by name (schema.h) when the store lacks
// it, inside the write transaction the caller has open, within the same
// budget; then restores the writer's. The marts call it when they must seek
// a session's or a project's events while a first ingest has them dropped.
Status ensureReadIndexInTransaction(Connection& db, std::string_view name);

// A second connection to the store the daemon's writer holds, for one of
// its helper threads (WAL checkpoints, reading the marts' steps ahead): it
// writes no row (query_only) and, closing last, keeps -wal and -shm as the
// writer does. Read-write, so that it can checkpoint.
Result<Connection> openWriterCompanion(const std::string& path);

// Opens the store read-only with query_only. Works after the daemon stopped,
// also for a user who cannot write the store's directory; falls back to an
// immutable open only when no daemon holds the lock and the WAL is absent or
// empty (an immutable read would miss a non-empty WAL's commits). Refuses a
// schema newer than this build ("schema_too_new") and a missing store
// ("no_store").
Result<Connection> openReader(const std::string& path);

// Everything the status document needs, from the store alone (the daemon's
// recorded snapshot, counters, jobs). `running` is left unknown; a job
// recorded as running whose daemon no longer holds the lock shows as failed
// with error "interrupted".
Result<status::StatusInput> readStatusInput(Connection& db, const std::string& storePath);

// The counters part only (event counts, max id, marts): what the daemon loads
// at start-up and after each commit. Event counts are event_counts plus the
// uncounted tail (schema.cpp, migration 4).
Status readCounters(Connection& db, status::StatusInput& into);

// Writer, inside a transaction, before its commit: adds the events inserted
// since the last fold to event_counts and moves its watermark past them, so
// readers find the tail empty (invariant 7: counts kept in the transaction
// that changes the rows). Costs one range read of the new rows.
Status foldEventCounts(Connection& db);

// The snapshot the daemon records in the same transaction as each cycle.
struct DaemonSnapshot {
    std::int64_t pid = 0;
    std::string version;
    UnixMicros startedAt = 0;
    bool watcherEnabled = true;
    std::optional<UnixMicros> lastRefresh;
    std::optional<std::int64_t> eventsInLastCycle;
    std::vector<status::SourceState> sources;
    std::optional<status::Fault> fault;
    UnixMicros recordedAt = 0;
};
Status recordDaemonState(Connection& db, const DaemonSnapshot& snapshot);

// Backfill job records.
Status recordJob(Connection& db, const status::Job& job);
// Marks every job still recorded as running failed ("interrupted"), its
// completion time its last recorded progress. The daemon calls this at
// start-up, holding the lock. Returns how many it marked.
Result<int> failInterruptedJobs(Connection& db);

// Minimal event writes, used by tests and tools until the ingest path owns
// them. Both run inside the caller's transaction.
struct NewEvent {
    std::string provider = "claude";
    std::string projectSlug = "-test";
    std::string sessionId = "s";
    std::string ts = "2026-01-01T00:00:00.000Z";
    std::string model = "claude-sonnet-4-20250514";
    std::string speed = "standard";
    std::int64_t inputTokens = 0, outputTokens = 0, cacheReadTokens = 0, cacheCreateTokens = 0;
    std::int64_t reasoningTokens = 0, cacheCreate1hTokens = 0;
    double costUsd = 0;
    std::string costSource = "rate_card";
    std::string eventKey;
};
// The project's id, created when new (first_seen = now, last_modified = the
// given source file mtime); a path is set only where the project has none.
Result<std::int64_t> ensureProject(Connection& db, const std::string& provider,
                                   const std::string& slug, const std::optional<std::string>& path,
                                   double nowSeconds, double lastModifiedSeconds);
Result<std::int64_t> insertEvent(Connection& db, const NewEvent& event);

// Sources block <-> JSON text (daemon_state.sources_json).
std::string sourcesToJson(const std::vector<status::SourceState>& sources);
std::vector<status::SourceState> sourcesFromJson(const std::string& json);

}  // namespace etld::store
