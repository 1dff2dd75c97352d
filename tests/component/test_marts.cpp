// The marts refresh engine (store/marts.h) against invariants 4 and 5 of
// store.md.
//
// The oracle is a plain GROUP BY over usage_events (plus projects and
// session_cwd for the columns that come from them), written here
// independently of the engine: once a mart has absorbed every event and
// retraction, each of its rows must equal the oracle's — integers exactly,
// cost_usd within 1e-9 relative — no row may sit at a zero count, and
// mart_row_counts must equal COUNT(*).
//
// The property test drives random sequences of inserts, revisions (DELETE +
// INSERT of the same key with new values), merges (DELETE), session_cwd and
// project changes and refreshes of random batch sizes, each in its own
// transaction, with simulated crashes between any two of them: a transaction
// rolled back, or the connection closed with the transaction still open (what
// a kill leaves), then reopened. The work test counts SQLite's VM steps of a
// refresh (sqlite3_stmt_status over every statement of the connection) on a
// small and a large store, and records every statement a refresh runs
// (sqlite3_trace_v2) to check each one's EXPLAIN QUERY PLAN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "store/marts.h"
#include "store/schema.h"
#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::store;
using etld::test::TempDir;

namespace {

// 2026-05-06T08:24:11.123456+00:00
constexpr UnixMicros kNow = 1778055851123456;
// Invariant 5's tolerance on cost_usd.
constexpr double kCostRelativeTolerance = 1e-9;

// The daemon's writer connection, except that it never syncs: a process
// crash (what these tests simulate) loses nothing the OS already has, and
// the tests would otherwise spend their time in fdatasync.
Connection openStore(const std::string& path) {
    auto db = openWriter(path);
    REQUIRE_MESSAGE(db, (db ? "" : db.error().message));
    REQUIRE(db->exec("PRAGMA synchronous = OFF"));
    return std::move(db).value();
}

void exec(Connection& db, const std::string& sql) {
    auto st = db.exec(sql);
    REQUIRE_MESSAGE(st, sql << ": " << (st ? "" : st.error().message));
}

std::int64_t queryInt(Connection& db, const std::string& sql) {
    auto v = db.queryInt(sql);
    REQUIRE_MESSAGE(v, sql << ": " << (v ? "" : v.error().message));
    return *v;
}

struct Event {
    std::string provider = "claude";
    std::int64_t projectId = 0;
    std::string sessionId = "s";
    std::string ts = "2026-01-01T00:00:00.000Z";
    std::string model = "m";
    std::string speed = "standard";
    std::string role = "assistant";
    std::int64_t input = 0, output = 0, cacheRead = 0, cacheCreate = 0;
    double cost = 0;
    std::string key;
};

std::int64_t insert(Connection& db, const Event& e) {
    auto stmt = db.cached(
        "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, speed, "
        "role, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, "
        "event_key) VALUES (?1, ?2, ?3, ?4, substr(?4, 1, 10), ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
        "?12, ?13)");
    REQUIRE(stmt);
    Statement& s = **stmt;
    s.bind(1, e.provider).bind(2, e.projectId).bind(3, e.sessionId).bind(4, e.ts);
    s.bind(5, e.model).bind(6, e.speed).bind(7, e.role).bind(8, e.input).bind(9, e.output);
    s.bind(10, e.cacheRead).bind(11, e.cacheCreate).bind(12, e.cost).bind(13, e.key);
    auto st = s.run();
    REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
    return db.lastInsertRowid();
}

void deleteEvent(Connection& db, std::int64_t id) {
    auto stmt = db.cached("DELETE FROM usage_events WHERE id = ?1");
    REQUIRE(stmt);
    (*stmt)->bind(1, id);
    REQUIRE((*stmt)->run());
}

std::int64_t project(Connection& db, const std::string& provider, const std::string& slug) {
    auto id = ensureProject(db, provider, slug, std::nullopt, 0, 0);
    REQUIRE(id);
    return *id;
}

RefreshStats refresh(Connection& db, std::int64_t maxEvents = 1000000) {
    auto r = refreshMarts(db, kNow, maxEvents);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    return *r;
}

// ---------------------------------------------------------------------------
// The oracle and the comparison.

using Value = std::variant<std::monostate, std::int64_t, double, std::string>;
using Row = std::vector<Value>;

std::vector<Row> rows(Connection& db, const std::string& sql) {
    auto stmt = db.prepare(sql);
    REQUIRE_MESSAGE(stmt, sql << ": " << (stmt ? "" : stmt.error().message));
    std::vector<Row> out;
    sqlite3_stmt* s = stmt->handle();
    for (;;) {
        auto more = stmt->step();
        REQUIRE(more);
        if (!*more) break;
        Row row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) {
            switch (sqlite3_column_type(s, i)) {
                case SQLITE_NULL:
                    row.emplace_back(std::monostate{});
                    break;
                case SQLITE_INTEGER:
                    row.emplace_back(stmt->columnInt(i));
                    break;
                case SQLITE_FLOAT:
                    row.emplace_back(stmt->columnDouble(i));
                    break;
                default:
                    row.emplace_back(stmt->columnText(i));
                    break;
            }
        }
        out.push_back(std::move(row));
    }
    return out;
}

std::string show(const Value& v) {
    if (std::holds_alternative<std::monostate>(v)) return "NULL";
    if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (auto* d = std::get_if<double>(&v)) {
        char buf[40];
        std::snprintf(buf, sizeof buf, "%.17g", *d);
        return buf;
    }
    return "'" + std::get<std::string>(v) + "'";
}

std::string show(const Row& row) {
    std::string out = "(";
    for (const auto& v : row) out += (out.size() > 1 ? ", " : "") + show(v);
    return out + ")";
}

bool sameValue(const Value& a, const Value& b) {
    const auto* x = std::get_if<double>(&a);
    const auto* y = std::get_if<double>(&b);
    if (x && y)
        return std::fabs(*x - *y) <=
               kCostRelativeTolerance * std::max(std::fabs(*x), std::fabs(*y));
    return a == b;
}

struct MartCheck {
    const char* name;  // mart_row_counts key
    const char* table;
    const char* actual;    // the mart's rows, key order
    const char* expected;  // the oracle, same columns, same order
};

const MartCheck kChecks[] = {
    {"daily", "daily_mart",
     "SELECT day, project_id, provider, model, speed, input_tokens, output_tokens, cache_read, "
     "cache_create, message_count, session_count, cost_usd FROM daily_mart "
     "ORDER BY day, project_id, provider, model, speed",
     "SELECT day, project_id, provider, model, speed, SUM(input_tokens), SUM(output_tokens), "
     "SUM(cache_read_tokens), SUM(cache_create_tokens), COUNT(*), COUNT(DISTINCT session_id), "
     "SUM(cost_usd) FROM usage_events GROUP BY day, project_id, provider, model, speed "
     "ORDER BY 1, 2, 3, 4, 5"},
    {"session", "session_mart",
     "SELECT provider, session_id, project_id, primary_model, first_ts, last_ts, message_count, "
     "user_message_count, assistant_message_count, input_tokens, output_tokens, cache_read, "
     "cache_create, cost_usd, is_one_shot, cwd FROM session_mart ORDER BY provider, session_id",
     "SELECT e.provider, e.session_id, "
     " (SELECT x.project_id FROM usage_events x INDEXED BY idx_events_session WHERE x.provider = "
     "e.provider "
     "   AND x.session_id = e.session_id ORDER BY x.ts, x.project_id LIMIT 1), "
     " (SELECT x.model FROM usage_events x INDEXED BY idx_events_session WHERE x.provider = "
     "e.provider "
     "   AND x.session_id = e.session_id GROUP BY x.model ORDER BY COUNT(*) DESC, x.model "
     "   LIMIT 1), "
     " MIN(e.ts), MAX(e.ts), COUNT(*), SUM(e.role = 'user'), SUM(e.role = 'assistant'), "
     " SUM(e.input_tokens), SUM(e.output_tokens), SUM(e.cache_read_tokens), "
     " SUM(e.cache_create_tokens), SUM(e.cost_usd), "
     " SUM(e.role = 'user') = 1 AND SUM(e.role = 'assistant') = 1, "
     " (SELECT c.cwd FROM session_cwd c WHERE c.provider = e.provider "
     "   AND c.session_id = e.session_id) "
     "FROM usage_events e GROUP BY e.provider, e.session_id ORDER BY 1, 2"},
    {"project", "project_mart",
     "SELECT project_id, provider, slug, display_name, first_ts, last_ts, total_messages, "
     "total_sessions, total_input_tokens, total_output_tokens, total_cache_read, "
     "total_cache_create, total_cost_usd FROM project_mart ORDER BY project_id",
     "SELECT e.project_id, p.provider, p.slug, p.display_name, MIN(e.ts), MAX(e.ts), COUNT(*), "
     " (SELECT COUNT(*) FROM (SELECT DISTINCT x.provider, x.session_id FROM usage_events x "
     "   WHERE x.project_id = e.project_id)), "
     " SUM(e.input_tokens), SUM(e.output_tokens), SUM(e.cache_read_tokens), "
     " SUM(e.cache_create_tokens), SUM(e.cost_usd) "
     "FROM usage_events e JOIN projects p ON p.id = e.project_id GROUP BY e.project_id "
     "ORDER BY 1"},
    {"provider_day", "provider_day_mart",
     "SELECT day, provider, cost_usd, message_count, session_count, project_count "
     "FROM provider_day_mart ORDER BY day, provider",
     "SELECT day, provider, SUM(cost_usd), COUNT(*), COUNT(DISTINCT session_id), "
     "COUNT(DISTINCT project_id) FROM usage_events GROUP BY day, provider ORDER BY 1, 2"},
    {"model_day", "model_day_mart",
     "SELECT day, model, speed, cost_usd, input_tokens, output_tokens, cache_read, "
     "cache_create, message_count, session_count FROM model_day_mart "
     "ORDER BY day, model, speed",
     "SELECT e.day, e.model, e.speed, SUM(e.cost_usd), SUM(e.input_tokens), "
     " SUM(e.output_tokens), SUM(e.cache_read_tokens), SUM(e.cache_create_tokens), COUNT(*), "
     " (SELECT COUNT(*) FROM (SELECT DISTINCT x.provider, x.session_id FROM usage_events x "
     "   WHERE x.day = e.day AND x.model = e.model AND x.speed = e.speed)) "
     "FROM usage_events e GROUP BY e.day, e.model, e.speed ORDER BY 1, 2, 3"},
};

// Every mart equals the oracle; returns the number of mismatches (each
// reported once).
int compareWithOracle(Connection& db) {
    int mismatches = 0;
    for (const auto& check : kChecks) {
        const std::string table = check.table;
        const auto actual = rows(db, check.actual);
        const auto expected = rows(db, check.expected);
        if (actual.size() != expected.size()) {
            ++mismatches;
            FAIL_CHECK(table << ": " << actual.size() << " rows, the rebuild has "
                             << expected.size());
        }
        for (size_t i = 0; i < std::min(actual.size(), expected.size()); ++i) {
            bool same = actual[i].size() == expected[i].size();
            for (size_t c = 0; same && c < actual[i].size(); ++c)
                same = sameValue(actual[i][c], expected[i][c]);
            if (!same) {
                ++mismatches;
                FAIL_CHECK(table << " row " << i << ": " << show(actual[i])
                                 << " but the rebuild has " << show(expected[i]));
                break;
            }
        }
        const std::string name = check.name;
        const std::int64_t counted =
            queryInt(db, "SELECT n FROM mart_row_counts WHERE mart = '" + name + "'");
        const std::int64_t counted2 = queryInt(db, "SELECT COUNT(*) FROM " + table);
        if (counted != counted2) {
            ++mismatches;
            FAIL_CHECK("mart_row_counts says " << counted << " for " << table << ", COUNT(*) "
                                               << counted2);
        }
    }
    const char* zeroRows[] = {
        "SELECT COUNT(*) FROM daily_mart WHERE message_count <= 0",
        "SELECT COUNT(*) FROM session_mart WHERE message_count <= 0",
        "SELECT COUNT(*) FROM project_mart WHERE total_messages <= 0",
        "SELECT COUNT(*) FROM provider_day_mart WHERE message_count <= 0",
        "SELECT COUNT(*) FROM model_day_mart WHERE message_count <= 0",
    };
    for (const char* q : zeroRows) {
        if (queryInt(db, q) != 0) {
            ++mismatches;
            FAIL_CHECK(std::string(q) << " is not 0");
        }
    }
    return mismatches;
}

// Every mart has absorbed every event and retraction.
void checkCaughtUp(Connection& db) {
    const std::int64_t maxId = queryInt(db, "SELECT COALESCE(MAX(id), 0) FROM usage_events");
    CHECK(queryInt(db, "SELECT COUNT(*) FROM mart_watermark") == 5);
    CHECK(queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark") >= maxId);
    CHECK(queryInt(db,
                   "SELECT COUNT(*) FROM event_retractions WHERE seq > "
                   "(SELECT MIN(last_retraction_seq) FROM mart_watermark)") == 0);
}

// ---------------------------------------------------------------------------
// The random workload.

class Workload {
  public:
    Workload(std::uint64_t seed, std::string path) : rng_(seed), path_(std::move(path)) {}

    Connection& db() { return db_; }

    void open() {
        db_ = openStore(path_);
        if (projects_.empty()) {
            exec(db_, "BEGIN IMMEDIATE");
            for (const char* provider : {"claude", "codex"})
                for (const char* slug : {"-a", "-b", "-c"})
                    projects_.emplace_back(provider, project(db_, provider, slug));
            exec(db_, "COMMIT");
        }
    }

    // One random operation in its own transaction, sometimes crashed.
    void step() {
        const int op = pick(100);
        const int fate = pick(100);  // < 8: rolled back; < 12: killed; else committed
        exec(db_, "BEGIN IMMEDIATE");
        if (op < 35) {
            for (int n = 1 + pick(4); n > 0; --n) insert(db_, randomEvent(newKey()));
        } else if (op < 55) {
            revise();
        } else if (op < 65) {
            if (auto id = randomEventId()) deleteEvent(db_, *id);
        } else if (op < 70) {
            setCwd();
        } else if (op < 72) {
            renameProject();
        } else if (op < 80) {
            prepareAhead();
        } else if (!prepared_.empty() && pick(4) != 0) {
            applyPrepared(kNow + op);
        } else {
            auto r = refreshMartsInTransaction(db_, kNow + op, 1 + pick(20));
            REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        }
        if (fate < 8) {
            exec(db_, "ROLLBACK");
        } else if (fate < 12) {
            kill();
            open();
        } else {
            exec(db_, "COMMIT");
        }
        if (pick(100) < 2) {  // a clean restart
            db_ = Connection();
            open();
        }
    }

    // The daemon's prefetch: a step read on a second connection, in a
    // snapshot of its own, sometimes chained on from the last one read and
    // not yet applied; applied later, after whatever the workload did.
    void prepareAhead() {
        if (!reader_.isOpen()) {
            auto r = Connection::open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
            REQUIRE(r);
            reader_ = std::move(r).value();
            exec(reader_, "PRAGMA query_only = 1");
        }
        if (!prepared_.empty() && pick(3) == 0) {  // read on into the last one
            exec(reader_, "BEGIN");
            auto st = extendRefresh(reader_, prepared_.back(), 1 + pick(40));
            REQUIRE_MESSAGE(st, (st ? "" : st.error().message));
            exec(reader_, "COMMIT");
            return;
        }
        std::optional<MartWatermarks> from;
        if (!prepared_.empty() && pick(2) == 0) from = prepared_.back().to();
        exec(reader_, "BEGIN");
        auto p = prepareRefresh(reader_, 1 + pick(20), from);
        REQUIRE_MESSAGE(p, (p ? "" : p.error().message));
        exec(reader_, "COMMIT");
        if (prepared_.size() == 2) prepared_.erase(prepared_.begin());  // as the daemon keeps
        prepared_.push_back(std::move(p).value());
    }

    void applyPrepared(UnixMicros now) {
        auto r = applyPreparedRefreshInTransaction(db_, prepared_.front(), now);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        prepared_.erase(prepared_.begin());
        if (*r) {
            ++preparedApplied;
            return;
        }
        ++preparedStale;  // what the daemon does then: a step of its own
        auto own = refreshMartsInTransaction(db_, now, 1 + pick(20));
        REQUIRE_MESSAGE(own, (own ? "" : own.error().message));
    }

    std::int64_t preparedApplied = 0, preparedStale = 0;

    // What kill -9 leaves: the transaction open, the WAL not checkpointed.
    // SQLite rolls the transaction back when the store is next opened.
    void kill() {
        sqlite3_db_config(db_.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        db_ = Connection();
    }

    // Refreshes in random batch sizes, crashing some, until caught up.
    void catchUp() {
        for (int guard = 0; guard < 100000; ++guard) {
            exec(db_, "BEGIN IMMEDIATE");
            auto r = refreshMartsInTransaction(db_, kNow, 1 + pick(30));
            REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
            if (pick(100) < 10) {
                exec(db_, "ROLLBACK");
                continue;
            }
            exec(db_, "COMMIT");
            if (r->caughtUp) return;
        }
        FAIL("never caught up");
    }

  private:
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

    std::string newKey() {
        return "k" + std::to_string(keys_++) + "-" + std::to_string(pick(1 << 30));
    }

    double randomCost() {
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        switch (pick(6)) {
            case 0:
                return 0.0;
            case 1:
                return unit(rng_) * 1e-7;  // a few cheap tokens
            case 2:
                return 1000.0 + unit(rng_);  // huge next to the small ones
            case 3:
                return unit(rng_) * 1e-12;
            default:
                return unit(rng_) * 3.0;
        }
    }

    Event randomEvent(std::string key) {
        Event e;
        const auto& [provider, projectId] = projects_[static_cast<size_t>(pick(6))];
        e.provider = provider;
        e.projectId = projectId;
        e.sessionId = "s" + std::to_string(pick(5));  // the same ids under both providers
        static const char* kDays[] = {"2026-01-01", "2026-01-02", "2026-02-28"};
        static const char* kTimes[] = {"T00:00:00.000Z", "T12:30:00.250Z", "T23:59:59.999Z"};
        e.ts = std::string(kDays[pick(3)]) + kTimes[pick(3)];
        static const char* kModels[] = {"", "model-a", "model-b", "model-c"};
        e.model = kModels[pick(4)];
        e.speed = pick(4) == 0 ? "fast" : "standard";
        e.role = pick(10) == 0 ? "user" : "assistant";
        e.input = pick(1000);
        e.output = pick(1000);
        e.cacheRead = pick(5) == 0 ? 0 : pick(100000);
        e.cacheCreate = pick(1000);
        e.cost = randomCost();
        e.key = std::move(key);
        return e;
    }

    std::optional<std::int64_t> randomEventId() {
        const std::int64_t maxId = queryInt(db_, "SELECT COALESCE(MAX(id), 0) FROM usage_events");
        if (maxId == 0) return std::nullopt;
        auto stmt = db_.cached("SELECT id FROM usage_events WHERE id >= ?1 ORDER BY id LIMIT 1");
        REQUIRE(stmt);
        (*stmt)->bind(1, 1 + static_cast<std::int64_t>(pick(static_cast<int>(maxId))));
        auto row = (*stmt)->step();
        REQUIRE(row);
        std::optional<std::int64_t> id;
        if (*row) id = (*stmt)->columnInt(0);
        (*stmt)->reset();
        return id;
    }

    // DELETE + INSERT under the same key with some fields changed.
    void revise() {
        auto id = randomEventId();
        if (!id) return;
        auto stmt = db_.cached("SELECT event_key FROM usage_events WHERE id = ?1");
        REQUIRE(stmt);
        (*stmt)->bind(1, *id);
        REQUIRE(*(*stmt)->step());
        const std::string key = (*stmt)->columnText(0);
        (*stmt)->reset();
        deleteEvent(db_, *id);
        insert(db_, randomEvent(key));
    }

    void setCwd() {
        auto stmt = db_.cached(
            "INSERT INTO session_cwd (provider, session_id, cwd, first_ts) VALUES (?1, ?2, ?3, "
            "'2026-01-01T00:00:00.000Z') ON CONFLICT DO UPDATE SET cwd = excluded.cwd");
        REQUIRE(stmt);
        (*stmt)->bind(1, pick(2) ? "claude" : "codex").bind(2, "s" + std::to_string(pick(5)));
        (*stmt)->bind(3, "/home/u/p" + std::to_string(pick(3)));
        REQUIRE((*stmt)->run());
    }

    void renameProject() {
        auto stmt = db_.cached("UPDATE projects SET display_name = ?1 WHERE id = ?2");
        REQUIRE(stmt);
        (*stmt)->bind(1, "name" + std::to_string(pick(10)));
        (*stmt)->bind(2, projects_[static_cast<size_t>(pick(6))].second);
        REQUIRE((*stmt)->run());
    }

    std::mt19937_64 rng_;
    std::string path_;
    Connection db_;
    Connection reader_;
    std::vector<PreparedRefresh> prepared_;
    std::vector<std::pair<std::string, std::int64_t>> projects_;
    std::int64_t keys_ = 0;
};

// ---------------------------------------------------------------------------
// Work measurement.

struct Work {
    std::int64_t vmSteps = 0;
    std::int64_t fullScanSteps = 0;
};

// Resets the counters of every statement prepared on the connection.
void resetCounters(sqlite3* db) {
    for (sqlite3_stmt* s = sqlite3_next_stmt(db, nullptr); s; s = sqlite3_next_stmt(db, s)) {
        sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 1);
        sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
    }
}

Work readCounters(sqlite3* db) {
    Work w;
    for (sqlite3_stmt* s = sqlite3_next_stmt(db, nullptr); s; s = sqlite3_next_stmt(db, s)) {
        w.vmSteps += sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
        w.fullScanSteps += sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    }
    return w;
}

// A store of `events` events over 50 projects, 2,000 sessions, 365 days and
// 6 models, absorbed by the marts.
// Every statement text `run` makes the connection execute.
template <typename Run>
std::set<std::string> statementsOf(Connection& db, Run&& run) {
    std::set<std::string> statements;
    auto trace = [](unsigned, void* ctx, void* p, void*) -> int {
        const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(p));
        if (sql) static_cast<std::set<std::string>*>(ctx)->insert(sql);
        return 0;
    };
    sqlite3_trace_v2(db.handle(), SQLITE_TRACE_STMT, trace, &statements);
    run();
    sqlite3_trace_v2(db.handle(), 0, nullptr, nullptr);
    return statements;
}

// The seeks of a session's and a project's span (store/marts.cpp, "Spans").
bool seeksSessionSpan(const std::set<std::string>& statements) {
    return std::any_of(statements.begin(), statements.end(), [](const std::string& sql) {
        return sql.find("FROM usage_events WHERE session_id") != std::string::npos;
    });
}
bool seeksProjectSpan(const std::set<std::string>& statements) {
    return std::any_of(statements.begin(), statements.end(), [](const std::string& sql) {
        return sql.find("FROM usage_events WHERE project_id") != std::string::npos;
    });
}

std::string text(Connection& db, const std::string& sql) {
    auto stmt = db.prepare(sql);
    REQUIRE_MESSAGE(stmt, sql);
    auto row = stmt->step();
    REQUIRE_MESSAGE(row, sql);
    return *row ? stmt->columnOptText(0).value_or("NULL") : "no row";
}

void populate(Connection& db, std::int64_t events) {
    exec(db, "BEGIN IMMEDIATE");
    for (int p = 0; p < 50; ++p) project(db, p % 2 ? "codex" : "claude", "-p" + std::to_string(p));
    auto stmt = db.prepare(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1), "
        "e(i, ts) AS (SELECT i, strftime('%Y-%m-%dT%H:%M:%S', '2025-01-01', "
        "  '+' || (i % 365) || ' days', '+' || (i * 37 % 86400) || ' seconds') || '.000Z' "
        "  FROM n) "
        "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, speed, role, "
        "  input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, cost_usd, "
        "  event_key) "
        "SELECT CASE (i % 50) % 2 WHEN 1 THEN 'codex' ELSE 'claude' END, "
        "  (SELECT MIN(id) FROM projects) + i % 50, 's' || (i % 2000), ts, "
        "  substr(ts, 1, 10), 'model-' || (i % 6), CASE i % 7 WHEN 0 THEN 'fast' ELSE "
        "  'standard' END, 'assistant', i % 1000, i % 333, i % 5000, i % 77, (i % 1000) * 0.001, "
        "  'big-' || i FROM e");
    REQUIRE(stmt);
    stmt->bind(1, events);
    REQUIRE(stmt->run());
    exec(db, "COMMIT");
    REQUIRE(rebuildMarts(db, kNow));
}

// The same change on any store: 100 new events (half in existing sessions,
// half in new ones, all on a new day) and 25 deletions of old events.
void change(Connection& db) {
    exec(db, "BEGIN IMMEDIATE");
    for (int i = 0; i < 100; ++i) {
        Event e;
        e.provider = i % 2 ? "codex" : "claude";
        e.projectId = queryInt(db, "SELECT id FROM projects WHERE slug = '-p" +
                                       std::to_string((i * 2 + (i % 2)) % 50) + "'");
        e.sessionId =
            i < 50 ? "s" + std::to_string((i * 2 + (i % 2)) % 50) : "new" + std::to_string(i);
        e.ts = "2027-01-01T00:00:" + std::string(i % 60 < 10 ? "0" : "") + std::to_string(i % 60) +
               ".000Z";
        e.model = "model-" + std::to_string(i % 6);
        e.input = i;
        e.cost = 0.01 * i;
        e.key = "new-" + std::to_string(i);
        insert(db, e);
    }
    for (int i = 1; i <= 25; ++i) deleteEvent(db, i * 37);
    exec(db, "COMMIT");
}

}  // namespace

TEST_CASE("every mart equals a rebuild after random inserts, revisions, merges and crashes") {
    TempDir dir;
    constexpr int kSeeds = 30;
    constexpr int kStepsPerSeed = 150;
    int mismatches = 0;
    std::int64_t preparedApplied = 0, preparedStale = 0;
    for (int seed = 1; seed <= kSeeds && mismatches == 0; ++seed) {
        CAPTURE(seed);
        const std::string path = dir.file("p" + std::to_string(seed) + ".db");
        Workload w(static_cast<std::uint64_t>(seed), path);
        w.open();
        for (int i = 0; i < kStepsPerSeed; ++i) {
            w.step();
            if (i % 50 == 49) {  // caught up in the middle, then go on
                w.catchUp();
                checkCaughtUp(w.db());
                mismatches += compareWithOracle(w.db());
            }
        }
        w.catchUp();
        checkCaughtUp(w.db());
        mismatches += compareWithOracle(w.db());
        // A rebuild reaches the same rows, and refreshing on from it stays equal.
        REQUIRE(rebuildMarts(w.db(), kNow));
        checkCaughtUp(w.db());
        mismatches += compareWithOracle(w.db());
        preparedApplied += w.preparedApplied;
        preparedStale += w.preparedStale;
    }
    CHECK(mismatches == 0);
    // Both fates of a step prepared ahead were met, many times.
    MESSAGE("prepared steps applied " << preparedApplied << ", stale " << preparedStale);
    CHECK(preparedApplied > 50);
    CHECK(preparedStale > 50);
}

TEST_CASE(
    "a rebuild from usage_events alone sets the watermarks to MAX(id) and the last retraction") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    const std::int64_t p = project(db, "claude", "-a");
    std::int64_t last = 0;
    for (int i = 0; i < 20; ++i) {
        Event e;
        e.projectId = p;
        e.sessionId = "s" + std::to_string(i % 3);
        e.cost = 0.5 * i;
        e.key = "k" + std::to_string(i);
        last = insert(db, e);
    }
    deleteEvent(db, last);  // the highest id goes: MAX(id) is below it
    deleteEvent(db, 3);
    exec(db, "COMMIT");
    REQUIRE(rebuildMarts(db, kNow));
    CHECK(queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark") == last - 1);
    CHECK(queryInt(db, "SELECT MAX(last_event_id) FROM mart_watermark") == last - 1);
    CHECK(queryInt(db, "SELECT MIN(last_retraction_seq) FROM mart_watermark") ==
          queryInt(db, "SELECT seq FROM sqlite_sequence WHERE name = 'event_retractions'"));
    CHECK(compareWithOracle(db) == 0);
    CHECK(queryInt(db, "SELECT n FROM mart_row_counts WHERE mart = 'session'") == 3);
}

TEST_CASE("a rolled-back refresh leaves the watermarks and the rows as they were") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    const std::int64_t p = project(db, "claude", "-a");
    Event e;
    e.projectId = p;
    e.cost = 1.25;
    e.key = "a";
    const std::int64_t first = insert(db, e);
    exec(db, "COMMIT");
    refresh(db);
    const auto before = rows(db, kChecks[0].actual);

    exec(db, "BEGIN IMMEDIATE");
    e.key = "b";
    e.sessionId = "t";
    e.cost = 2.5;
    insert(db, e);
    deleteEvent(db, first);
    exec(db, "COMMIT");

    exec(db, "BEGIN IMMEDIATE");
    auto r = refreshMartsInTransaction(db, kNow + kMicrosPerSecond, 100);
    REQUIRE(r);
    CHECK(r->eventsAbsorbed == 1);
    CHECK(r->retractionsApplied == 1);
    CHECK(queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark") == first + 1);
    CHECK(rows(db, kChecks[0].actual) != before);  // the rows moved inside
    exec(db, "ROLLBACK");

    CHECK(queryInt(db, "SELECT MAX(last_event_id) FROM mart_watermark") == first);
    CHECK(queryInt(db, "SELECT MAX(last_retraction_seq) FROM mart_watermark") == 0);
    CHECK(rows(db, kChecks[0].actual) == before);
    CHECK(queryInt(db, "SELECT COUNT(*) FROM event_retractions") == 1);
    CHECK(rows(db, "SELECT DISTINCT last_refresh_ts FROM mart_watermark") ==
          std::vector<Row>{Row{std::string("2026-05-06T08:24:11.123456+00:00")}});

    refresh(db);  // and the step that was rolled back is done again
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("a retraction applies only to an event the mart had absorbed") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    const std::int64_t p = project(db, "claude", "-a");
    Event e;
    e.projectId = p;
    e.input = 10;
    e.key = "absorbed";
    const std::int64_t absorbed = insert(db, e);
    exec(db, "COMMIT");
    refresh(db);

    exec(db, "BEGIN IMMEDIATE");
    e.key = "never";
    const std::int64_t never = insert(db, e);
    deleteEvent(db, never);     // gone before any mart read past its id
    deleteEvent(db, absorbed);  // a merge of an absorbed event
    exec(db, "COMMIT");
    const RefreshStats r = refresh(db);
    CHECK(r.retractionsApplied == 1);
    CHECK(r.eventsAbsorbed == 0);
    CHECK(r.watermark == absorbed);  // nothing above it exists any more
    for (const auto& check : kChecks)
        CHECK(queryInt(db, std::string("SELECT COUNT(*) FROM ") + check.table) == 0);
    CHECK(queryInt(db, "SELECT SUM(n) FROM mart_row_counts") == 0);
    CHECK(queryInt(db, "SELECT COUNT(*) FROM daily_mart_sessions") == 0);
    CHECK(queryInt(db, "SELECT COUNT(*) FROM session_mart_models") == 0);
    CHECK(queryInt(db, "SELECT COUNT(*) FROM event_retractions") == 0);  // consumed: pruned
}

TEST_CASE("a span whose end is taken back out is read again, also with retractions pending") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    std::vector<std::int64_t> id;
    for (const char* ts : {"2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z",
                           "2026-01-01T12:00:00.000Z", "2026-01-01T13:00:00.000Z"}) {
        e.ts = ts;
        e.key = ts;
        id.push_back(insert(db, e));
    }
    exec(db, "COMMIT");
    refresh(db);
    const std::string session = "SELECT first_ts || ' ' || last_ts || ' ' || message_count "
                                "FROM session_mart";
    const std::string project = "SELECT first_ts || ' ' || last_ts FROM project_mart";
    CHECK(text(db, session) == "2026-01-01T10:00:00.000Z 2026-01-01T13:00:00.000Z 4");

    // Both ends go. One-row steps: the first takes the first end back out
    // and reads it again, while the last end's retraction is still pending.
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, id[0]);
    deleteEvent(db, id[3]);
    exec(db, "COMMIT");
    std::set<std::string> seeks = statementsOf(db, [&] { refresh(db, 1); });
    CHECK(seeksSessionSpan(seeks));
    CHECK(seeksProjectSpan(seeks));
    CHECK(text(db, session) == "2026-01-01T11:00:00.000Z 2026-01-01T13:00:00.000Z 3");
    refresh(db, 1);
    CHECK(text(db, session) == "2026-01-01T11:00:00.000Z 2026-01-01T12:00:00.000Z 2");
    CHECK(text(db, project) == "2026-01-01T11:00:00.000Z 2026-01-01T12:00:00.000Z");
    CHECK(compareWithOracle(db) == 0);

    // Every absorbed event deleted while the rows still count one: the span
    // comes from the retraction still pending.
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, id[1]);
    deleteEvent(db, id[2]);
    exec(db, "COMMIT");
    refresh(db, 1);
    CHECK(text(db, session) == "2026-01-01T12:00:00.000Z 2026-01-01T12:00:00.000Z 1");
    CHECK(text(db, project) == "2026-01-01T12:00:00.000Z 2026-01-01T12:00:00.000Z");
    refresh(db);
    CHECK(text(db, session) == "no row");
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("an end taken back out and added again in one step is kept without a seek") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    e.ts = "2026-01-01T10:00:00.000Z";
    e.key = "first";
    const std::int64_t first = insert(db, e);
    e.ts = "2026-01-01T11:00:00.000Z";
    e.key = "last";
    const std::int64_t last = insert(db, e);
    exec(db, "COMMIT");
    refresh(db);

    // A revision of each end with the same timestamp: at least as many
    // events stay at each end as were taken out.
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, first);
    deleteEvent(db, last);
    e.input = 5;
    e.ts = "2026-01-01T10:00:00.000Z";
    e.key = "first";
    insert(db, e);
    e.ts = "2026-01-01T11:00:00.000Z";
    e.key = "last";
    insert(db, e);
    exec(db, "COMMIT");
    std::set<std::string> seeks = statementsOf(db, [&] { refresh(db); });
    CHECK_FALSE(seeksSessionSpan(seeks));
    CHECK_FALSE(seeksProjectSpan(seeks));
    CHECK(compareWithOracle(db) == 0);

    // Taken out and added later than it was: that end is read again.
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, queryInt(db, "SELECT id FROM usage_events WHERE event_key = 'first'"));
    e.ts = "2026-01-01T10:30:00.000Z";
    e.key = "first";
    insert(db, e);
    exec(db, "COMMIT");
    seeks = statementsOf(db, [&] { refresh(db); });
    CHECK(seeksSessionSpan(seeks));
    CHECK(text(db, "SELECT first_ts FROM session_mart") == "2026-01-01T10:30:00.000Z");
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("a span seek while a first ingest has the read indexes dropped builds its index alone") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    e.sessionId = "early";
    e.ts = "2026-01-01T09:00:00.000Z";
    e.key = "early";
    insert(db, e);
    e.sessionId = "s";
    e.ts = "2026-01-01T10:00:00.000Z";
    e.key = "s-first";
    const std::int64_t sessionFirst = insert(db, e);
    e.ts = "2026-01-01T11:00:00.000Z";
    e.key = "s-last";
    insert(db, e);
    exec(db, "COMMIT");
    refresh(db);

    exec(db, "BEGIN IMMEDIATE");
    REQUIRE(dropReadIndexes(db));  // as a first ingest does
    deleteEvent(db, sessionFirst);  // the session's first, not the project's
    exec(db, "COMMIT");
    refresh(db);
    auto indexed = [&](const char* name) {
        return queryInt(db, std::string("SELECT COUNT(*) FROM sqlite_schema WHERE name = '") +
                                name + "'") == 1;
    };
    CHECK(indexed("idx_events_session"));
    CHECK_FALSE(indexed("idx_events_project"));
    CHECK_FALSE(indexed("idx_events_day"));
    CHECK(text(db, "SELECT first_ts FROM session_mart WHERE session_id = 's'") ==
          "2026-01-01T11:00:00.000Z");
    // The build sorted within its budget, and the writer's is back.
    CHECK(queryInt(db, "PRAGMA cache_size") == -kWriterCacheKiB);
    CHECK(queryInt(db, "PRAGMA temp_store") == 2);  // MEMORY
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("cost sums stay exact when a large cost is taken back out") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    e.cost = 1000.0;
    e.key = "big";
    const std::int64_t big = insert(db, e);
    e.cost = 1.234567e-7;
    e.key = "small";
    insert(db, e);
    exec(db, "COMMIT");
    refresh(db);
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, big);
    exec(db, "COMMIT");
    refresh(db);
    // A float sum gives 1000 + 1.234567e-7 - 1000 = 1.2345674349...e-7, off by
    // 3.5e-7 relative: far outside invariant 5's 1e-9.
    for (const char* q :
         {"SELECT cost_usd FROM daily_mart", "SELECT cost_usd FROM session_mart",
          "SELECT total_cost_usd FROM project_mart", "SELECT cost_usd FROM provider_day_mart",
          "SELECT cost_usd FROM model_day_mart"}) {
        const auto r = rows(db, q);
        REQUIRE(r.size() == 1);
        CHECK(std::get<double>(r[0][0]) == 1.234567e-7);
    }
}

TEST_CASE("primary_model is the model with most events, a tie going to the smallest name") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    std::vector<std::int64_t> bIds;
    int k = 0;
    for (const char* model : {"b", "a", "b", "a"}) {
        e.model = model;
        e.key = "k" + std::to_string(k++);
        const std::int64_t id = insert(db, e);
        if (e.model == "b") bIds.push_back(id);
    }
    exec(db, "COMMIT");
    refresh(db);
    auto primary = [&] { return rows(db, "SELECT primary_model FROM session_mart")[0][0]; };
    CHECK(primary() == Value{std::string("a")});
    exec(db, "BEGIN IMMEDIATE");
    e.model = "b";
    e.key = "k-more";
    const std::int64_t third = insert(db, e);
    exec(db, "COMMIT");
    refresh(db);
    CHECK(primary() == Value{std::string("b")});
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, third);
    deleteEvent(db, bIds[0]);
    exec(db, "COMMIT");
    refresh(db);
    CHECK(primary() == Value{std::string("a")});
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("a bounded refresh absorbs at most maxEvents rows and says when it is behind") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 10; ++i) {
        e.key = "k" + std::to_string(i);
        e.sessionId = "s" + std::to_string(i);
        ids.push_back(insert(db, e));
    }
    exec(db, "COMMIT");
    std::vector<std::int64_t> absorbed;
    std::vector<bool> caughtUp;
    for (int i = 0; i < 4; ++i) {
        const RefreshStats r = refresh(db, 3);
        absorbed.push_back(r.eventsAbsorbed);
        caughtUp.push_back(r.caughtUp);
        CHECK(r.watermark == ids[static_cast<size_t>(std::min(3 * i + 2, 9))]);
        CHECK(queryInt(db, "SELECT n FROM mart_row_counts WHERE mart = 'session'") ==
              std::min(3 * (i + 1), 10));
    }
    CHECK(absorbed == std::vector<std::int64_t>{3, 3, 3, 1});
    CHECK(caughtUp == std::vector<bool>{false, false, false, true});

    // Retractions share the budget, and events wait until they are all consumed.
    exec(db, "BEGIN IMMEDIATE");
    for (size_t i = 0; i < 5; ++i) deleteEvent(db, ids[i]);
    e.key = "late";
    insert(db, e);
    exec(db, "COMMIT");
    RefreshStats r = refresh(db, 3);
    CHECK(r.retractionsApplied == 3);
    CHECK(r.eventsAbsorbed == 0);
    CHECK_FALSE(r.caughtUp);
    r = refresh(db, 3);
    CHECK(r.retractionsApplied == 2);
    CHECK(r.eventsAbsorbed == 1);
    CHECK(r.caughtUp);
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("marts at different watermarks each catch up on their own") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    populate(db, 300);
    // The daily mart starts over (as after a repair of that mart alone) while
    // the others are current; then events arrive and old ones go.
    exec(db, "BEGIN IMMEDIATE");
    exec(db, "DELETE FROM daily_mart");
    exec(db, "DELETE FROM daily_mart_sessions");
    exec(db, "UPDATE mart_watermark SET last_event_id = 0 WHERE mart_name = 'daily'");
    exec(db, "COMMIT");
    change(db);
    std::vector<std::int64_t> absorbed;
    for (;;) {
        const RefreshStats r = refresh(db, 150);
        absorbed.push_back(r.eventsAbsorbed);
        if (r.caughtUp) break;
    }
    // change() deletes 10 events (8 old ones, and ids 333 and 370 among its
    // new ones). daily reads the 10 retractions (skipped: it holds nothing)
    // and the 390 events left, 150 rows per step: 140, 150, 100. The others
    // apply 8, skip 2, and absorb the 98 new events left in the first step.
    CHECK(absorbed == std::vector<std::int64_t>{140, 150, 100});
    CHECK(queryInt(db, "SELECT COUNT(DISTINCT last_event_id) FROM mart_watermark") == 1);
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("a step prepared in an older snapshot applies as the writer's own, or not at all") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    auto opened = Connection::open(dir.file("etl.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
    REQUIRE(opened);
    Connection reader = std::move(opened).value();
    exec(reader, "PRAGMA query_only = 1");
    auto prepareOnReader = [&](std::int64_t maxEvents) {
        exec(reader, "BEGIN");
        auto p = prepareRefresh(reader, maxEvents);
        REQUIRE_MESSAGE(p, (p ? "" : p.error().message));
        exec(reader, "COMMIT");
        return std::move(p).value();
    };
    auto apply = [&](const PreparedRefresh& p) {
        exec(db, "BEGIN IMMEDIATE");
        auto r = applyPreparedRefreshInTransaction(db, p, kNow);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        exec(db, "COMMIT");
        return *r;
    };
    auto insertSome = [&](int n, const std::string& prefix) {
        exec(db, "BEGIN IMMEDIATE");
        const std::int64_t p = project(db, "claude", "-a");
        std::int64_t first = 0;
        for (int i = 0; i < n; ++i) {
            Event e;
            e.projectId = p;
            e.sessionId = "s" + std::to_string(i % 3);
            e.ts = "2026-01-0" + std::to_string(1 + i % 5) + "T00:00:00.000Z";
            e.input = 10 + i;
            e.cost = 0.25 * i;
            e.key = prefix + std::to_string(i);
            const std::int64_t id = insert(db, e);
            if (i == 0) first = id;
        }
        exec(db, "COMMIT");
        return first;
    };

    const std::int64_t first = insertSome(10, "a");
    const PreparedRefresh ahead = prepareOnReader(1000);
    CHECK(ahead.rows() == 10);
    CHECK(ahead.caughtUp());
    // After the snapshot: more events, and one the step read is merged away.
    insertSome(5, "b");
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, first + 3);
    exec(db, "COMMIT");

    const auto applied = apply(ahead);
    REQUIRE(applied);
    CHECK(applied->eventsAbsorbed == 10);
    CHECK_FALSE(applied->caughtUp);  // its snapshot was, the store is not
    CHECK(queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark") == first + 9);
    const RefreshStats rest = refresh(db);
    CHECK(rest.eventsAbsorbed == 5);
    CHECK(rest.retractionsApplied == 1);  // the merged event comes back out
    CHECK(compareWithOracle(db) == 0);

    // Read ahead, then read on into the same step after more came: one
    // step covers both, a retraction of a row it had read included.
    const std::int64_t second = insertSome(6, "d");
    PreparedRefresh grown = prepareOnReader(1000);
    CHECK(grown.rows() == 6);
    insertSome(3, "e");
    exec(db, "BEGIN IMMEDIATE");
    deleteEvent(db, second + 1);
    exec(db, "COMMIT");
    exec(reader, "BEGIN");
    REQUIRE(extendRefresh(reader, grown, 1000));
    exec(reader, "COMMIT");
    CHECK(grown.rows() == 10);  // 6 + 3 events, 1 retraction
    CHECK(grown.caughtUp());
    const auto both = apply(grown);
    REQUIRE(both);
    CHECK(both->eventsAbsorbed == 9);
    CHECK(both->retractionsApplied == 1);
    CHECK(both->caughtUp);
    CHECK(compareWithOracle(db) == 0);

    // Read ahead, but the writer refreshes first: the step is stale, and
    // applying it writes nothing.
    insertSome(4, "c");
    const PreparedRefresh late = prepareOnReader(1000);
    CHECK(late.rows() == 4);
    refresh(db);
    const std::int64_t watermark = queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark");
    const std::int64_t messages = queryInt(db, "SELECT SUM(message_count) FROM session_mart");
    CHECK_FALSE(apply(late));
    CHECK(queryInt(db, "SELECT MIN(last_event_id) FROM mart_watermark") == watermark);
    CHECK(queryInt(db, "SELECT SUM(message_count) FROM session_mart") == messages);
    CHECK(compareWithOracle(db) == 0);
}

TEST_CASE("session cwd and project names follow their tables without a refresh") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    exec(db, "BEGIN IMMEDIATE");
    Event e;
    e.projectId = project(db, "claude", "-a");
    e.sessionId = "s1";
    e.key = "k";
    insert(db, e);
    exec(db, "COMMIT");
    refresh(db);
    CHECK(rows(db, "SELECT cwd FROM session_mart")[0][0] == Value{});
    exec(db,
         "INSERT INTO session_cwd VALUES ('claude', 's1', '/work/a', '2026-01-01T00:00:00.000Z')");
    CHECK(rows(db, "SELECT cwd FROM session_mart")[0][0] == Value{std::string("/work/a")});
    exec(db, "UPDATE session_cwd SET cwd = '/work/b'");
    CHECK(rows(db, "SELECT cwd FROM session_mart")[0][0] == Value{std::string("/work/b")});
    exec(db, "UPDATE projects SET display_name = 'A'");
    CHECK(rows(db, "SELECT display_name FROM project_mart")[0][0] == Value{std::string("A")});
    CHECK(compareWithOracle(db) == 0);
    exec(db, "DELETE FROM session_cwd");
    CHECK(rows(db, "SELECT cwd FROM session_mart")[0][0] == Value{});
}

TEST_CASE("refreshMartsInTransaction needs an open transaction and maxEvents >= 1") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    auto r = refreshMartsInTransaction(db, kNow, 10);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == "no_transaction");
    auto bad = refreshMarts(db, kNow, 0);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == "invalid_argument");
    CHECK(queryInt(db, "SELECT COUNT(*) FROM mart_watermark") == 0);  // nothing written
}

TEST_CASE("a refresh costs the same on 1,000 and on 100,000 events") {
    TempDir dir;
    Work small, large;
    for (auto [events, out] :
         {std::pair{std::int64_t{1000}, &small}, std::pair{std::int64_t{100000}, &large}}) {
        Connection db = openStore(dir.file("w" + std::to_string(events) + ".db"));
        populate(db, events);
        change(db);
        resetCounters(db.handle());
        const RefreshStats r = refresh(db);
        *out = readCounters(db.handle());
        CHECK(r.eventsAbsorbed == 100);
        CHECK(r.retractionsApplied == 25);
        CHECK(r.caughtUp);
        CHECK(compareWithOracle(db) == 0);
    }
    MESSAGE("VM steps of one refresh of 100 events + 25 retractions: "
            << small.vmSteps << " on 1,000 events, " << large.vmSteps << " on 100,000 events");
    CHECK(small.fullScanSteps == 0);
    CHECK(large.fullScanSteps == 0);
    CHECK(small.vmSteps > 0);
    CHECK(large.vmSteps < 3 * small.vmSteps);
}

TEST_CASE("every statement a refresh runs is planned without a full scan or a sort") {
    TempDir dir;
    Connection db = openStore(dir.file("etl.db"));
    populate(db, 200);
    change(db);  // new keys, existing keys, retractions, rows and members that go to zero
    exec(db, "DELETE FROM usage_events WHERE session_id = 's3'");

    const std::set<std::string> statements = statementsOf(db, [&] { refresh(db); });

    int checked = 0;
    std::set<std::string> seen;
    for (const std::string& sql : statements) {
        if (sql.rfind("BEGIN", 0) == 0 || sql == "COMMIT" || sql == "ROLLBACK") continue;
        ++checked;
        for (const char* table :
             {"usage_events", "event_retractions", "daily_mart ", "session_mart ",
              "daily_mart_sessions", "session_mart_models", "project_mart "})
            if (sql.find(table) != std::string::npos) seen.insert(table);
        for (const Row& plan : rows(db, "EXPLAIN QUERY PLAN " + sql)) {
            const std::string detail = std::get<std::string>(plan.back());
            CAPTURE(sql);
            // A multi-row VALUES list ("SCAN n CONSTANT ROWS") and a SELECT
            // without FROM ("SCAN CONSTANT ROW") read no table.
            const bool noTable = detail.find("CONSTANT ROW") != std::string::npos;
            CHECK_MESSAGE((detail.rfind("SCAN", 0) != 0 || noTable), detail);
            CHECK_MESSAGE(detail.find("TEMP B-TREE") == std::string::npos, detail);
        }
    }
    CHECK(checked >= 30);
    CHECK(seen.size() == 7);  // the paths that matter were all exercised
    CHECK(seeksSessionSpan(statements));
    CHECK(seeksProjectSpan(statements));
    CHECK(compareWithOracle(db) == 0);
}
