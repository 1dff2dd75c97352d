// The marts' next step read ahead (daemon/mart_prefetcher.h), on a real
// store: what it hands the writer is what the writer's own steps would have
// written, a step grows with what is committed until it is full, the next
// one is read on from where the last one taken ends, restart() drops what
// was read before it, and a read that fails leaves the writer to read for
// itself. The thread is awaited through settleForTest(), never by sleeping.
#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>

#include "mart_prefetcher.h"
#include "store/marts.h"
#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::daemon;
using etld::test::TempDir;

namespace {

constexpr UnixMicros kNow = 1778055851123456;

struct Store {
    TempDir dir;
    std::string path = dir.file("etl.db");
    store::Connection db = [&] {
        auto opened = store::openWriter(path);
        REQUIRE(opened);
        return std::move(opened).value();
    }();
    std::int64_t projectId = 0;
    int keys = 0;

    Store() {
        auto id = store::ensureProject(db, "claude", "-p", std::nullopt, 0, 0);
        REQUIRE(id);
        projectId = *id;
    }

    // `n` events in one transaction, over three sessions and two days.
    void commitEvents(int n) {
        auto tx = store::Transaction::begin(db);
        REQUIRE(tx);
        for (int i = 0; i < n; ++i, ++keys) {
            auto s = db.cached(
                "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, role, "
                "input_tokens, cost_usd, event_key) VALUES ('claude', ?1, ?2, ?3, substr(?3, 1, 10), "
                "'m', 'assistant', ?4, ?5, ?6)");
            REQUIRE(s);
            (*s)->bind(1, projectId).bind(2, "s" + std::to_string(keys % 3));
            (*s)->bind(3, "2026-01-0" + std::to_string(1 + keys % 2) + "T00:00:" +
                              std::to_string(10 + keys % 50) + ".000Z");
            (*s)->bind(4, std::int64_t{100 + keys}).bind(5, 0.01 * keys).bind(6, "k" + std::to_string(keys));
            REQUIRE((*s)->run());
        }
        REQUIRE(tx->commit());
    }

    // The writer's side of Daemon::refreshMartsStep, with a step taken.
    std::optional<store::RefreshStats> apply(const store::PreparedRefresh& step) {
        auto tx = store::Transaction::begin(db);
        REQUIRE(tx);
        auto r = store::applyPreparedRefreshInTransaction(db, step, kNow);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        REQUIRE(tx->commit());
        return *r;
    }

    std::int64_t query(const std::string& sql) {
        auto v = db.queryInt(sql);
        REQUIRE_MESSAGE(v, sql);
        return *v;
    }
    std::int64_t watermark() { return query("SELECT MIN(last_event_id) FROM mart_watermark"); }
    std::int64_t sessionMessages() { return query("SELECT COALESCE(SUM(message_count), 0) FROM session_mart"); }
    std::int64_t dailyInput() { return query("SELECT COALESCE(SUM(input_tokens), 0) FROM daily_mart"); }
};

std::unique_ptr<MartPrefetcher> startOn(const std::string& path, std::int64_t stepEvents) {
    auto p = MartPrefetcher::start(path, stepEvents);
    REQUIRE_MESSAGE(p, (p ? "" : p.error().message));
    return std::move(p).value();
}

}  // namespace

TEST_CASE("nothing committed, nothing to take; committed events come as one step") {
    Store s;
    auto prefetcher = startOn(s.path, 1000);
    prefetcher->settleForTest();
    CHECK_FALSE(prefetcher->take());

    s.commitEvents(7);
    prefetcher->committed();
    prefetcher->settleForTest();
    s.commitEvents(5);  // after the read: the step grows once told
    prefetcher->committed();
    prefetcher->settleForTest();
    auto step = prefetcher->take();
    REQUIRE(step);
    CHECK(step->rows() == 12);
    CHECK(step->caughtUp());
    const auto applied = s.apply(*step);
    REQUIRE(applied);
    CHECK(applied->eventsAbsorbed == 12);
    CHECK(applied->caughtUp);
    CHECK(s.sessionMessages() == 12);
    CHECK(s.dailyInput() == s.query("SELECT SUM(input_tokens) FROM usage_events"));
    CHECK(prefetcher->counts().taken == 1);
    prefetcher->settleForTest();
    CHECK_FALSE(prefetcher->take());  // nothing new since
}

TEST_CASE("a full step waits; the next is read on from where the one taken ends") {
    Store s;
    auto prefetcher = startOn(s.path, 10);
    s.commitEvents(25);
    prefetcher->committed();
    std::int64_t absorbed = 0;
    for (const std::int64_t expected : {10, 10, 5}) {
        prefetcher->settleForTest();
        auto step = prefetcher->take();
        REQUIRE(step);
        CHECK(step->rows() == expected);
        // Read before the previous step was applied: it starts where that one ends.
        const auto applied = s.apply(*step);
        REQUIRE(applied);  // not stale
        absorbed += applied->eventsAbsorbed;
        CHECK(applied->caughtUp == (expected == 5));
    }
    CHECK(absorbed == 25);
    CHECK(s.sessionMessages() == 25);
    prefetcher->settleForTest();
    CHECK_FALSE(prefetcher->take());
}

TEST_CASE("restart drops what was read; a step the marts moved past is stale") {
    Store s;
    auto prefetcher = startOn(s.path, 1000);
    s.commitEvents(6);
    prefetcher->committed();
    prefetcher->settleForTest();
    prefetcher->restart();
    CHECK_FALSE(prefetcher->take());

    // Read ahead, then the writer runs a step of its own first.
    prefetcher->committed();
    prefetcher->settleForTest();
    auto behind = prefetcher->take();
    REQUIRE(behind);
    REQUIRE(store::refreshMarts(s.db, kNow, 1000));
    const std::int64_t watermark = s.watermark();
    CHECK_FALSE(s.apply(*behind));  // writes nothing
    CHECK(s.watermark() == watermark);
    CHECK(s.sessionMessages() == 6);

    // After restart() the next step starts from the store's watermarks.
    prefetcher->restart();
    s.commitEvents(4);
    prefetcher->committed();
    prefetcher->settleForTest();
    auto next = prefetcher->take();
    REQUIRE(next);
    CHECK(next->rows() == 4);
    REQUIRE(s.apply(*next));
    CHECK(s.sessionMessages() == 10);
}

TEST_CASE("a read that fails is counted and leaves the step to the writer") {
    Store s;
    auto prefetcher = startOn(s.path, 1000);
    // The prefetcher's own reads fail from here: its view lacks a table.
    REQUIRE(s.db.exec("ALTER TABLE mart_watermark RENAME TO mart_watermark_gone"));
    s.commitEvents(3);
    prefetcher->committed();
    prefetcher->settleForTest();
    CHECK(prefetcher->counts().failed == 1);
    CHECK_FALSE(prefetcher->take());
    REQUIRE(s.db.exec("ALTER TABLE mart_watermark_gone RENAME TO mart_watermark"));
    prefetcher->committed();  // and it recovers
    prefetcher->settleForTest();
    auto step = prefetcher->take();
    REQUIRE(step);
    CHECK(step->rows() == 3);
    CHECK(prefetcher->counts().failed == 1);
}
