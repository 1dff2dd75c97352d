// Migrations and the shared schema (store.md, "Tables that other programs
// read"), checked on a real store file: the dashboard reads these names, so a
// renamed or retyped column must fail here, not in someone's browser.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "store/marts.h"
#include "store/schema.h"
#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::store;
using etld::test::TempDir;

namespace {

struct Column {
    std::string type;
    bool notNull = false;
    std::string defaultValue;  // as PRAGMA table_info spells it; "" for none
    int pk = 0;                // 1-based position in the primary key, 0 if not in it
};

std::map<std::string, Column> columnsOf(Connection& db, const std::string& table) {
    std::map<std::string, Column> out;
    // PRAGMA table_info takes no bound parameter; the names are ours.
    auto stmt = db.prepare("PRAGMA table_info(" + table + ")");
    REQUIRE(stmt);
    while (*stmt->step()) {
        Column c;
        c.type = stmt->columnText(2);
        c.notNull = stmt->columnInt(3) != 0;
        c.defaultValue = stmt->columnOptText(4).value_or("");
        c.pk = static_cast<int>(stmt->columnInt(5));
        out[stmt->columnText(1)] = c;
    }
    return out;
}

std::vector<std::string> indexColumns(Connection& db, const std::string& index) {
    std::vector<std::string> out;
    auto stmt = db.prepare("PRAGMA index_info(" + index + ")");
    REQUIRE(stmt);
    while (*stmt->step()) out.push_back(stmt->columnText(2));
    return out;
}

// The primary key's columns in key order.
std::vector<std::string> primaryKey(const std::map<std::string, Column>& cols) {
    std::map<int, std::string> byPos;
    for (const auto& [name, c] : cols)
        if (c.pk > 0) byPos[c.pk] = name;
    std::vector<std::string> out;
    for (const auto& [pos, name] : byPos) out.push_back(name);
    return out;
}

// Checks that every named column exists (extra columns of ours are allowed).
void requireColumns(const std::map<std::string, Column>& cols, const std::string& table,
                    const std::vector<std::string>& names) {
    for (const auto& name : names) {
        INFO(table << "." << name);
        CHECK(cols.count(name) == 1);
    }
}

void checkColumn(const std::map<std::string, Column>& cols, const std::string& name,
                 const std::string& type, bool notNull, const std::string& defaultValue = "") {
    INFO("column " << name);
    auto it = cols.find(name);
    REQUIRE(it != cols.end());
    CHECK(it->second.type == type);
    CHECK(it->second.notNull == notNull);
    CHECK(it->second.defaultValue == defaultValue);
}

// The first column of a one-row query, as text.
std::string rowText(Connection& db, const std::string& sql) {
    auto stmt = db.prepare(sql);
    REQUIRE(stmt);
    REQUIRE(*stmt->step());
    return stmt->columnText(0);
}

Connection freshStore(const TempDir& dir) {
    auto db = openWriter(dir.file("etl.db"));
    REQUIRE(db);
    return std::move(db).value();
}

}  // namespace

TEST_CASE("a fresh store is migrated to the latest schema version") {
    TempDir dir;
    Connection db = freshStore(dir);
    CHECK(latestSchemaVersion() >= 1);
    CHECK(*schemaVersion(db) == latestSchemaVersion());
    CHECK(*db.queryInt("PRAGMA user_version") == latestSchemaVersion());
}

TEST_CASE("reopening a migrated store applies nothing twice") {
    TempDir dir;
    { Connection db = freshStore(dir); }
    int applied = 0;
    WriterOptions options;
    options.beforeMigration = [&](std::int64_t) { ++applied; };
    auto again = openWriter(dir.file("etl.db"), options);
    REQUIRE(again);
    CHECK(applied == 0);
    CHECK(*schemaVersion(*again) == latestSchemaVersion());
}

TEST_CASE("the writer connection runs in WAL mode with the store.md pragmas") {
    TempDir dir;
    Connection db = freshStore(dir);
    auto mode = db.prepare("PRAGMA journal_mode");
    REQUIRE(mode);
    REQUIRE(*mode->step());
    CHECK(mode->columnText(0) == "wal");
    CHECK(*db.queryInt("PRAGMA synchronous") == 1);  // NORMAL
    CHECK(*db.queryInt("PRAGMA foreign_keys") == 1);
}

// SQLite's default: a new store that has it would not show the setting.
static_assert(kNewStorePageBytes != 4096);

TEST_CASE("a new store gets kNewStorePageBytes; a store that exists keeps its page size") {
    TempDir dir;
    {
        Connection db = freshStore(dir);
        CHECK(*db.queryInt("PRAGMA page_size") == kNewStorePageBytes);
    }
    // A store written with SQLite's default page size (as etld made them
    // before): the writer opens and migrates it as it is, rows and all.
    const std::string older = dir.file("older.db");
    {
        auto db = Connection::open(older, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(db);
        REQUIRE(db->exec("PRAGMA page_size = 4096"));
        REQUIRE(db->exec("PRAGMA journal_mode = WAL"));
        REQUIRE(db->exec("CREATE TABLE kept (x); INSERT INTO kept VALUES (42)"));
    }
    auto reopened = openWriter(older);
    REQUIRE(reopened);
    CHECK(*reopened->queryInt("PRAGMA page_size") == 4096);
    CHECK(*schemaVersion(*reopened) == latestSchemaVersion());
    CHECK(*reopened->queryInt("SELECT x FROM kept") == 42);
}

TEST_CASE("the statement cache keeps one statement per text, also for texts alike at both ends") {
    // The cache hashes a text's length and ends only; texts that agree there
    // must still get their own statements, and a text given as a temporary
    // finds the statement cached under an equal one.
    TempDir dir;
    Connection db = freshStore(dir);
    const std::string padding(32, ' ');  // past the hashed ends
    const std::string one = "SELECT" + padding + "1" + padding + "+ 0";
    const std::string two = "SELECT" + padding + "2" + padding + "+ 0";
    REQUIRE(one.size() == two.size());
    auto a = db.cached(one);
    auto b = db.cached(two);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a != *b);
    CHECK(*db.queryInt(one) == 1);
    CHECK(*db.queryInt(two) == 2);
    auto again = db.cached("SELECT" + padding + "1" + padding + "+ 0");
    REQUIRE(again);
    CHECK(*again == *a);
}

TEST_CASE("SQLite keeps no allocation statistics (their global mutex cost ~6% of an ingest)") {
    TempDir dir;
    Connection db = freshStore(dir);
    REQUIRE(db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(100000))"));
    sqlite3_int64 current = -1;
    sqlite3_int64 highest = -1;
    REQUIRE(sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &current, &highest, 0) == SQLITE_OK);
    CHECK(current == 0);
    CHECK(highest == 0);
}

TEST_CASE("the writer bounds its WAL: checkpoints every kWalCheckpointBytes, truncates past the limit") {
    TempDir dir;
    Connection db = freshStore(dir);
    const std::int64_t pageBytes = *db.queryInt("PRAGMA page_size");
    CHECK(*db.queryInt("PRAGMA wal_autocheckpoint") == kWalCheckpointBytes / pageBytes);
    CHECK(*db.queryInt("PRAGMA journal_size_limit") == kWalLimitBytes);
}

TEST_CASE("projects has store.md's columns, types and UNIQUE(provider, slug)") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "projects");
    checkColumn(cols, "id", "INTEGER", false);
    checkColumn(cols, "provider", "TEXT", true);
    checkColumn(cols, "slug", "TEXT", true);
    checkColumn(cols, "path", "TEXT", false);
    checkColumn(cols, "display_name", "TEXT", true);
    checkColumn(cols, "first_seen", "REAL", true);
    checkColumn(cols, "last_modified", "REAL", true);
    CHECK(primaryKey(cols) == std::vector<std::string>{"id"});

    bool uniqueProviderSlug = false;
    auto list = db.prepare("PRAGMA index_list(projects)");
    REQUIRE(list);
    while (*list->step()) {
        if (list->columnInt(2) != 1) continue;  // not unique
        if (indexColumns(db, list->columnText(1)) == std::vector<std::string>{"provider", "slug"})
            uniqueProviderSlug = true;
    }
    CHECK(uniqueProviderSlug);
}

TEST_CASE("usage_events has store.md's columns, types and defaults") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "usage_events");
    checkColumn(cols, "id", "INTEGER", false);
    CHECK(primaryKey(cols) == std::vector<std::string>{"id"});
    checkColumn(cols, "provider", "TEXT", true);
    checkColumn(cols, "account", "TEXT", true, "'default'");
    checkColumn(cols, "project_id", "INTEGER", true);
    checkColumn(cols, "session_id", "TEXT", true);
    checkColumn(cols, "ts", "TEXT", true);
    checkColumn(cols, "day", "TEXT", true);
    checkColumn(cols, "model", "TEXT", true, "''");
    checkColumn(cols, "speed", "TEXT", true, "'standard'");
    for (const char* tokens : {"input_tokens", "output_tokens", "cache_read_tokens",
                               "cache_create_tokens", "reasoning_tokens"})
        checkColumn(cols, tokens, "INTEGER", true, "0");
    checkColumn(cols, "cost_usd", "REAL", true, "0.0");
    checkColumn(cols, "cost_source", "TEXT", true, "'rate_card'");
    checkColumn(cols, "role", "TEXT", true);
    checkColumn(cols, "raw_extras", "TEXT", false);

    // AUTOINCREMENT: ids are never reused (store.md's id column).
    auto seq = db.queryInt(
        "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'usage_events' "
        "AND sql LIKE '%AUTOINCREMENT%'");
    REQUIRE(seq);
    CHECK(*seq == 1);
}

TEST_CASE("project_id references projects(id)") {
    TempDir dir;
    Connection db = freshStore(dir);
    auto fk = db.prepare("PRAGMA foreign_key_list(usage_events)");
    REQUIRE(fk);
    bool found = false;
    while (*fk->step())
        if (fk->columnText(2) == "projects" && fk->columnText(3) == "project_id" &&
            fk->columnText(4) == "id")
            found = true;
    CHECK(found);
}

TEST_CASE("the five idx_events_* indexes exist and lead with store.md's columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    struct Expected {
        std::vector<std::string> storeMd, ours;  // ours go on past store.md's (migration 8)
    };
    const std::map<std::string, Expected> expected = {
        {"idx_events_day", {{"day"}, {}}},
        {"idx_events_project", {{"project_id", "day"}, {"ts"}}},
        {"idx_events_provider", {{"provider", "day"}, {}}},
        {"idx_events_session", {{"session_id"}, {"provider", "ts", "project_id"}}},
        {"idx_events_model", {{"model", "day"}, {}}},
    };
    for (const auto& [name, columns] : expected) {
        INFO(name);
        auto table =
            db.prepare("SELECT tbl_name FROM sqlite_schema WHERE type = 'index' AND name = ?1");
        REQUIRE(table);
        table->bind(1, name);
        REQUIRE(*table->step());
        CHECK(table->columnText(0) == "usage_events");
        std::vector<std::string> all = columns.storeMd;
        all.insert(all.end(), columns.ours.begin(), columns.ours.end());
        CHECK(indexColumns(db, name) == all);
    }
}

TEST_CASE("migration 8 drops the per-event timestamp tables and lengthens two indexes") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    const char* sessionRow = "SELECT first_ts || ' ' || last_ts || ' ' || message_count "
                             "FROM session_mart WHERE session_id = 's'";
    std::string before;
    {
        auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(db);
        REQUIRE(migrate(*db, {}, 7));
        REQUIRE(db->exec("BEGIN"));
        for (const char* ts : {"2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z",
                               "2026-01-02T09:00:00.000Z"}) {
            NewEvent e;
            e.ts = ts;
            e.eventKey = ts;
            REQUIRE(insertEvent(*db, e));
        }
        REQUIRE(db->exec("COMMIT"));
        REQUIRE(refreshMarts(*db, 0, 100));
        // The rows the marts of version 7 kept beside theirs.
        REQUIRE(db->exec("INSERT INTO session_mart_ts SELECT provider, session_id, ts, project_id, "
                         "COUNT(*) FROM usage_events GROUP BY 1, 2, 3, 4"));
        REQUIRE(db->exec("INSERT INTO project_mart_ts SELECT project_id, ts, COUNT(*) "
                         "FROM usage_events GROUP BY 1, 2"));
        before = rowText(*db, sessionRow);
        REQUIRE(before == "2026-01-01T10:00:00.000Z 2026-01-02T09:00:00.000Z 3");
    }
    Connection db = freshStore(dir);
    CHECK(*schemaVersion(db) == latestSchemaVersion());
    for (const char* gone : {"session_mart_ts", "project_mart_ts"})
        CHECK(*db.queryInt(std::string("SELECT COUNT(*) FROM sqlite_schema WHERE name = '") + gone +
                           "'") == 0);
    CHECK(indexColumns(db, "idx_events_session") ==
          std::vector<std::string>{"session_id", "provider", "ts", "project_id"});
    CHECK(indexColumns(db, "idx_events_project") ==
          std::vector<std::string>{"project_id", "day", "ts"});
    CHECK(rowText(db, sessionRow) == before);
    // The spans go on from the rows: both ends taken back out are read again.
    REQUIRE(db.exec("DELETE FROM usage_events WHERE ts <> '2026-01-01T11:00:00.000Z'"));
    REQUIRE(refreshMarts(db, 0, 100));
    CHECK(rowText(db, sessionRow) == "2026-01-01T11:00:00.000Z 2026-01-01T11:00:00.000Z 1");
    CHECK(rowText(db, "SELECT first_ts || ' ' || last_ts FROM project_mart") ==
          "2026-01-01T11:00:00.000Z 2026-01-01T11:00:00.000Z");
}

TEST_CASE("event_key is unique through idx_events_key, which a writer open restores") {
    TempDir dir;
    {
        Connection db = freshStore(dir);
        CHECK(*db.queryInt("SELECT \"unique\" FROM pragma_index_list('usage_events') "
                           "WHERE name = 'idx_events_key'") == 1);
        CHECK(indexColumns(db, "idx_events_key") == std::vector<std::string>{"event_key"});
        NewEvent e;
        e.eventKey = "k1";
        REQUIRE(insertEvent(db, e));
        auto again = insertEvent(db, e);
        REQUIRE_FALSE(again);
        CHECK(again.error().message.find("UNIQUE") != std::string::npos);
        REQUIRE(dropEventKeyIndex(db));  // as a first ingest stopped mid-way leaves it
    }
    Connection db = freshStore(dir);
    CHECK(*db.queryInt("SELECT COUNT(*) FROM pragma_index_list('usage_events') "
                       "WHERE name = 'idx_events_key' AND \"unique\" = 1") == 1);
}

TEST_CASE("migration 7 keys claude_message_sessions by session first, keeping its pairs") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    {
        auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(db);
        REQUIRE(migrate(*db, {}, 6));
        REQUIRE(db->exec("INSERT INTO claude_message_sessions (message_id, session_id) "
                         "VALUES ('m1', 'sA'), ('m1', 'sB'), ('m2', 'sA')"));
    }
    Connection db = freshStore(dir);
    CHECK(primaryKey(columnsOf(db, "claude_message_sessions")) ==
          std::vector<std::string>{"session_id", "message_id"});
    CHECK(*db.queryInt("SELECT COUNT(*) FROM claude_message_sessions") == 3);
    CHECK(*db.queryInt("SELECT COUNT(*) FROM claude_message_sessions "
                       "WHERE message_id = 'm1' AND session_id = 'sB'") == 1);
    CHECK_FALSE(db.exec("INSERT INTO claude_message_sessions (message_id, session_id) VALUES ('m2', 'sA')"));
}

TEST_CASE("migration 6 keeps usage_events' rows, ids, sequence, indexes and triggers") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    auto rows = [](Connection& db) {
        std::vector<std::string> out;
        auto stmt = db.prepare("SELECT * FROM usage_events ORDER BY id");
        REQUIRE(stmt);
        while (*stmt->step()) {
            std::string row;
            for (int i = 0; i < sqlite3_column_count(stmt->handle()); ++i)
                row += stmt->columnOptText(i).value_or("NULL") + "|";
            out.push_back(row);
        }
        return out;
    };
    auto dependents = [](Connection& db) {
        std::set<std::string> out;
        auto stmt = db.prepare("SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master "
                               "WHERE tbl_name = 'usage_events' AND type <> 'table'");
        REQUIRE(stmt);
        while (*stmt->step()) out.insert(stmt->columnText(0));
        return out;
    };
    std::vector<std::string> before;
    std::set<std::string> dependentsBefore;
    std::int64_t sequence = 0;
    {
        auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(db);
        REQUIRE(migrate(*db, {}, 5));
        for (const char* key : {"k1", "k2", "k3"}) {
            NewEvent e;
            e.eventKey = key;
            e.outputTokens = 7;
            REQUIRE(insertEvent(*db, e));
        }
        // The highest id goes: the sequence stays above every remaining id.
        REQUIRE(db->exec("DELETE FROM usage_events WHERE event_key = 'k3'"));
        before = rows(*db);
        dependentsBefore = dependents(*db);
        sequence = *db->queryInt("SELECT seq FROM sqlite_sequence WHERE name = 'usage_events'");
        REQUIRE(sequence == 3);
        REQUIRE(dependentsBefore.count("index sqlite_autoindex_usage_events_1: ") == 1);
    }
    // Migration 8 redefines two of the indexes: stop before it.
    auto opened = Connection::open(path, SQLITE_OPEN_READWRITE);
    REQUIRE(opened);
    Connection db = std::move(opened).value();
    REQUIRE(migrate(db, {}, 6));
    CHECK(*schemaVersion(db) == 6);
    CHECK(rows(db) == before);
    CHECK(*db.queryInt("SELECT seq FROM sqlite_sequence WHERE name = 'usage_events'") == sequence);
    std::set<std::string> expected = dependentsBefore;
    expected.erase("index sqlite_autoindex_usage_events_1: ");
    expected.insert("index idx_events_key: CREATE UNIQUE INDEX idx_events_key ON usage_events(event_key)");
    CHECK(dependents(db) == expected);
    CHECK(columnsOf(db, "usage_events").at("event_key").notNull);
    CHECK(*db.queryInt("SELECT COUNT(*) FROM pragma_foreign_key_check") == 0);
    NewEvent e;
    e.eventKey = "k1";
    CHECK_FALSE(insertEvent(db, e));
    e.eventKey = "k4";
    CHECK(*insertEvent(db, e) == sequence + 1);  // no id reused
    // The triggers still run: a delete records its retraction.
    REQUIRE(db.exec("DELETE FROM usage_events WHERE event_key = 'k1'"));
    CHECK(*db.queryInt("SELECT COUNT(*) FROM event_retractions WHERE output_tokens = 7") == 2);
}

TEST_CASE("daily_mart has store.md's key and columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "daily_mart");
    CHECK(primaryKey(cols) ==
          std::vector<std::string>{"day", "project_id", "provider", "model", "speed"});
    requireColumns(cols, "daily_mart",
                   {"input_tokens", "output_tokens", "cache_read", "cache_create", "message_count",
                    "session_count", "cost_usd"});
}

TEST_CASE("session_mart is keyed (provider, session_id) with store.md's columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "session_mart");
    CHECK(primaryKey(cols) == std::vector<std::string>{"provider", "session_id"});
    requireColumns(
        cols, "session_mart",
        {"project_id", "primary_model", "first_ts", "last_ts", "message_count",
         "user_message_count", "assistant_message_count", "input_tokens", "output_tokens",
         "cache_read", "cache_create", "cost_usd", "is_one_shot", "cwd"});
}

TEST_CASE("project_mart is keyed project_id with store.md's columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "project_mart");
    CHECK(primaryKey(cols) == std::vector<std::string>{"project_id"});
    requireColumns(cols, "project_mart",
                   {"provider", "slug", "display_name", "first_ts", "last_ts", "total_messages",
                    "total_sessions", "total_input_tokens", "total_output_tokens",
                    "total_cache_read", "total_cache_create", "total_cost_usd"});
}

TEST_CASE("provider_day_mart is keyed (day, provider) with store.md's columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "provider_day_mart");
    CHECK(primaryKey(cols) == std::vector<std::string>{"day", "provider"});
    requireColumns(cols, "provider_day_mart",
                   {"cost_usd", "message_count", "session_count", "project_count"});
}

TEST_CASE("model_day_mart is keyed (day, model, speed) with store.md's columns") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "model_day_mart");
    CHECK(primaryKey(cols) == std::vector<std::string>{"day", "model", "speed"});
    requireColumns(cols, "model_day_mart",
                   {"cost_usd", "input_tokens", "output_tokens", "cache_read", "cache_create",
                    "message_count", "session_count"});
}

TEST_CASE("mart_watermark has store.md's columns and default") {
    TempDir dir;
    Connection db = freshStore(dir);
    const auto cols = columnsOf(db, "mart_watermark");
    CHECK(primaryKey(cols) == std::vector<std::string>{"mart_name"});
    REQUIRE(cols.count("mart_name") == 1);
    CHECK(cols.at("mart_name").type == "TEXT");
    checkColumn(cols, "last_event_id", "INTEGER", true, "0");
    checkColumn(cols, "last_refresh_ts", "TEXT", true);
}

TEST_CASE("a store whose schema is newer than this build is refused by openReader") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    {
        Connection db = freshStore(dir);
        REQUIRE(db.exec("PRAGMA user_version = " + std::to_string(latestSchemaVersion() + 1)));
    }
    auto reader = openReader(path);
    REQUIRE_FALSE(reader);
    CHECK(reader.error().code == "schema_too_new");
    CHECK(reader.error().message.find(std::to_string(latestSchemaVersion() + 1)) !=
          std::string::npos);
    CHECK(reader.error().message.find("(" + std::to_string(latestSchemaVersion()) + ")") !=
          std::string::npos);
}

TEST_CASE("a store whose schema is newer than this build is refused by migrate and openWriter") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    const std::int64_t newer = latestSchemaVersion() + 1;
    {
        Connection db = freshStore(dir);
        REQUIRE(db.exec("PRAGMA user_version = " + std::to_string(newer)));
        auto st = migrate(db);
        REQUIRE_FALSE(st);
        CHECK(st.error().code == "schema_too_new");
        CHECK(st.error().message.find(std::to_string(newer)) != std::string::npos);
        CHECK(st.error().message.find("(" + std::to_string(latestSchemaVersion()) + ")") !=
              std::string::npos);
        CHECK(*schemaVersion(db) == newer);  // left as it was
    }
    auto writer = openWriter(path);
    REQUIRE_FALSE(writer);
    CHECK(writer.error().code == "schema_too_new");
}

TEST_CASE("a store file that etld never initialised is refused as no_store") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    {
        auto raw = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(raw);
        REQUIRE(raw->exec("CREATE TABLE unrelated (x)"));
    }
    auto reader = openReader(path);
    REQUIRE_FALSE(reader);
    CHECK(reader.error().code == "no_store");
    auto missing = openReader(dir.file("absent.db"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == "no_store");
}
