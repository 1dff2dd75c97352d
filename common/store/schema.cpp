// Schema and migrations.
//
// Tables that other programs read (projects, usage_events, the five marts,
// mart_watermark) keep the names, columns and defaults of store.md. Ours:
//
//   event_counts     dimension ('total' | 'provider' | 'cost_source'), key, n:
//                    the counters of invariant 7 for the events with ids up to
//                    event_counts_through.last_id; the few above it (inserted
//                    in the open transaction, folded in before its commit)
//                    are read on the primary key (migration 4). Deletes and
//                    updates keep them by triggers in the very statement that
//                    changes usage_events, so they can never drift from
//                    COUNT(*)/GROUP BY and status never scans. `MAX(id)` needs
//                    no counter: on an INTEGER PRIMARY KEY it is one B-tree
//                    descent.
//   mart_row_counts  mart name -> rows, kept by triggers on each mart table.
//   daemon_state     one row: the snapshot the daemon records with each cycle's
//                    commit, read by the status when no daemon answers.
//   backfill_jobs    every backfill job; at most one 'running'.
//
// Event ids come from AUTOINCREMENT, so an id is never reused, even after the
// row with the highest id is deleted (a merge) — watermarks depend on that.
//
// Each migration runs in one transaction together with its user_version bump:
// a crash leaves the store at the old version or the new one, never between.
#include "store/schema.h"

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace etld::store {
namespace {

constexpr const char* kMigration1 = R"sql(
CREATE TABLE projects (
  id            INTEGER PRIMARY KEY,
  provider      TEXT NOT NULL,
  slug          TEXT NOT NULL,
  path          TEXT,
  display_name  TEXT NOT NULL,
  first_seen    REAL NOT NULL,
  last_modified REAL NOT NULL,
  UNIQUE (provider, slug)
);

CREATE TABLE usage_events (
  id                     INTEGER PRIMARY KEY AUTOINCREMENT,
  provider               TEXT NOT NULL,
  account                TEXT NOT NULL DEFAULT 'default',
  project_id             INTEGER NOT NULL REFERENCES projects(id),
  session_id             TEXT NOT NULL,
  ts                     TEXT NOT NULL,
  day                    TEXT NOT NULL,
  model                  TEXT NOT NULL DEFAULT '',
  speed                  TEXT NOT NULL DEFAULT 'standard',
  input_tokens           INTEGER NOT NULL DEFAULT 0,
  output_tokens          INTEGER NOT NULL DEFAULT 0,
  cache_read_tokens      INTEGER NOT NULL DEFAULT 0,
  cache_create_tokens    INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens       INTEGER NOT NULL DEFAULT 0,
  cost_usd               REAL NOT NULL DEFAULT 0.0,
  cost_source            TEXT NOT NULL DEFAULT 'rate_card',
  role                   TEXT NOT NULL,
  raw_extras             TEXT,
  -- ours: identity of the record in its source (sources.md), and the 1-hour
  -- share of cache_create_tokens so that an event can be re-priced alone.
  event_key              TEXT NOT NULL UNIQUE,
  cache_create_1h_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_events_day      ON usage_events(day);
CREATE INDEX idx_events_project  ON usage_events(project_id, day);
CREATE INDEX idx_events_provider ON usage_events(provider, day);
CREATE INDEX idx_events_session  ON usage_events(session_id);
CREATE INDEX idx_events_model    ON usage_events(model, day);

CREATE TABLE event_counts (
  dimension TEXT NOT NULL,
  key       TEXT NOT NULL,
  n         INTEGER NOT NULL,
  PRIMARY KEY (dimension, key)
) WITHOUT ROWID;
INSERT INTO event_counts VALUES ('total', '', 0);

CREATE TRIGGER event_counts_insert AFTER INSERT ON usage_events BEGIN
  UPDATE event_counts SET n = n + 1 WHERE dimension = 'total';
  INSERT INTO event_counts VALUES ('provider', NEW.provider, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO event_counts VALUES ('cost_source', NEW.cost_source, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER event_counts_delete AFTER DELETE ON usage_events BEGIN
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'total';
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'provider' AND key = OLD.provider;
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'cost_source' AND key = OLD.cost_source;
  DELETE FROM event_counts WHERE dimension <> 'total' AND n = 0
    AND ((dimension = 'provider' AND key = OLD.provider)
      OR (dimension = 'cost_source' AND key = OLD.cost_source));
END;
CREATE TRIGGER event_counts_update AFTER UPDATE OF provider, cost_source ON usage_events
  WHEN NEW.provider IS NOT OLD.provider OR NEW.cost_source IS NOT OLD.cost_source BEGIN
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'provider' AND key = OLD.provider;
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'cost_source' AND key = OLD.cost_source;
  INSERT INTO event_counts VALUES ('provider', NEW.provider, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO event_counts VALUES ('cost_source', NEW.cost_source, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  DELETE FROM event_counts WHERE dimension <> 'total' AND n = 0;
END;

CREATE TABLE daily_mart (
  day            TEXT NOT NULL,
  project_id     INTEGER NOT NULL,
  provider       TEXT NOT NULL,
  model          TEXT NOT NULL,
  speed          TEXT NOT NULL DEFAULT 'standard',
  input_tokens   INTEGER NOT NULL DEFAULT 0,
  output_tokens  INTEGER NOT NULL DEFAULT 0,
  cache_read     INTEGER NOT NULL DEFAULT 0,
  cache_create   INTEGER NOT NULL DEFAULT 0,
  message_count  INTEGER NOT NULL DEFAULT 0,
  session_count  INTEGER NOT NULL DEFAULT 0,
  cost_usd       REAL NOT NULL DEFAULT 0.0,
  PRIMARY KEY (day, project_id, provider, model, speed)
);
CREATE TABLE session_mart (
  provider                TEXT NOT NULL,
  session_id              TEXT NOT NULL,
  project_id              INTEGER NOT NULL,
  primary_model           TEXT,
  first_ts                TEXT,
  last_ts                 TEXT,
  message_count           INTEGER NOT NULL DEFAULT 0,
  user_message_count      INTEGER NOT NULL DEFAULT 0,
  assistant_message_count INTEGER NOT NULL DEFAULT 0,
  input_tokens            INTEGER NOT NULL DEFAULT 0,
  output_tokens           INTEGER NOT NULL DEFAULT 0,
  cache_read              INTEGER NOT NULL DEFAULT 0,
  cache_create            INTEGER NOT NULL DEFAULT 0,
  cost_usd                REAL NOT NULL DEFAULT 0.0,
  is_one_shot             INTEGER NOT NULL DEFAULT 0,
  cwd                     TEXT,
  PRIMARY KEY (provider, session_id)
);
CREATE TABLE project_mart (
  project_id          INTEGER PRIMARY KEY,
  provider            TEXT NOT NULL,
  slug                TEXT NOT NULL,
  display_name        TEXT NOT NULL,
  first_ts            TEXT,
  last_ts             TEXT,
  total_messages      INTEGER NOT NULL DEFAULT 0,
  total_sessions      INTEGER NOT NULL DEFAULT 0,
  total_input_tokens  INTEGER NOT NULL DEFAULT 0,
  total_output_tokens INTEGER NOT NULL DEFAULT 0,
  total_cache_read    INTEGER NOT NULL DEFAULT 0,
  total_cache_create  INTEGER NOT NULL DEFAULT 0,
  total_cost_usd      REAL NOT NULL DEFAULT 0.0
);
CREATE TABLE provider_day_mart (
  day           TEXT NOT NULL,
  provider      TEXT NOT NULL,
  cost_usd      REAL NOT NULL DEFAULT 0.0,
  message_count INTEGER NOT NULL DEFAULT 0,
  session_count INTEGER NOT NULL DEFAULT 0,
  project_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, provider)
);
CREATE TABLE model_day_mart (
  day           TEXT NOT NULL,
  model         TEXT NOT NULL,
  speed         TEXT NOT NULL DEFAULT 'standard',
  cost_usd      REAL NOT NULL DEFAULT 0.0,
  input_tokens  INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read    INTEGER NOT NULL DEFAULT 0,
  cache_create  INTEGER NOT NULL DEFAULT 0,
  message_count INTEGER NOT NULL DEFAULT 0,
  session_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, model, speed)
);

CREATE TABLE mart_watermark (
  mart_name       TEXT PRIMARY KEY,
  last_event_id   INTEGER NOT NULL DEFAULT 0,
  last_refresh_ts TEXT NOT NULL
);

CREATE TABLE mart_row_counts (
  mart TEXT PRIMARY KEY,
  n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO mart_row_counts VALUES
  ('daily', 0), ('session', 0), ('project', 0), ('provider_day', 0), ('model_day', 0);

CREATE TABLE daemon_state (
  id                   INTEGER PRIMARY KEY CHECK (id = 1),
  pid                  INTEGER NOT NULL,
  version              TEXT NOT NULL,
  started_at_us        INTEGER NOT NULL,
  watcher_enabled      INTEGER NOT NULL,
  last_refresh_us      INTEGER,
  events_in_last_cycle INTEGER,
  sources_json         TEXT NOT NULL DEFAULT '{}',
  fault_code           TEXT,
  fault_message        TEXT,
  fault_since_us       INTEGER,
  recorded_at_us       INTEGER NOT NULL
);

CREATE TABLE backfill_jobs (
  job_id          TEXT PRIMARY KEY,
  started_at_us   INTEGER NOT NULL,
  force           INTEGER NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
  completed_at_us INTEGER,
  error           TEXT,
  bytes_done      INTEGER NOT NULL DEFAULT 0,
  bytes_total     INTEGER NOT NULL DEFAULT 0,
  events_done     INTEGER NOT NULL DEFAULT 0,
  progress_at_us  INTEGER NOT NULL
);
CREATE INDEX idx_jobs_running ON backfill_jobs(status) WHERE status = 'running';
CREATE INDEX idx_jobs_completed ON backfill_jobs(completed_at_us);
)sql";

// Migration 2: ingest. Per-file checkpoints, what the winner rules of
// sources.md compare, session working directories, and retractions.
//
//   file_checkpoints   one row per source file: identity hints (dev, ino),
//                      fingerprints of the head and of the bytes before the
//                      offset, size and mtime at the last read, the offset of
//                      the next unread line, the parser state. Moves only in
//                      the transaction that writes the events read from those
//                      bytes (invariant 2).
//   event_retractions  what a revised or merged-away event contributed, under
//                      its old id (invariant 4); marts take it back out when
//                      they had absorbed that id.
//   session_cwd        the working directory of a session's earliest record
//                      that names one (session_mart.cwd).
//   claude_message_sessions  (message.id, session) of every non-sidechain
//                      Claude record: what a sidechain replay may belong to
//                      (keyed by session first since migration 7).
constexpr const char* kMigration2 = R"sql(
ALTER TABLE usage_events ADD COLUMN source_path TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_events ADD COLUMN source_offset INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN is_sidechain INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN has_speed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN message_id TEXT;
ALTER TABLE usage_events ADD COLUMN request_id TEXT;
CREATE INDEX idx_events_message ON usage_events(message_id, session_id)
  WHERE message_id IS NOT NULL;

CREATE TABLE file_checkpoints (
  path          TEXT PRIMARY KEY,
  provider      TEXT NOT NULL,
  rel_path      TEXT NOT NULL,
  dev           INTEGER NOT NULL,
  ino           INTEGER NOT NULL,
  size          INTEGER NOT NULL,
  mtime_ns      INTEGER NOT NULL,
  offset        INTEGER NOT NULL,
  head_hash     INTEGER NOT NULL,
  head_len      INTEGER NOT NULL,
  tail_hash     INTEGER NOT NULL,
  tail_len      INTEGER NOT NULL,
  parser_state  TEXT NOT NULL DEFAULT '',
  lines_skipped INTEGER NOT NULL DEFAULT 0,
  updated_at_us INTEGER NOT NULL
);

CREATE TABLE event_retractions (
  seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
  old_event_id        INTEGER NOT NULL,
  provider            TEXT NOT NULL,
  project_id          INTEGER NOT NULL,
  session_id          TEXT NOT NULL,
  ts                  TEXT NOT NULL,
  day                 TEXT NOT NULL,
  model               TEXT NOT NULL,
  speed               TEXT NOT NULL,
  input_tokens        INTEGER NOT NULL,
  output_tokens       INTEGER NOT NULL,
  cache_read_tokens   INTEGER NOT NULL,
  cache_create_tokens INTEGER NOT NULL,
  cost_usd            REAL NOT NULL,
  role                TEXT NOT NULL
);

-- Keeps the retraction in the same statement as the change, whoever makes
-- it: a DELETE (merge, or the old half of a revision) records what the row
-- contributed. A revision is a DELETE of the old row plus an INSERT of the
-- new one under a fresh id, so marts re-absorb it.
CREATE TRIGGER usage_events_retract AFTER DELETE ON usage_events BEGIN
  INSERT INTO event_retractions (old_event_id, provider, project_id, session_id, ts, day, model,
    speed, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, role)
  VALUES (OLD.id, OLD.provider, OLD.project_id, OLD.session_id, OLD.ts, OLD.day, OLD.model,
    OLD.speed, OLD.input_tokens, OLD.output_tokens, OLD.cache_read_tokens,
    OLD.cache_create_tokens, OLD.cost_usd, OLD.role);
END;

ALTER TABLE mart_watermark ADD COLUMN last_retraction_seq INTEGER NOT NULL DEFAULT 0;

-- Claude rule 3: every session in which a non-sidechain record of a message
-- appears (Claude Code copies responses between transcripts, so the stored
-- winner's session is not the only one a sidechain replay can belong to).
CREATE TABLE claude_message_sessions (
  message_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  PRIMARY KEY (message_id, session_id)
) WITHOUT ROWID;

CREATE TABLE session_cwd (
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  cwd        TEXT NOT NULL,
  first_ts   TEXT NOT NULL,
  PRIMARY KEY (provider, session_id)
) WITHOUT ROWID;
)sql";

// Migration 3: the marts refresh engine (store/marts.cpp). Self-contained: it
// empties the marts and their watermarks (derived data; the first refresh
// absorbs every event again), adds to each mart its cost as an exact 128-bit
// integer of 2^-80 USD, and creates the helper tables of counted members —
// one row per (mart key, member) while the mart holds events with that
// member, `events` of them — and the triggers that keep the columns that do
// not come from events (session cwd, project names) in step with their
// tables. Layouts and rules: docs/schema.md, "Marts and their helper tables".
constexpr const char* kMigration3 = R"sql(
DELETE FROM daily_mart;
DELETE FROM session_mart;
DELETE FROM project_mart;
DELETE FROM provider_day_mart;
DELETE FROM model_day_mart;
DELETE FROM mart_watermark;

ALTER TABLE daily_mart ADD COLUMN cost_exact_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_mart ADD COLUMN cost_exact_lo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE session_mart ADD COLUMN cost_exact_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE session_mart ADD COLUMN cost_exact_lo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE project_mart ADD COLUMN cost_exact_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE project_mart ADD COLUMN cost_exact_lo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE provider_day_mart ADD COLUMN cost_exact_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE provider_day_mart ADD COLUMN cost_exact_lo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_day_mart ADD COLUMN cost_exact_hi INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_day_mart ADD COLUMN cost_exact_lo INTEGER NOT NULL DEFAULT 0;

CREATE TABLE daily_mart_sessions (
  day        TEXT NOT NULL,
  project_id INTEGER NOT NULL,
  provider   TEXT NOT NULL,
  model      TEXT NOT NULL,
  speed      TEXT NOT NULL,
  session_id TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (day, project_id, provider, model, speed, session_id)
) WITHOUT ROWID;

CREATE TABLE session_mart_models (
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  model      TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (provider, session_id, model)
) WITHOUT ROWID;
CREATE INDEX session_mart_models_rank
  ON session_mart_models (provider, session_id, events DESC, model);

CREATE TABLE session_mart_ts (
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  ts         TEXT NOT NULL,
  project_id INTEGER NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (provider, session_id, ts, project_id)
) WITHOUT ROWID;

CREATE TABLE project_mart_sessions (
  project_id INTEGER NOT NULL,
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (project_id, provider, session_id)
) WITHOUT ROWID;

CREATE TABLE project_mart_ts (
  project_id INTEGER NOT NULL,
  ts         TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (project_id, ts)
) WITHOUT ROWID;

CREATE TABLE provider_day_mart_sessions (
  day        TEXT NOT NULL,
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (day, provider, session_id)
) WITHOUT ROWID;

CREATE TABLE provider_day_mart_projects (
  day        TEXT NOT NULL,
  provider   TEXT NOT NULL,
  project_id INTEGER NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (day, provider, project_id)
) WITHOUT ROWID;

CREATE TABLE model_day_mart_sessions (
  day        TEXT NOT NULL,
  model      TEXT NOT NULL,
  speed      TEXT NOT NULL,
  provider   TEXT NOT NULL,
  session_id TEXT NOT NULL,
  events     INTEGER NOT NULL,
  PRIMARY KEY (day, model, speed, provider, session_id)
) WITHOUT ROWID;

CREATE TRIGGER session_cwd_mart_insert AFTER INSERT ON session_cwd BEGIN
  UPDATE session_mart SET cwd = NEW.cwd
    WHERE provider = NEW.provider AND session_id = NEW.session_id;
END;
CREATE TRIGGER session_cwd_mart_update AFTER UPDATE ON session_cwd BEGIN
  UPDATE session_mart SET cwd = NULL
    WHERE provider = OLD.provider AND session_id = OLD.session_id;
  UPDATE session_mart SET cwd = NEW.cwd
    WHERE provider = NEW.provider AND session_id = NEW.session_id;
END;
CREATE TRIGGER session_cwd_mart_delete AFTER DELETE ON session_cwd BEGIN
  UPDATE session_mart SET cwd = NULL
    WHERE provider = OLD.provider AND session_id = OLD.session_id;
END;
CREATE TRIGGER projects_mart_update AFTER UPDATE OF provider, slug, display_name ON projects
BEGIN
  UPDATE project_mart SET provider = NEW.provider, slug = NEW.slug,
    display_name = NEW.display_name WHERE project_id = NEW.id;
END;
)sql";

// Migration 4: event counts without a trigger per insert. The AFTER INSERT
// trigger ran three statements for every row written, ~16% of the CPU of a
// first ingest. Now the counts hold every row with id <= the watermark
// event_counts_through.last_id; rows above it (only ever new inserts: ids
// grow) are the *uncounted tail*, which readers add with one range read on
// the primary key, and which the writer folds into the counts before each
// commit (store.cpp, foldEventCounts), so the tail a reader meets is empty.
// Deletes and updates of counted rows keep their triggers; those of rows in
// the tail change nothing, the tail read sees the rows as they are. So the
// counts can still not drift: forgetting a fold costs a longer read, never
// a wrong number.
constexpr const char* kMigration4 = R"sql(
CREATE TABLE event_counts_through (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  last_id INTEGER NOT NULL
);
INSERT INTO event_counts_through VALUES (1, (SELECT COALESCE(MAX(id), 0) FROM usage_events));

DROP TRIGGER event_counts_insert;
DROP TRIGGER event_counts_delete;
DROP TRIGGER event_counts_update;
CREATE TRIGGER event_counts_delete AFTER DELETE ON usage_events
  WHEN OLD.id <= (SELECT last_id FROM event_counts_through) BEGIN
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'total';
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'provider' AND key = OLD.provider;
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'cost_source' AND key = OLD.cost_source;
  DELETE FROM event_counts WHERE dimension <> 'total' AND n = 0
    AND ((dimension = 'provider' AND key = OLD.provider)
      OR (dimension = 'cost_source' AND key = OLD.cost_source));
END;
CREATE TRIGGER event_counts_update AFTER UPDATE OF provider, cost_source ON usage_events
  WHEN (NEW.provider IS NOT OLD.provider OR NEW.cost_source IS NOT OLD.cost_source)
   AND OLD.id <= (SELECT last_id FROM event_counts_through) BEGIN
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'provider' AND key = OLD.provider;
  UPDATE event_counts SET n = n - 1 WHERE dimension = 'cost_source' AND key = OLD.cost_source;
  INSERT INTO event_counts VALUES ('provider', NEW.provider, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  INSERT INTO event_counts VALUES ('cost_source', NEW.cost_source, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
  DELETE FROM event_counts WHERE dimension <> 'total' AND n = 0;
END;
-- An id never moves into or out of the tail: rows keep their ids.
CREATE TRIGGER usage_events_id_fixed BEFORE UPDATE OF id ON usage_events
  WHEN NEW.id IS NOT OLD.id BEGIN
  SELECT RAISE(ABORT, 'usage_events.id never changes');
END;
)sql";

// Row-count triggers for the five marts, one pair per table.
std::string martCountTriggers() {
    std::string sql;
    for (const char* mart : {"daily", "session", "project", "provider_day", "model_day"}) {
        const std::string m = mart;
        sql += "CREATE TRIGGER " + m + "_mart_count_insert AFTER INSERT ON " + m +
               "_mart BEGIN UPDATE mart_row_counts SET n = n + 1 WHERE mart = '" + m +
               "'; END;\n";
        sql += "CREATE TRIGGER " + m + "_mart_count_delete AFTER DELETE ON " + m +
               "_mart BEGIN UPDATE mart_row_counts SET n = n - 1 WHERE mart = '" + m +
               "'; END;\n";
    }
    return sql;
}

// Migration 5: only sidechain events are looked up by message (a main
// response absorbing its sidechain replays), and they are a few in a hundred;
// the other Claude events no longer pay a random-key index insert each.
constexpr const char* kMigration5 = R"sql(
DROP INDEX idx_events_message;
CREATE INDEX idx_events_sidechain_message ON usage_events(message_id, session_id)
  WHERE is_sidechain = 1 AND message_id IS NOT NULL;
)sql";

// Migration 6: the uniqueness of usage_events.event_key moves from the
// column (an automatic index, which SQLite cannot drop) to the named index
// idx_events_key, so that a first ingest can build it at its end like the
// read indexes (daemon/event_keys.h). SQLite cannot alter a column
// constraint, so the table is rebuilt: the same columns in the same order,
// every row with its id, the AUTOINCREMENT sequence (ids are never reused,
// even those of deleted rows), and the indexes and triggers the store has
// on it, from their own text.
Status moveEventKeyUniquenessToIndex(Connection& db) {
    constexpr std::string_view kInlineKey = "event_key              TEXT NOT NULL UNIQUE";
    constexpr std::string_view kPlainKey = "event_key              TEXT NOT NULL";
    std::string table;
    std::vector<std::string> dependents;  // indexes, then triggers
    {
        auto stmt = db.prepare(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'usage_events' AND sql IS NOT NULL "
            "ORDER BY type = 'trigger', name");
        if (!stmt) return stmt.error();
        for (;;) {
            auto row = stmt->step();
            if (!row) return row.error();
            if (!*row) break;
            if (stmt->columnText(0) == "table") table = stmt->columnText(1);
            else dependents.push_back(stmt->columnText(1));
        }
    }
    const auto at = table.find(kInlineKey);
    if (at == std::string::npos || table.find(kInlineKey, at + 1) != std::string::npos)
        return Error{"migration_failed", "usage_events.event_key is not declared as migration 1 did"};
    table.replace(at, kInlineKey.size(), kPlainKey);
    const std::string_view kCreate = "CREATE TABLE usage_events (";
    if (table.rfind(kCreate, 0) != 0)
        return Error{"migration_failed", "usage_events is not declared as migration 1 did"};
    table.replace(0, kCreate.size(), "CREATE TABLE usage_events_v6 (");
    for (const std::string& sql :
         {table, std::string("INSERT INTO usage_events_v6 SELECT * FROM usage_events"),
          std::string("DELETE FROM sqlite_sequence WHERE name = 'usage_events_v6'"),
          std::string("INSERT INTO sqlite_sequence (name, seq) "
                      "SELECT 'usage_events_v6', seq FROM sqlite_sequence WHERE name = 'usage_events'"),
          std::string("DROP TABLE usage_events"),
          std::string("ALTER TABLE usage_events_v6 RENAME TO usage_events")})
        if (auto st = db.exec(sql); !st) return st;
    for (const std::string& sql : dependents)
        if (auto st = db.exec(sql); !st) return st;
    return ensureEventKeyIndex(db);
}

// Migration 7: claude_message_sessions keyed by session first. Only whole
// (message, session) pairs are looked up, and a step's records come a
// session (a transcript) at a time: keyed by message, a random id, every
// insert dirtied its own page, which the step's commit wrote to the WAL.
constexpr const char* kMigration7 = R"sql(
CREATE TABLE claude_message_sessions_v7 (
  session_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  PRIMARY KEY (session_id, message_id)
) WITHOUT ROWID;
INSERT INTO claude_message_sessions_v7 (session_id, message_id)
  SELECT session_id, message_id FROM claude_message_sessions;
DROP TABLE claude_message_sessions;
ALTER TABLE claude_message_sessions_v7 RENAME TO claude_message_sessions;
)sql";

using Migration = std::function<Status(Connection&)>;

Migration sql(std::string text) {
    return [text = std::move(text)](Connection& db) { return db.exec(text); };
}

// Migration 8: a session's and a project's first and last timestamps are
// kept in their mart rows alone (store/marts.cpp, "Spans"). The helper
// tables of one row per event go; when a retraction takes an extreme away,
// the marts read the next one from usage_events, through idx_events_session
// and idx_events_project, which gain the columns that seek needs (both
// still serve every lookup store.md's shorter forms serve).
Status dropTimestampHelpers(Connection& db) {
    if (auto st = db.exec("DROP TABLE session_mart_ts; DROP TABLE project_mart_ts;"
                          "DROP INDEX IF EXISTS idx_events_session;"
                          "DROP INDEX IF EXISTS idx_events_project;");
        !st)
        return st;
    return ensureReadIndexes(db);
}

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> all = {
        sql(std::string(kMigration1) + martCountTriggers()),
        sql(kMigration2),
        sql(kMigration3),
        sql(kMigration4),
        sql(kMigration5),
        moveEventKeyUniquenessToIndex,
        sql(kMigration7),
        dropTimestampHelpers,
    };
    return all;
}

// store.md's indexes on usage_events. Since migration 8 two of them go on
// past store.md's columns: the marts seek a session's or a project's
// earliest and latest event through them (their leading columns are
// store.md's, so they serve its lookups as before).
struct ReadIndex {
    const char* name;
    const char* columns;
};
constexpr std::array<ReadIndex, 5> kReadIndexes = {{
    {"idx_events_day", "day"},
    {"idx_events_project", "project_id, day, ts"},
    {"idx_events_provider", "provider, day"},
    {"idx_events_session", "session_id, provider, ts, project_id"},
    {"idx_events_model", "model, day"},
}};

Status ensureReadIndex(Connection& db, const ReadIndex& index) {
    return db.exec(std::string("CREATE INDEX IF NOT EXISTS ") + index.name + " ON usage_events(" +
                   index.columns + ")");
}

}  // namespace

Status dropReadIndexes(Connection& db) {
    for (const ReadIndex& index : kReadIndexes)
        if (auto st = db.exec(std::string("DROP INDEX IF EXISTS ") + index.name); !st) return st;
    return {};
}

Status ensureReadIndexes(Connection& db) {
    for (const ReadIndex& index : kReadIndexes)
        if (auto st = ensureReadIndex(db, index); !st) return st;
    return {};
}

Status ensureReadIndex(Connection& db, std::string_view name) {
    for (const ReadIndex& index : kReadIndexes)
        if (index.name == name) return ensureReadIndex(db, index);
    return Error{"internal", "no read index " + std::string(name)};
}

Status dropEventKeyIndex(Connection& db) { return db.exec("DROP INDEX IF EXISTS idx_events_key"); }

Status ensureEventKeyIndex(Connection& db) {
    return db.exec("CREATE UNIQUE INDEX IF NOT EXISTS idx_events_key ON usage_events(event_key)");
}

std::int64_t latestSchemaVersion() { return static_cast<std::int64_t>(migrations().size()); }

Result<std::int64_t> schemaVersion(Connection& db) { return db.queryInt("PRAGMA user_version"); }

Status migrate(Connection& db, const std::function<void(std::int64_t)>& beforeEach,
               std::int64_t upTo) {
    auto current = schemaVersion(db);
    if (!current) return current.error();
    if (*current > latestSchemaVersion()) {
        return Error{"schema_too_new",
                     "the store's schema version " + std::to_string(*current) +
                         " is newer than this etld knows (" +
                         std::to_string(latestSchemaVersion()) + "); upgrade etld"};
    }
    for (std::int64_t v = *current + 1; v <= std::min(upTo, latestSchemaVersion()); ++v) {
        if (beforeEach) beforeEach(v);
        auto tx = Transaction::begin(db);
        if (!tx) return tx.error();
        if (auto st = migrations()[static_cast<size_t>(v - 1)](db); !st) return st;
        // PRAGMA takes no bound parameters; v is our own integer, not data.
        if (auto st = db.exec("PRAGMA user_version = " + std::to_string(v)); !st) return st;
        if (auto st = tx->commit(); !st) return st;
    }
    return {};
}

}  // namespace etld::store
