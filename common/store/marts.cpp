// Incremental marts.
//
// Each mart is a function of the multiset of events in usage_events. The
// store keeps, per mart, two watermarks in mart_watermark: `last_event_id`
// W (the mart has added every event with id <= W that existed when it read
// past that id) and `last_retraction_seq` R (it has considered every
// retraction with seq <= R). Ingest never changes an event in place: a
// revision or a merge DELETEs the row, and a trigger records in the same
// statement a retraction carrying the old row's values; a revision then
// INSERTs the new values under a fresh id, above every id ever assigned.
//
// One refresh step, per mart, inside one transaction:
//
//   1. Retractions with seq > R, in seq order. One whose old id <= W is
//      subtracted: the mart read past that id while the row existed (ids
//      only grow, and the row's retraction did not exist yet, see 2). One
//      whose old id > W is consumed and skipped: that row is gone, so the
//      mart will never read it either.
//   2. Only if step 1 reached the last retraction: events with id > W, in
//      id order, are added. Reading past an id only once every retraction
//      visible in the transaction has been consumed is what makes the test
//      of step 1 sound: an event deleted before the mart read past its id
//      left a retraction, and that retraction was consumed, skipped, while
//      W was still below the id.
//   3. W, R and last_refresh_ts are written, and retractions every mart has
//      consumed are pruned; the caller commits. Rows and watermarks move
//      together or not at all (invariant 5); nothing is kept in memory
//      between steps.
//
// Steps 1 and 2 share one budget of rows (`maxEvents`). Marts whose
// watermarks are equal (always, unless something else moved one) share one
// pass over the rows.
//
// Deltas. The rows read are folded in memory into net deltas per mart key
// and per helper member, so an event and its revision inside one step
// cancel before touching the disk; then each touched key is written once:
// read, add, write back, or DELETE when its message count reaches 0.
//
// Helper tables (migration 3) hold counted members of a mart key: rows
// (key, member, events) for a session, a project or a model, present
// exactly while events > 0. Hence:
//   * a distinct count moves by +1 when a member row appears and by -1 when
//     it goes (session_count, project_count, total_sessions);
//   * primary_model is the first row of an index on (session, events DESC,
//     model): the model with most events, the smallest name on a tie.
//
// Spans (migration 8). A session's first_ts with its project_id (the
// smallest (ts, project_id) of its events) and last_ts, and a project's
// first_ts and last_ts, are kept in the mart row alone. A step knows, per
// key, the smallest and the largest stamps it adds and takes back out, and
// how many of its events sit exactly there:
//   * when what it takes back out neither reaches past the stored extreme S
//     nor may be every event at S (it takes out fewer there than are known
//     to be there: S's own, and those it adds at S), an event at S is still
//     counted, and the new extreme is S or what was added, whichever is
//     further out;
//   * otherwise the extreme is read again: the first (last) of the key's
//     events in usage_events that the mart has absorbed (id <= W), one seek
//     down idx_events_session or idx_events_project.
// That seek misses an absorbed event deleted since whose retraction the
// mart has not consumed yet (a step stopped by its budget, or one prepared
// in an older snapshot), so S may leave it out. Such an event can only be
// further out than S while its retraction is pending, and that retraction
// then reaches S when consumed, which reads S again: once the mart has
// absorbed every event and retraction, S is exact (invariant 5). Only when
// none of the key's absorbed events is left in usage_events while the row
// still counts some is S read from their pending retractions instead.
//
// Nothing reads all events of a day, project or session: a step touching k
// rows costs O(k) B-tree seeks, O(k log n), whatever the store's size (a
// span's seek also steps over the key's events the mart has not absorbed
// yet, as many as it lags behind).
//
// Money. Each mart row also keeps its cost exactly, as a 128-bit two's
// complement integer of 2^-80 USD (cost_exact_hi * 2^64 + cost_exact_lo,
// the low 64 bits stored in a signed column); cost_usd is that integer
// converted. A float sum that adds and takes back drifts (1000 + 1e-7 - 1000
// is 1e-7 +- 1e-13, far outside 1e-9 relative); integers do not, and a
// retraction subtracts exactly what its event added (the same double gives
// the same integer). Every double of at least 2^-28 USD converts exactly;
// smaller ones round at 2^-81 USD, 1e-12 relative for a millionth of a cent.
//
// Columns that do not come from events: session_mart.cwd follows
// session_cwd, and project_mart's provider/slug/display_name follow
// projects, through triggers (migration 3) as well as at every write of the
// row, so they are right without waiting for a refresh.
//
// Where store.md is silent: a session is (provider, session_id) everywhere,
// also in the distinct counts of model_day_mart and project_mart, as in
// session_mart's fixed key; session_mart.project_id is the project of the
// session's earliest event (smallest ts, then smallest project_id).
#include "store/marts.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "store/store.h"

namespace etld::store {
namespace {

// Rows per step of a rebuild: bounds the memory of one step's deltas (a few
// hundred bytes per row read) while keeping the per-step overhead (about
// forty statements) negligible.
constexpr std::int64_t kRebuildStepRows = 20000;

enum Mart : size_t { kDaily, kSession, kProject, kProviderDay, kModelDay, kMartCount };
// The names of mart_watermark and mart_row_counts (status keys).
constexpr std::array<const char*, kMartCount> kMartNames = {"daily", "session", "project",
                                                            "provider_day", "model_day"};
using MartSet = std::array<bool, kMartCount>;
using Watermark = MartWatermark;

Error inconsistent(std::string_view what) {
    return Error{"mart_inconsistent", "mart state does not match its events (" + std::string(what) +
                                          "); rebuild the marts"};
}

// ---------------------------------------------------------------------------
// Exact money: 2^-80 USD per unit, 128 bits as (hi, lo).

// Units of 2^-16 USD in `hi`; values past 2^62 of them (7e13 USD) saturate.
constexpr double kHiUnitsPerUsd = 65536.0;
constexpr double kHiLimit = 0x1p62;

struct ExactUsd {
    std::int64_t hi = 0;
    std::uint64_t lo = 0;

    static ExactUsd fromDouble(double usd) {
        if (std::isnan(usd) || usd == 0) return {};
        if (usd < 0) return -fromDouble(-usd);
        const double scaled = usd * kHiUnitsPerUsd;  // exact: a power of two
        if (scaled >= kHiLimit) return ExactUsd{static_cast<std::int64_t>(kHiLimit), 0};
        const double whole = std::floor(scaled);
        // scaled - whole is exact (Sterbenz for scaled >= 1; whole = 0 below),
        // and scaling by 2^64 is exact; only bits below 2^-80 USD round.
        const double frac = std::nearbyint(std::ldexp(scaled - whole, 64));
        ExactUsd r;
        r.hi = static_cast<std::int64_t>(whole);
        if (frac >= 0x1p64) {
            r.hi += 1;
        } else {
            r.lo = static_cast<std::uint64_t>(frac);
        }
        return r;
    }
    static ExactUsd fromColumns(std::int64_t hi, std::int64_t lo) {
        return ExactUsd{hi, std::bit_cast<std::uint64_t>(lo)};
    }
    std::int64_t loColumn() const { return std::bit_cast<std::int64_t>(lo); }

    ExactUsd operator-() const {
        ExactUsd r;
        r.lo = ~lo + 1;
        r.hi = ~hi + (r.lo == 0 ? 1 : 0);
        return r;
    }
    ExactUsd& operator+=(const ExactUsd& o) {
        const std::uint64_t sum = lo + o.lo;
        hi += o.hi + (sum < lo ? 1 : 0);
        lo = sum;
        return *this;
    }
    bool isZero() const { return hi == 0 && lo == 0; }
    double toDouble() const {
        return std::ldexp(static_cast<double>(hi), -16) + std::ldexp(static_cast<double>(lo), -80);
    }
};

// ---------------------------------------------------------------------------
// What one event adds (sign +1) or one retraction takes back out (sign -1).

// The same columns, in this order, in usage_events and event_retractions.
#define ETLD_CONTRIBUTION_COLUMNS                                                   \
    "provider, project_id, session_id, ts, day, model, speed, role, input_tokens, " \
    "output_tokens, cache_read_tokens, cache_create_tokens, cost_usd"

// Its text is kept in the step's arena (StepDeltas), which the keys of the
// step's deltas view until the flush is done.
struct Contribution {
    std::string_view provider;
    std::int64_t projectId = 0;
    std::string_view sessionId, ts, day, model, speed, role;
    std::int64_t input = 0, output = 0, cacheRead = 0, cacheCreate = 0;
    double costUsd = 0;
};

Contribution readContribution(const Statement& s, int first, std::pmr::memory_resource& arena) {
    auto keep = [&](int column) -> std::string_view {
        const std::string_view text = s.columnView(column);
        if (text.empty()) return "";  // not a null view: it binds as '', not NULL
        auto* copy = static_cast<char*>(arena.allocate(text.size(), 1));
        std::memcpy(copy, text.data(), text.size());
        return {copy, text.size()};
    };
    Contribution c;
    c.provider = keep(first);
    c.projectId = s.columnInt(first + 1);
    c.sessionId = keep(first + 2);
    c.ts = keep(first + 3);
    c.day = keep(first + 4);
    c.model = keep(first + 5);
    c.speed = keep(first + 6);
    c.role = keep(first + 7);
    c.input = s.columnInt(first + 8);
    c.output = s.columnInt(first + 9);
    c.cacheRead = s.columnInt(first + 10);
    c.cacheCreate = s.columnInt(first + 11);
    c.costUsd = s.columnDouble(first + 12);
    return c;
}

// The summed columns of a mart row (each mart stores the ones it has).
struct Totals {
    std::int64_t messages = 0, userMessages = 0, assistantMessages = 0;
    std::int64_t input = 0, output = 0, cacheRead = 0, cacheCreate = 0;
    ExactUsd cost;

    void add(const Contribution& c, std::int64_t sign) {
        messages += sign;
        if (c.role == "user") userMessages += sign;
        if (c.role == "assistant") assistantMessages += sign;
        input += sign * c.input;
        output += sign * c.output;
        cacheRead += sign * c.cacheRead;
        cacheCreate += sign * c.cacheCreate;
        const ExactUsd cost1 = ExactUsd::fromDouble(c.costUsd);
        cost += sign > 0 ? cost1 : -cost1;
    }
    Totals& operator+=(const Totals& o) {
        messages += o.messages;
        userMessages += o.userMessages;
        assistantMessages += o.assistantMessages;
        input += o.input;
        output += o.output;
        cacheRead += o.cacheRead;
        cacheCreate += o.cacheCreate;
        cost += o.cost;
        return *this;
    }
};

// ---------------------------------------------------------------------------
// Binding tuple keys: each element to the next parameter.

// Views are the keys' Text: they view the contributions their step keeps
// until the flush is done, and every statement runs and is reset within it.
void bindValue(Statement& s, int i, std::string_view v) {
    s.bindView(i, v);
}
void bindValue(Statement& s, int i, const std::string& v) {
    s.bind(i, v);
}
void bindValue(Statement& s, int i, const std::optional<std::string>& v) {
    s.bind(i, v);
}
void bindValue(Statement& s, int i, std::int64_t v) {
    s.bind(i, v);
}
void bindValue(Statement& s, int i, double v) {
    s.bind(i, v);
}

// Binds `values` to the parameters from `first` on; returns the next index.
template <typename... Values>
int bindFrom(Statement& s, int first, const Values&... values) {
    int i = first;
    (bindValue(s, i++, values), ...);
    return i;
}

// Binds the elements of `key` from parameter `first` (1 by default);
// returns the next index.
template <typename Tuple>
int bindTuple(Statement& s, const Tuple& key, int first = 1) {
    return std::apply([&](const auto&... v) { return bindFrom(s, first, v...); }, key);
}

std::string joined(std::initializer_list<std::string_view> items, std::string_view sep,
                   std::string_view suffix = {}, bool numbered = false, int from = 1) {
    std::string out;
    int i = from;
    for (std::string_view item : items) {
        if (!out.empty()) out += sep;
        out += item;
        out += suffix;
        if (numbered) out += std::to_string(i++);
    }
    return out;
}

std::string placeholders(int from, int to) {
    std::string out;
    for (int i = from; i <= to; ++i) {
        if (i > from) out += ", ";
        out += "?" + std::to_string(i);
    }
    return out;
}

// ---------------------------------------------------------------------------
// SQL, built once from the constant names below (never from data).

// A helper table of counted members. A member's count is read, then the
// row inserted, updated or deleted: an upsert with RETURNING would say the
// new count in one statement, but SQLite buffers RETURNING rows in a fresh
// ephemeral table at every execution, which cost more than the read (about
// a tenth of a first ingest).
struct MemberTable {
    std::string select;  // members ?1..?k -> events
    std::string insert;  // members ?1..?k, events ?k+1
    std::string update;  // members ?1..?k, events ?k+1
    std::string remove;  // members ?1..?k
    int width = 0;       // k + 1: the parameters of one row

    // An upsert adding positive deltas to n members: n rows of (members,
    // delta) in one statement, so the statement's overhead (bind, step,
    // reset, halt) is paid once per n rows instead of per row.
    std::string add(std::size_t n) const {
        std::string row = "(?";
        for (int i = 1; i < width; ++i) row += ", ?";
        row += ")";
        std::string sql = insertHead;
        for (std::size_t i = 0; i < n; ++i) sql += (i == 0 ? "" : ", ") + row;
        return sql + " ON CONFLICT DO UPDATE SET events = events + excluded.events";
    }
    std::string insertHead;  // "INSERT INTO t (members, events) VALUES "
};

MemberTable memberTable(std::string_view table, std::initializer_list<std::string_view> columns) {
    const int k = static_cast<int>(columns.size());
    const std::string where = " WHERE " + joined(columns, " AND ", " = ?", true);
    MemberTable t;
    t.width = k + 1;
    t.insertHead = "INSERT INTO " + std::string(table) + " (" + joined(columns, ", ") + ", events) VALUES ";
    t.select = "SELECT events FROM " + std::string(table) + where;
    t.insert = t.insertHead + "(" + placeholders(1, k + 1) + ")";
    t.update = "UPDATE " + std::string(table) + " SET events = ?" + std::to_string(k + 1) + where;
    t.remove = "DELETE FROM " + std::string(table) + where;
    return t;
}

// A mart table: read its stored sums, write a row, delete a row.
struct MartTable {
    // key ?1..?k -> the stored sums, the distinct counts, and for a mart with
    // a span (session, project) first_ts, project_id and last_ts
    std::string select;
    std::string upsert;  // key ?1..?k, then the value columns in order
    std::string remove;  // key ?1..?k
};

// The stored sums, in Totals order; marts lacking a column read a literal 0.
MartTable martTable(std::string_view table, std::initializer_list<std::string_view> key,
                    std::string_view storedColumns,
                    std::initializer_list<std::string_view> values) {
    const int k = static_cast<int>(key.size());
    const int n = k + static_cast<int>(values.size());
    std::string update;
    for (std::string_view v : values) {
        if (!update.empty()) update += ", ";
        update += std::string(v) + " = excluded." + std::string(v);
    }
    MartTable t;
    const std::string where = joined(key, " AND ", " = ?", true);
    t.select =
        "SELECT " + std::string(storedColumns) + " FROM " + std::string(table) + " WHERE " + where;
    t.upsert = "INSERT INTO " + std::string(table) + " (" + joined(key, ", ") + ", " +
               joined(values, ", ") + ") VALUES (" + placeholders(1, n) + ") ON CONFLICT (" +
               joined(key, ", ") + ") DO UPDATE SET " + update;
    t.remove = "DELETE FROM " + std::string(table) + " WHERE " + where;
    return t;
}

struct Sql {
    MemberTable dailySessions = memberTable(
        "daily_mart_sessions", {"day", "project_id", "provider", "model", "speed", "session_id"});
    MemberTable sessionModels =
        memberTable("session_mart_models", {"provider", "session_id", "model"});
    MemberTable projectSessions =
        memberTable("project_mart_sessions", {"project_id", "provider", "session_id"});
    MemberTable providerDaySessions =
        memberTable("provider_day_mart_sessions", {"day", "provider", "session_id"});
    MemberTable providerDayProjects =
        memberTable("provider_day_mart_projects", {"day", "provider", "project_id"});
    MemberTable modelDaySessions =
        memberTable("model_day_mart_sessions", {"day", "model", "speed", "provider", "session_id"});

    MartTable daily =
        martTable("daily_mart", {"day", "project_id", "provider", "model", "speed"},
                  "message_count, 0, 0, input_tokens, output_tokens, cache_read, cache_create, "
                  "cost_exact_hi, cost_exact_lo, session_count",
                  {"input_tokens", "output_tokens", "cache_read", "cache_create", "message_count",
                   "session_count", "cost_usd", "cost_exact_hi", "cost_exact_lo"});
    MartTable session =
        martTable("session_mart", {"provider", "session_id"},
                  "message_count, user_message_count, assistant_message_count, input_tokens, "
                  "output_tokens, cache_read, cache_create, cost_exact_hi, cost_exact_lo, "
                  "first_ts, project_id, last_ts",
                  {"project_id", "primary_model", "first_ts", "last_ts", "message_count",
                   "user_message_count", "assistant_message_count", "input_tokens", "output_tokens",
                   "cache_read", "cache_create", "cost_usd", "is_one_shot", "cwd", "cost_exact_hi",
                   "cost_exact_lo"});
    MartTable project = martTable(
        "project_mart", {"project_id"},
        "total_messages, 0, 0, total_input_tokens, total_output_tokens, total_cache_read, "
        "total_cache_create, cost_exact_hi, cost_exact_lo, total_sessions, first_ts, project_id, "
        "last_ts",
        {"provider", "slug", "display_name", "first_ts", "last_ts", "total_messages",
         "total_sessions", "total_input_tokens", "total_output_tokens", "total_cache_read",
         "total_cache_create", "total_cost_usd", "cost_exact_hi", "cost_exact_lo"});
    MartTable providerDay =
        martTable("provider_day_mart", {"day", "provider"},
                  "message_count, 0, 0, 0, 0, 0, 0, cost_exact_hi, cost_exact_lo, session_count, "
                  "project_count",
                  {"cost_usd", "message_count", "session_count", "project_count", "cost_exact_hi",
                   "cost_exact_lo"});
    MartTable modelDay =
        martTable("model_day_mart", {"day", "model", "speed"},
                  "message_count, 0, 0, input_tokens, output_tokens, cache_read, cache_create, "
                  "cost_exact_hi, cost_exact_lo, session_count",
                  {"cost_usd", "input_tokens", "output_tokens", "cache_read", "cache_create",
                   "message_count", "session_count", "cost_exact_hi", "cost_exact_lo"});
};

const Sql& sql() {
    static const Sql s;
    return s;
}

constexpr const char* kSelectRetractions =
    "SELECT seq, old_event_id, " ETLD_CONTRIBUTION_COLUMNS
    " FROM event_retractions WHERE seq > ?1 ORDER BY seq LIMIT ?2";
constexpr const char* kSelectEvents =
    "SELECT id, " ETLD_CONTRIBUTION_COLUMNS " FROM usage_events WHERE id > ?1 ORDER BY id LIMIT ?2";
#undef ETLD_CONTRIBUTION_COLUMNS
constexpr const char* kSelectWatermark =
    "SELECT last_event_id, last_retraction_seq FROM mart_watermark WHERE mart_name = ?1";
constexpr const char* kWriteWatermark =
    "INSERT INTO mart_watermark (mart_name, last_event_id, last_retraction_seq, "
    "last_refresh_ts) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (mart_name) DO UPDATE SET "
    "last_event_id = excluded.last_event_id, last_retraction_seq = "
    "excluded.last_retraction_seq, last_refresh_ts = excluded.last_refresh_ts";
constexpr const char* kPruneRetractions = "DELETE FROM event_retractions WHERE seq <= ?1";

constexpr const char* kSessionPrimaryModel =
    "SELECT model FROM session_mart_models INDEXED BY session_mart_models_rank "
    "WHERE provider = ?1 AND session_id = ?2 ORDER BY events DESC, model LIMIT 1";
constexpr const char* kSessionCwd =
    "SELECT cwd FROM session_cwd WHERE provider = ?1 AND session_id = ?2";

// How a span is read again from the events and, when none is left, from
// their pending retractions (see "Spans"). Parameters: the mart key, then
// the mart's event watermark, then its retraction watermark. A project's
// events come in (day, ts) order, the order of ts itself.
struct SpanSql {
    const char* index;  // what `first` and `last` seek through
    const char* first;
    const char* last;
    const char* pending;
};
constexpr SpanSql kSessionSpan = {
    "idx_events_session",
    "SELECT ts, project_id FROM usage_events WHERE session_id = ?2 AND provider = ?1 "
    "AND id <= ?3 ORDER BY ts, project_id LIMIT 1",
    "SELECT ts, project_id FROM usage_events WHERE session_id = ?2 AND provider = ?1 "
    "AND id <= ?3 ORDER BY ts DESC, project_id DESC LIMIT 1",
    "SELECT ts, project_id FROM event_retractions WHERE seq > ?4 AND old_event_id <= ?3 "
    "AND provider = ?1 AND session_id = ?2",
};
constexpr SpanSql kProjectSpan = {
    "idx_events_project",
    "SELECT ts, project_id FROM usage_events WHERE project_id = ?1 AND id <= ?2 "
    "ORDER BY day, ts LIMIT 1",
    "SELECT ts, project_id FROM usage_events WHERE project_id = ?1 AND id <= ?2 "
    "ORDER BY day DESC, ts DESC LIMIT 1",
    "SELECT ts, project_id FROM event_retractions WHERE seq > ?3 AND old_event_id <= ?2 "
    "AND project_id = ?1",
};
constexpr const char* kProjectInfo =
    "SELECT provider, slug, display_name FROM projects WHERE id = ?1";

// Every table the engine owns or fills, emptied by a rebuild.
constexpr std::array<const char*, 11> kRebuildDeletes = {
    "DELETE FROM daily_mart",
    "DELETE FROM session_mart",
    "DELETE FROM project_mart",
    "DELETE FROM provider_day_mart",
    "DELETE FROM model_day_mart",
    "DELETE FROM daily_mart_sessions",
    "DELETE FROM session_mart_models",
    "DELETE FROM project_mart_sessions",
    "DELETE FROM provider_day_mart_sessions",
    "DELETE FROM provider_day_mart_projects",
    "DELETE FROM model_day_mart_sessions",
};

// ---------------------------------------------------------------------------
// Small statement helpers.

// Runs a bound one-row query; `onRow` reads the row if there is one.
template <typename Bind, typename OnRow>
Result<bool> queryRow(Connection& db, std::string_view text, Bind&& bind, OnRow&& onRow) {
    auto stmt = db.cached(text);
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    bind(s);
    auto row = s.step();
    if (!row) return row.error();
    if (*row) onRow(s);
    s.reset();
    return *row;
}

template <typename Bind>
Status runStatement(Connection& db, std::string_view text, Bind&& bind) {
    auto stmt = db.cached(text);
    if (!stmt) return stmt.error();
    bind(**stmt);
    return (*stmt)->run();
}

// Applies one member's delta to a helper table; calls onChange(member, +1)
// when its row appeared and onChange(member, -1) when it went away.
template <typename Member, typename OnChange>
Status applyMember(Connection& db, const MemberTable& table, const Member& member,
                   std::int64_t delta, OnChange&& onChange) {
    if (delta == 0) return {};
    std::int64_t before = 0;
    auto row = queryRow(
        db, table.select, [&](Statement& s) { bindTuple(s, member); },
        [&](Statement& s) { before = s.columnInt(0); });
    if (!row) return row.error();
    const std::int64_t events = before + delta;
    if (events < 0) return inconsistent("a helper count went below zero");
    const std::string& write = events == 0 ? table.remove : *row ? table.update : table.insert;
    auto st = runStatement(db, write, [&](Statement& s) {
        const int next = bindTuple(s, member);
        if (events != 0) s.bind(next, events);
    });
    if (!st) return st;
    if (before == 0 && events > 0) onChange(member, 1);
    if (before > 0 && events == 0) onChange(member, -1);
    return {};
}

template <typename Deltas, typename OnChange>
Status applyMembers(Connection& db, const MemberTable& table, const Deltas& deltas,
                    OnChange&& onChange) {
    for (const auto& [member, delta] : deltas)
        if (auto st = applyMember(db, table, member, delta, onChange); !st) return st;
    return {};
}

// Members per multi-row upsert of applyUncountedMembers.
constexpr std::size_t kAddRows = 32;

// A helper table whose members nobody counts (a session's models): a
// positive delta can neither empty a row nor needs the old count, so the
// positive ones are upserts, kAddRows members a statement; only a negative
// one reads first.
template <typename Deltas>
Status applyUncountedMembers(Connection& db, const MemberTable& table, const Deltas& deltas) {
    using Member = typename Deltas::key_type;
    std::vector<std::pair<const Member*, std::int64_t>> batch;
    auto addBatch = [&]() -> Status {
        if (batch.empty()) return {};
        auto st = runStatement(db, table.add(batch.size()), [&](Statement& s) {
            int next = 1;
            for (const auto& [member, delta] : batch) {
                next = bindTuple(s, *member, next);
                s.bind(next++, delta);
            }
        });
        batch.clear();
        return st;
    };
    for (const auto& [member, delta] : deltas) {
        if (delta > 0) {
            batch.emplace_back(&member, delta);
            if (batch.size() == kAddRows)
                if (auto st = addBatch(); !st) return st;
        } else if (auto st = applyMember(db, table, member, delta, [](const Member&, int) {}); !st) {
            return st;
        }
    }
    return addBatch();
}

// A span as a mart row keeps it (see "Spans" above).
struct SpanEnds {
    std::string firstTs;
    std::int64_t firstProject = 0;
    std::string lastTs;
};

// A mart row as stored: its sums, up to two distinct counts, and its span.
struct StoredRow {
    bool exists = false;
    Totals totals;
    std::array<std::int64_t, 2> distinct{};
    SpanEnds span;  // session and project marts (readRow's `withSpan`)
};

template <typename Key>
Result<StoredRow> readRow(Connection& db, const MartTable& table, const Key& key,
                          int distinctColumns, bool withSpan = false) {
    StoredRow r;
    auto row = queryRow(
        db, table.select, [&](Statement& s) { bindTuple(s, key); },
        [&](Statement& s) {
            Totals& t = r.totals;
            t.messages = s.columnInt(0);
            t.userMessages = s.columnInt(1);
            t.assistantMessages = s.columnInt(2);
            t.input = s.columnInt(3);
            t.output = s.columnInt(4);
            t.cacheRead = s.columnInt(5);
            t.cacheCreate = s.columnInt(6);
            t.cost = ExactUsd::fromColumns(s.columnInt(7), s.columnInt(8));
            for (int i = 0; i < distinctColumns; ++i)
                r.distinct[static_cast<size_t>(i)] = s.columnInt(9 + i);
            if (withSpan) {
                const int at = 9 + distinctColumns;
                r.span = {s.columnText(at), s.columnInt(at + 1), s.columnText(at + 2)};
            }
        });
    if (!row) return row.error();
    r.exists = *row;
    return r;
}

// Adds a delta to a stored row. Returns true when the row keeps events (write
// it), false when its last event went (delete it); an error if the sums say
// the mart and its events disagree.
Result<bool> settle(std::string_view mart, StoredRow& row, const Totals& delta,
                    std::array<std::int64_t, 2> distinctDelta) {
    row.totals += delta;
    for (size_t i = 0; i < row.distinct.size(); ++i) row.distinct[i] += distinctDelta[i];
    const Totals& t = row.totals;
    if (t.messages < 0 || row.distinct[0] < 0 || row.distinct[1] < 0)
        return inconsistent(std::string(mart) + " count below zero");
    if (t.messages > 0) return true;
    if (!t.cost.isZero() || row.distinct[0] != 0 || row.distinct[1] != 0)
        return inconsistent(std::string(mart) + " row empty of events but not of sums");
    return false;
}

template <typename Key>
Status deleteRow(Connection& db, const MartTable& table, const Key& key) {
    return runStatement(db, table.remove, [&](Statement& s) { bindTuple(s, key); });
}

// The first column of a one-row query keyed like `key`, or nullopt.
template <typename Key>
Result<std::optional<std::string>> firstText(Connection& db, std::string_view text,
                                             const Key& key) {
    std::optional<std::string> v;
    auto row = queryRow(
        db, text, [&](Statement& s) { bindTuple(s, key); },
        [&](Statement& s) { v = s.columnOptText(0); });
    if (!row) return row.error();
    return v;
}

// ---------------------------------------------------------------------------
// The five marts: in-memory deltas of one step, and how they are written.

// Keys view the strings of the contributions their step keeps (StepDeltas):
// a key per mart and helper table per event, without copying its strings.
using Text = std::string_view;
using Id = std::int64_t;

// A map of deltas for StepDeltas::add. Consecutive events mostly share a
// key, or come right after the previous one in key order (a file's events
// are in time order), so it tries first where the last key went: O(1) for
// those instead of a walk down the tree (a dozen keys per event).
template <typename Key, typename Value>
class Tally {
public:
    using key_type = Key;
    // Its nodes come from the step's arena: freed at once, with the step.
    explicit Tally(std::pmr::memory_resource* arena) : map_(arena) {}
    Tally(const Tally&) = delete;  // last_ points into map_
    Tally& operator=(const Tally&) = delete;

    Value& operator[](const Key& key) {
        if (last_ != map_.end() && last_->first == key) return last_->second;
        last_ = map_.try_emplace(last_ == map_.end() ? map_.end() : std::next(last_), key);
        return last_->second;
    }
    auto begin() const { return map_.begin(); }
    auto end() const { return map_.end(); }

private:
    std::pmr::map<Key, Value> map_;
    typename std::pmr::map<Key, Value>::iterator last_ = map_.end();
};

// ---------------------------------------------------------------------------
// Spans: first_ts and last_ts (see "Spans" above).

// The earliest (smallest ts, then smallest project_id) and the latest ts of
// the events a step adds to a key, or of those it takes back out, and how
// many of those events have exactly that stamp.
struct Span {
    bool empty = true;
    Text firstTs, lastTs;
    Id firstProject = 0;
    std::int64_t atFirst = 0, atLast = 0;

    void add(Text ts, Id project) {
        const auto stamp = std::tie(ts, project);
        if (empty || stamp < std::tie(firstTs, firstProject)) {
            firstTs = ts;
            firstProject = project;
            atFirst = 0;
        }
        if (stamp == std::tie(firstTs, firstProject)) ++atFirst;
        if (empty || ts > lastTs) {
            lastTs = ts;
            atLast = 0;
        }
        if (ts == lastTs) ++atLast;
        empty = false;
    }
};

// A session's or a project's delta: its sums, and the spans of the events
// added and taken back out.
struct SpannedTotals {
    Totals totals;
    Span added, removed;

    void add(const Contribution& c, std::int64_t sign) {
        totals.add(c, sign);
        (sign > 0 ? added : removed).add(c.ts, c.projectId);
    }
};

// The first or the last of a key's absorbed events still in usage_events,
// if any is left; `key` is bound first, the event watermark after it.
template <typename Key>
Result<bool> readSpanEnd(Connection& db, const char* text, const Key& key, std::int64_t absorbedTo,
                         std::string& ts, Id& project) {
    return queryRow(
        db, text, [&](Statement& s) { s.bind(bindTuple(s, key), absorbedTo); },
        [&](Statement& s) {
            ts = s.columnText(0);
            project = s.columnInt(1);
        });
}

// A key's span once a step's delta is in, from the row as it was stored
// (`stored`: none for a new row); `to` is where the step leaves the mart.
template <typename Key>
Result<SpanEnds> spanAfterStep(Connection& db, const SpanSql& sql, const Key& key,
                               const SpanEnds* stored, const SpannedTotals& delta,
                               const Watermark& to) {
    SpanEnds ends = stored ? *stored : SpanEnds{};
    // The new first: the stored one or the first added, whichever comes
    // first, and at least how many events it stands for (the stored one at
    // least its own); unless the events taken back out reach below it or
    // may be all of those: then it is read again. The last likewise.
    const Span& added = delta.added;
    const Span& removed = delta.removed;
    std::int64_t atFirst = stored ? 1 : 0, atLast = atFirst;
    if (!added.empty) {
        const auto first = std::tie(added.firstTs, added.firstProject);
        if (!stored || first < std::tie(ends.firstTs, ends.firstProject)) {
            ends.firstTs = added.firstTs;
            ends.firstProject = added.firstProject;
            atFirst = 0;
        }
        if (first == std::tie(ends.firstTs, ends.firstProject)) atFirst += added.atFirst;
        if (!stored || added.lastTs > ends.lastTs) {
            ends.lastTs = added.lastTs;
            atLast = 0;
        }
        if (added.lastTs == ends.lastTs) atLast += added.atLast;
    }
    if (atFirst == 0) return inconsistent("a mart row without events");
    bool readFirst = false, readLast = false;
    if (!removed.empty) {
        const auto first = std::tie(removed.firstTs, removed.firstProject);
        const auto keptFirst = std::tie(ends.firstTs, ends.firstProject);
        readFirst = first < keptFirst || (first == keptFirst && removed.atFirst >= atFirst);
        readLast = removed.lastTs > ends.lastTs ||
                   (removed.lastTs == ends.lastTs && removed.atLast >= atLast);
    }
    if (!readFirst && !readLast) return ends;

    // A first ingest builds the read indexes at its end: this one cannot wait.
    if (auto st = ensureReadIndexInTransaction(db, sql.index); !st) return st.error();
    Id lastProject = 0;
    bool left = true;
    if (readFirst) {
        auto found = readSpanEnd(db, sql.first, key, to.eventId, ends.firstTs, ends.firstProject);
        if (!found) return found.error();
        left = *found;
    }
    if (readLast && left) {
        auto found = readSpanEnd(db, sql.last, key, to.eventId, ends.lastTs, lastProject);
        if (!found) return found.error();
        left = *found;
    }
    if (left) return ends;

    // All the key's absorbed events are deleted, their retractions pending.
    Span pending;
    std::pmr::monotonic_buffer_resource text;
    auto stmt = db.cached(sql.pending);
    if (!stmt) return stmt.error();
    Statement& s = **stmt;
    s.bind(bindFrom(s, bindTuple(s, key), to.eventId), to.retractionSeq);
    for (;;) {
        auto row = s.step();
        if (!row) return row.error();
        if (!*row) break;
        const std::string_view ts = s.columnView(0);
        auto* copy = static_cast<char*>(text.allocate(ts.size(), 1));
        std::memcpy(copy, ts.data(), ts.size());
        pending.add({copy, ts.size()}, s.columnInt(1));
    }
    s.reset();
    if (pending.empty) return inconsistent("a mart row counts events that are nowhere");
    if (readFirst) {
        ends.firstTs = pending.firstTs;
        ends.firstProject = pending.firstProject;
    }
    if (readLast) ends.lastTs = pending.lastTs;
    return ends;
}

struct DailyDeltas {
    using Key = std::tuple<Text, Id, Text, Text, Text>;  // day, project, provider, model, speed
    Tally<Key, Totals> rows;
    Tally<std::tuple<Text, Id, Text, Text, Text, Text>, std::int64_t> sessions;

    explicit DailyDeltas(std::pmr::memory_resource* arena) : rows(arena), sessions(arena) {}

    void add(const Contribution& c, std::int64_t sign) {
        rows[Key{c.day, c.projectId, c.provider, c.model, c.speed}].add(c, sign);
        sessions[{c.day, c.projectId, c.provider, c.model, c.speed, c.sessionId}] += sign;
    }

    Status flush(Connection& db) const {
        std::map<Key, std::int64_t> sessionCount;
        auto st = applyMembers(db, sql().dailySessions, sessions, [&](const auto& m, int d) {
            sessionCount[Key{std::get<0>(m), std::get<1>(m), std::get<2>(m), std::get<3>(m),
                             std::get<4>(m)}] += d;
        });
        if (!st) return st;
        for (const auto& [key, delta] : rows) {
            auto row = readRow(db, sql().daily, key, 1);
            if (!row) return row.error();
            auto keep = settle("daily", *row, delta, {sessionCount[key], 0});
            if (!keep) return keep.error();
            if (!*keep) {
                if (auto d = deleteRow(db, sql().daily, key); !d) return d;
                continue;
            }
            const Totals& t = row->totals;
            st = runStatement(db, sql().daily.upsert, [&](Statement& s) {
                bindFrom(s, bindTuple(s, key), t.input, t.output, t.cacheRead, t.cacheCreate,
                         t.messages, row->distinct[0], t.cost.toDouble(), t.cost.hi,
                         t.cost.loColumn());
            });
            if (!st) return st;
        }
        return {};
    }
};

struct SessionDeltas {
    using Key = std::tuple<Text, Text>;  // provider, session_id
    Tally<Key, SpannedTotals> rows;
    Tally<std::tuple<Text, Text, Text>, std::int64_t> models;

    explicit SessionDeltas(std::pmr::memory_resource* arena) : rows(arena), models(arena) {}

    void add(const Contribution& c, std::int64_t sign) {
        rows[Key{c.provider, c.sessionId}].add(c, sign);
        models[{c.provider, c.sessionId, c.model}] += sign;
    }

    Status flush(Connection& db, const Watermark& to) const {
        if (auto st = applyUncountedMembers(db, sql().sessionModels, models); !st) return st;
        for (const auto& [key, delta] : rows) {
            auto row = readRow(db, sql().session, key, 0, true);
            if (!row) return row.error();
            auto keep = settle("session", *row, delta.totals, {0, 0});
            if (!keep) return keep.error();
            if (!*keep) {
                if (auto d = deleteRow(db, sql().session, key); !d) return d;
                continue;
            }
            auto span =
                spanAfterStep(db, kSessionSpan, key, row->exists ? &row->span : nullptr, delta, to);
            if (!span) return span.error();
            auto model = firstText(db, kSessionPrimaryModel, key);
            if (!model) return model.error();
            auto cwd = firstText(db, kSessionCwd, key);
            if (!cwd) return cwd.error();
            const Totals& t = row->totals;
            const std::int64_t oneShot = t.userMessages == 1 && t.assistantMessages == 1;
            auto st = runStatement(db, sql().session.upsert, [&](Statement& s) {
                bindFrom(s, bindTuple(s, key), span->firstProject, *model, span->firstTs,
                         span->lastTs, t.messages, t.userMessages, t.assistantMessages, t.input,
                         t.output, t.cacheRead, t.cacheCreate, t.cost.toDouble(), oneShot, *cwd,
                         t.cost.hi, t.cost.loColumn());
            });
            if (!st) return st;
        }
        return {};
    }
};

struct ProjectDeltas {
    using Key = std::tuple<Id>;
    Tally<Key, SpannedTotals> rows;
    Tally<std::tuple<Id, Text, Text>, std::int64_t> sessions;

    explicit ProjectDeltas(std::pmr::memory_resource* arena) : rows(arena), sessions(arena) {}

    void add(const Contribution& c, std::int64_t sign) {
        rows[Key{c.projectId}].add(c, sign);
        sessions[{c.projectId, c.provider, c.sessionId}] += sign;
    }

    Status flush(Connection& db, const Watermark& to) const {
        std::map<Key, std::int64_t> sessionCount;
        auto st = applyMembers(db, sql().projectSessions, sessions, [&](const auto& m, int d) {
            sessionCount[Key{std::get<0>(m)}] += d;
        });
        if (!st) return st;
        for (const auto& [key, delta] : rows) {
            auto row = readRow(db, sql().project, key, 1, true);
            if (!row) return row.error();
            auto keep = settle("project", *row, delta.totals, {sessionCount[key], 0});
            if (!keep) return keep.error();
            if (!*keep) {
                if (auto d = deleteRow(db, sql().project, key); !d) return d;
                continue;
            }
            auto span =
                spanAfterStep(db, kProjectSpan, key, row->exists ? &row->span : nullptr, delta, to);
            if (!span) return span.error();
            // projects.id is what usage_events.project_id references (a foreign
            // key), so the row is there; empty names only if it were not.
            std::string provider, slug, displayName;
            auto info = queryRow(
                db, kProjectInfo, [&](Statement& s) { bindTuple(s, key); },
                [&](Statement& s) {
                    provider = s.columnText(0);
                    slug = s.columnText(1);
                    displayName = s.columnText(2);
                });
            if (!info) return info.error();
            const Totals& t = row->totals;
            st = runStatement(db, sql().project.upsert, [&](Statement& s) {
                bindFrom(s, bindTuple(s, key), provider, slug, displayName, span->firstTs,
                         span->lastTs,
                         t.messages, row->distinct[0], t.input, t.output, t.cacheRead,
                         t.cacheCreate, t.cost.toDouble(), t.cost.hi, t.cost.loColumn());
            });
            if (!st) return st;
        }
        return {};
    }
};

struct ProviderDayDeltas {
    using Key = std::tuple<Text, Text>;  // day, provider
    Tally<Key, Totals> rows;
    Tally<std::tuple<Text, Text, Text>, std::int64_t> sessions;
    Tally<std::tuple<Text, Text, Id>, std::int64_t> projects;

    explicit ProviderDayDeltas(std::pmr::memory_resource* arena)
        : rows(arena), sessions(arena), projects(arena) {}

    void add(const Contribution& c, std::int64_t sign) {
        rows[Key{c.day, c.provider}].add(c, sign);
        sessions[{c.day, c.provider, c.sessionId}] += sign;
        projects[{c.day, c.provider, c.projectId}] += sign;
    }

    Status flush(Connection& db) const {
        std::map<Key, std::int64_t> sessionCount, projectCount;
        auto st = applyMembers(db, sql().providerDaySessions, sessions, [&](const auto& m, int d) {
            sessionCount[Key{std::get<0>(m), std::get<1>(m)}] += d;
        });
        if (!st) return st;
        st = applyMembers(db, sql().providerDayProjects, projects, [&](const auto& m, int d) {
            projectCount[Key{std::get<0>(m), std::get<1>(m)}] += d;
        });
        if (!st) return st;
        for (const auto& [key, delta] : rows) {
            auto row = readRow(db, sql().providerDay, key, 2);
            if (!row) return row.error();
            auto keep = settle("provider_day", *row, delta, {sessionCount[key], projectCount[key]});
            if (!keep) return keep.error();
            if (!*keep) {
                if (auto d = deleteRow(db, sql().providerDay, key); !d) return d;
                continue;
            }
            const Totals& t = row->totals;
            st = runStatement(db, sql().providerDay.upsert, [&](Statement& s) {
                bindFrom(s, bindTuple(s, key), t.cost.toDouble(), t.messages, row->distinct[0],
                         row->distinct[1], t.cost.hi, t.cost.loColumn());
            });
            if (!st) return st;
        }
        return {};
    }
};

struct ModelDayDeltas {
    using Key = std::tuple<Text, Text, Text>;  // day, model, speed
    Tally<Key, Totals> rows;
    Tally<std::tuple<Text, Text, Text, Text, Text>, std::int64_t> sessions;

    explicit ModelDayDeltas(std::pmr::memory_resource* arena) : rows(arena), sessions(arena) {}

    void add(const Contribution& c, std::int64_t sign) {
        rows[Key{c.day, c.model, c.speed}].add(c, sign);
        sessions[{c.day, c.model, c.speed, c.provider, c.sessionId}] += sign;
    }

    Status flush(Connection& db) const {
        std::map<Key, std::int64_t> sessionCount;
        auto st = applyMembers(db, sql().modelDaySessions, sessions, [&](const auto& m, int d) {
            sessionCount[Key{std::get<0>(m), std::get<1>(m), std::get<2>(m)}] += d;
        });
        if (!st) return st;
        for (const auto& [key, delta] : rows) {
            auto row = readRow(db, sql().modelDay, key, 1);
            if (!row) return row.error();
            auto keep = settle("model_day", *row, delta, {sessionCount[key], 0});
            if (!keep) return keep.error();
            if (!*keep) {
                if (auto d = deleteRow(db, sql().modelDay, key); !d) return d;
                continue;
            }
            const Totals& t = row->totals;
            st = runStatement(db, sql().modelDay.upsert, [&](Statement& s) {
                bindFrom(s, bindTuple(s, key), t.cost.toDouble(), t.input, t.output, t.cacheRead,
                         t.cacheCreate, t.messages, row->distinct[0], t.cost.hi, t.cost.loColumn());
            });
            if (!st) return st;
        }
        return {};
    }
};

// The deltas of one step for a set of marts that share their watermarks.
struct StepDeltas {
    explicit StepDeltas(const MartSet& m) : marts(m) {}

    MartSet marts;
    // The contributions' text and the tallies' nodes: a step allocates a
    // dozen small pieces per event and frees them all together (one by one,
    // they were a tenth of the refresh).
    std::pmr::monotonic_buffer_resource arena;
    DailyDeltas daily{&arena};
    SessionDeltas session{&arena};
    ProjectDeltas project{&arena};
    ProviderDayDeltas providerDay{&arena};
    ModelDayDeltas modelDay{&arena};

    void add(const Contribution& c, std::int64_t sign) {
        if (marts[kDaily]) daily.add(c, sign);
        if (marts[kSession]) session.add(c, sign);
        if (marts[kProject]) project.add(c, sign);
        if (marts[kProviderDay]) providerDay.add(c, sign);
        if (marts[kModelDay]) modelDay.add(c, sign);
    }
    // `to`: where the step leaves these marts.
    Status flush(Connection& db, const Watermark& to) const {
        if (marts[kDaily])
            if (auto st = daily.flush(db); !st) return st;
        if (marts[kSession])
            if (auto st = session.flush(db, to); !st) return st;
        if (marts[kProject])
            if (auto st = project.flush(db, to); !st) return st;
        if (marts[kProviderDay])
            if (auto st = providerDay.flush(db); !st) return st;
        if (marts[kModelDay])
            if (auto st = modelDay.flush(db); !st) return st;
        return {};
    }
};

// ---------------------------------------------------------------------------
// Watermarks and the step.

static_assert(std::tuple_size_v<MartWatermarks> == kMartCount);

struct StepResult {
    std::int64_t absorbed = 0, applied = 0;
    std::int64_t read = 0;  // rows read: events absorbed and retractions consumed
    bool caughtUp = true;
    Watermark after;
};

// The reading half of a step for the marts in `deltas.marts`, all at
// watermark `wm`: steps 1 and 2 of the essay, folded into `deltas`.
Result<StepResult> readStep(Connection& db, StepDeltas& deltas, Watermark wm, std::int64_t budget) {
    StepResult r;
    r.after = wm;

    auto retractions = db.cached(kSelectRetractions);
    if (!retractions) return retractions.error();
    Statement& rs = **retractions;
    rs.bind(1, wm.retractionSeq).bind(2, budget + 1);  // one more: is there more?
    std::int64_t consumed = 0;
    bool retractionsDone = true;
    for (;;) {
        auto row = rs.step();
        if (!row) return row.error();
        if (!*row) break;
        if (consumed == budget) {
            retractionsDone = false;
            break;
        }
        ++consumed;
        ++r.read;
        r.after.retractionSeq = rs.columnInt(0);
        if (rs.columnInt(1) <= wm.eventId) {
            deltas.add(readContribution(rs, 2, deltas.arena), -1);
            ++r.applied;
        }
    }
    rs.reset();

    if (!retractionsDone) {
        r.caughtUp = false;
        return r;
    }
    const std::int64_t room = budget - consumed;
    auto events = db.cached(kSelectEvents);
    if (!events) return events.error();
    Statement& es = **events;
    es.bind(1, wm.eventId).bind(2, room + 1);
    for (;;) {
        auto row = es.step();
        if (!row) return row.error();
        if (!*row) break;
        if (r.absorbed == room) {
            r.caughtUp = false;
            break;
        }
        r.after.eventId = es.columnInt(0);
        deltas.add(readContribution(es, 1, deltas.arena), 1);
        ++r.absorbed;
        ++r.read;
    }
    es.reset();
    return r;
}

Result<Watermark> readWatermark(Connection& db, const char* mart) {
    Watermark wm;
    auto row = queryRow(
        db, kSelectWatermark, [&](Statement& s) { s.bind(1, mart); },
        [&](Statement& s) {
            wm.eventId = s.columnInt(0);
            wm.retractionSeq = s.columnInt(1);
        });
    if (!row) return row.error();
    return wm;
}

Result<MartWatermarks> readWatermarks(Connection& db) {
    MartWatermarks wms;
    for (size_t m = 0; m < kMartCount; ++m) {
        auto wm = readWatermark(db, kMartNames[m]);
        if (!wm) return wm.error();
        wms[m] = *wm;
    }
    return wms;
}

Status writeWatermark(Connection& db, const char* mart, const Watermark& wm,
                      const std::string& refreshedAt) {
    return runStatement(db, kWriteWatermark, [&](Statement& s) {
        s.bind(1, mart).bind(2, wm.eventId).bind(3, wm.retractionSeq).bind(4, refreshedAt);
    });
}

Status requireTransaction(Connection& db) {
    if (sqlite3_get_autocommit(db.handle()) != 0)
        return Error{"no_transaction", "the marts refresh needs an open write transaction"};
    return {};
}

// Whether anything lies above the lowest of `wms`: events or retractions
// that a step would read (a prepared step knew only its snapshot's).
Result<bool> moreAbove(Connection& db, const MartWatermarks& wms) {
    Watermark lowest = wms[0];
    for (const Watermark& wm : wms) {
        lowest.eventId = std::min(lowest.eventId, wm.eventId);
        lowest.retractionSeq = std::min(lowest.retractionSeq, wm.retractionSeq);
    }
    bool more = false;
    auto row = queryRow(
        db,
        "SELECT EXISTS (SELECT 1 FROM usage_events WHERE id > ?1) "
        "OR EXISTS (SELECT 1 FROM event_retractions WHERE seq > ?2)",
        [&](Statement& s) { s.bind(1, lowest.eventId).bind(2, lowest.retractionSeq); },
        [&](Statement& s) { more = s.columnInt(0) != 0; });
    if (!row) return row.error();
    return more;
}

}  // namespace

// Marts whose watermarks are equal share one pass over the rows (a group).
struct PreparedRefresh::Impl {
    struct Group {
        std::unique_ptr<StepDeltas> deltas;  // its arena: not movable
        StepResult result;
    };
    MartWatermarks from, to;
    std::vector<Group> groups;
    std::int64_t rows = 0;
    bool caughtUp = true;
};

PreparedRefresh::PreparedRefresh(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreparedRefresh::PreparedRefresh(PreparedRefresh&&) noexcept = default;
PreparedRefresh& PreparedRefresh::operator=(PreparedRefresh&&) noexcept = default;
PreparedRefresh::~PreparedRefresh() = default;
const MartWatermarks& PreparedRefresh::from() const { return impl_->from; }
const MartWatermarks& PreparedRefresh::to() const { return impl_->to; }
std::int64_t PreparedRefresh::rows() const { return impl_->rows; }
bool PreparedRefresh::caughtUp() const { return impl_->caughtUp; }

Result<PreparedRefresh> prepareRefresh(Connection& db, std::int64_t maxEvents,
                                       const std::optional<MartWatermarks>& from) {
    auto impl = std::make_unique<PreparedRefresh::Impl>();
    if (from) {
        impl->from = *from;
    } else {
        auto stored = readWatermarks(db);
        if (!stored) return stored.error();
        impl->from = *stored;
    }
    impl->to = impl->from;
    MartSet done{};
    for (size_t m = 0; m < kMartCount; ++m) {
        if (done[m]) continue;
        MartSet group{};
        for (size_t o = m; o < kMartCount; ++o) {
            if (!done[o] && impl->from[o] == impl->from[m]) group[o] = done[o] = true;
        }
        PreparedRefresh::Impl::Group& g = impl->groups.emplace_back();
        g.deltas = std::make_unique<StepDeltas>(group);
        g.result.after = impl->from[m];
    }
    PreparedRefresh step(std::move(impl));
    if (auto st = extendRefresh(db, step, maxEvents); !st) return st.error();
    return step;
}

Status extendRefresh(Connection& db, PreparedRefresh& step, std::int64_t maxEvents) {
    if (maxEvents < 1)
        return Error{"invalid_argument",
                     "maxEvents must be at least 1, got " + std::to_string(maxEvents)};
    // One more row than the budget is read to learn whether more remain.
    maxEvents = std::min(maxEvents, std::numeric_limits<std::int64_t>::max() - 1);
    PreparedRefresh::Impl& p = step.impl();
    p.rows = 0;
    p.caughtUp = true;
    for (auto& g : p.groups) {
        StepResult& total = g.result;
        const std::int64_t room = maxEvents - total.read;
        if (room > 0) {
            // What a second step from where this one ends would read: its
            // deltas add to this one's.
            auto r = readStep(db, *g.deltas, total.after, room);
            if (!r) return r.error();
            total.absorbed += r->absorbed;
            total.applied += r->applied;
            total.read += r->read;
            total.after = r->after;
            total.caughtUp = r->caughtUp;
        }
        for (size_t m = 0; m < kMartCount; ++m) {
            if (g.deltas->marts[m]) p.to[m] = total.after;
        }
        p.rows = std::max(p.rows, total.read);
        p.caughtUp = p.caughtUp && total.caughtUp;
    }
    return {};
}

Result<std::optional<RefreshStats>> applyPreparedRefreshInTransaction(Connection& db,
                                                                      const PreparedRefresh& step,
                                                                      UnixMicros now) {
    if (auto st = requireTransaction(db); !st) return st.error();
    const PreparedRefresh::Impl& p = step.impl();
    auto stored = readWatermarks(db);
    if (!stored) return stored.error();
    if (*stored != p.from) return std::optional<RefreshStats>();

    RefreshStats stats;
    for (const auto& group : p.groups) {
        if (auto st = group.deltas->flush(db, group.result.after); !st) return st.error();
        stats.eventsAbsorbed = std::max(stats.eventsAbsorbed, group.result.absorbed);
        stats.retractionsApplied = std::max(stats.retractionsApplied, group.result.applied);
    }

    const std::string refreshedAt = formatStatusTime(now);
    std::int64_t minEvent = std::numeric_limits<std::int64_t>::max();
    std::int64_t minSeq = std::numeric_limits<std::int64_t>::max();
    for (size_t m = 0; m < kMartCount; ++m) {
        if (auto st = writeWatermark(db, kMartNames[m], p.to[m], refreshedAt); !st)
            return st.error();
        minEvent = std::min(minEvent, p.to[m].eventId);
        minSeq = std::min(minSeq, p.to[m].retractionSeq);
    }
    // Every mart has consumed these: nothing will read them again.
    if (auto st = runStatement(db, kPruneRetractions, [&](Statement& s) { s.bind(1, minSeq); });
        !st)
        return st.error();
    stats.watermark = minEvent;
    if (p.caughtUp) {
        auto more = moreAbove(db, p.to);
        if (!more) return more.error();
        stats.caughtUp = !*more;
    } else {
        stats.caughtUp = false;
    }
    return std::optional<RefreshStats>(stats);
}

Result<RefreshStats> refreshMartsInTransaction(Connection& db, UnixMicros now,
                                               std::int64_t maxEvents) {
    if (auto st = requireTransaction(db); !st) return st.error();
    auto prepared = prepareRefresh(db, maxEvents);
    if (!prepared) return prepared.error();
    auto applied = applyPreparedRefreshInTransaction(db, *prepared, now);
    if (!applied) return applied.error();
    if (!*applied) return Error{"internal", "the marts' watermarks moved within one transaction"};
    return **applied;
}

Result<RefreshStats> refreshMarts(Connection& db, UnixMicros now, std::int64_t maxEvents) {
    auto tx = Transaction::begin(db);
    if (!tx) return tx.error();
    auto stats = refreshMartsInTransaction(db, now, maxEvents);
    if (!stats) return stats.error();  // the transaction rolls back
    if (auto st = tx->commit(); !st) return st.error();
    return stats;
}

Status rebuildMartsInTransaction(Connection& db, UnixMicros now) {
    if (auto st = requireTransaction(db); !st) return st;
    for (const char* statement : kRebuildDeletes) {
        if (auto st = db.exec(statement); !st) return st;
    }
    // Retractions written so far concern rows the empty marts never held.
    auto latestSeq = db.queryInt("SELECT COALESCE(MAX(seq), 0) FROM event_retractions");
    if (!latestSeq) return latestSeq.error();
    const std::string refreshedAt = formatStatusTime(now);
    for (const char* mart : kMartNames) {
        auto wm = readWatermark(db, mart);
        if (!wm) return wm.error();
        const Watermark start{0, std::max(*latestSeq, wm->retractionSeq)};
        if (auto st = writeWatermark(db, mart, start, refreshedAt); !st) return st;
    }
    for (;;) {
        auto stats = refreshMartsInTransaction(db, now, kRebuildStepRows);
        if (!stats) return stats.error();
        if (stats->caughtUp) return {};
    }
}

Status rebuildMarts(Connection& db, UnixMicros now) {
    auto tx = Transaction::begin(db);
    if (!tx) return tx.error();
    if (auto st = rebuildMartsInTransaction(db, now); !st) return st;
    return tx->commit();
}

}  // namespace etld::store
