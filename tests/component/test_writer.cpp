// The writer thread (daemon/writer.h) on an in-process loop: tasks run one
// at a time, in order, on a thread that is not the loop's; completions come
// back on the loop thread; stop() runs what is queued and delivers every
// completion; healthy() turns false while a task blocks past the limit.
//
// libuv-style: callbacks bump counters, the test asserts after uv_run
// returns, and every test ends with uv_loop_close() == 0. A blocked task is
// released through a promise, never by sleeping.
#include <doctest/doctest.h>
#include <uv.h>

#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "store/store.h"
#include "support.h"
#include "writer.h"

using namespace etld;
using namespace etld::daemon;
using etld::test::TempDir;

namespace {

store::Connection memoryDb() {
    auto db = store::Connection::open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    REQUIRE(db);
    return std::move(db).value();
}

// Limits for healthy(): none can pass while a task waits on the test.
constexpr std::int64_t kNoTimeMicros = 0;
constexpr std::int64_t kHourMicros = 3600LL * 1000 * 1000;

}  // namespace

TEST_CASE("tasks run in order on the writer thread; completions run on the loop thread") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    const auto loopThread = std::this_thread::get_id();
    constexpr int kTasks = 50;
    std::vector<int> ran;        // written by the writer thread only
    std::vector<int> completed;  // written by the loop thread only
    int onWriterThread = 0, completionsOnLoopThread = 0;
    {
        Writer writer(&loop, memoryDb());
        for (int i = 0; i < kTasks; ++i) {
            writer.post(
                [&, i](store::Connection&) -> Status {
                    ran.push_back(i);
                    if (std::this_thread::get_id() != loopThread) ++onWriterThread;
                    return {};
                },
                [&, i](const Status& st) {
                    CHECK(st.ok());
                    completed.push_back(i);
                    if (std::this_thread::get_id() == loopThread) ++completionsOnLoopThread;
                    if (completed.size() == kTasks) writer.stop();  // lets uv_run return
                });
        }
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
        CHECK(writer.completedTasks() == kTasks);
    }
    std::vector<int> expected(kTasks);
    for (int i = 0; i < kTasks; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(ran == expected);
    CHECK(completed == expected);
    CHECK(onWriterThread == kTasks);
    CHECK(completionsOnLoopThread == kTasks);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a task's error and a task's exception reach its completion as errors") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    std::vector<std::string> codes;
    {
        Writer writer(&loop, memoryDb());
        writer.post([](store::Connection& db) { return db.exec("NOT SQL"); },
                    [&](const Status& st) { codes.push_back(st ? "ok" : st.error().code); });
        writer.post([](store::Connection&) -> Status { throw std::runtime_error("boom"); },
                    [&](const Status& st) { codes.push_back(st ? "ok" : st.error().code); });
        writer.post([](store::Connection&) -> Status { return {}; },
                    [&](const Status& st) {
                        codes.push_back(st ? "ok" : st.error().code);
                        writer.stop();
                    });
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    }
    REQUIRE(codes.size() == 3);
    CHECK(codes[0] == "store_error");
    CHECK(codes[1] == "internal");
    CHECK(codes[2] == "ok");  // the thread survived the exception
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("stop() runs every queued task and delivers every completion before it returns") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    constexpr int kTasks = 20;
    int ran = 0, completed = 0;
    {
        Writer writer(&loop, memoryDb());
        for (int i = 0; i < kTasks; ++i)
            writer.post(
                [&](store::Connection&) -> Status {
                    ++ran;
                    return {};
                },
                [&](const Status&) { ++completed; });
        writer.stop();  // before the loop ever ran
        CHECK(ran == kTasks);
        CHECK(completed == kTasks);
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);  // only the async handle's close
        CHECK(completed == kTasks);                 // nothing delivered twice
    }
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("the writer's tasks commit to the store it was given") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    auto db = store::openWriter(path);
    REQUIRE(db);
    std::int64_t lastId = 0;
    {
        Writer writer(&loop, std::move(db).value());
        writer.post(
            [&](store::Connection& c) -> Status {
                auto tx = store::Transaction::begin(c);
                if (!tx) return tx.error();
                for (int i = 0; i < 3; ++i) {
                    store::NewEvent e;
                    e.eventKey = "w" + std::to_string(i);
                    auto id = store::insertEvent(c, e);
                    if (!id) return id.error();
                    lastId = *id;
                }
                return tx->commit();
            },
            [&](const Status& st) {
                CHECK(st.ok());
                writer.stop();
            });
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    }
    CHECK(lastId == 3);
    auto reader = store::openReader(path);
    REQUIRE(reader);
    CHECK(*reader->queryInt("SELECT COUNT(*) FROM usage_events") == 3);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("the writer's commits leave WAL checkpoints to the checkpointer thread") {
    TempDir dir;
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    auto db = store::openWriter(dir.file("etl.db"));
    REQUIRE(db);
    REQUIRE(*db->queryInt("PRAGMA wal_autocheckpoint") > 0);  // SQLite's own, as opened
    std::int64_t autoPagesInTask = -1;
    {
        Writer writer(&loop, std::move(db).value());
        writer.post(
            [&](store::Connection& c) -> Status {
                // 0: SQLite's automatic checkpoint is not the WAL hook any more.
                auto pages = c.queryInt("PRAGMA wal_autocheckpoint");
                if (!pages) return pages.error();
                autoPagesInTask = *pages;
                return {};
            },
            [&](const Status& st) {
                CHECK(st.ok());
                writer.stop();
            });
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    }
    CHECK(autoPagesInTask == 0);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("healthy() is false while a task blocks longer than the limit, true once idle") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    std::promise<void> started, release;
    std::shared_future<void> released = release.get_future().share();
    bool healthyWhileBlocked = true, healthyWithinLimit = false, healthyIdle = false;
    int completed = 0;
    {
        Writer writer(&loop, memoryDb());
        CHECK(writer.healthy(kNoTimeMicros));  // idle: healthy whatever the limit
        writer.post(
            [&](store::Connection&) -> Status {
                started.set_value();
                released.wait();
                return {};
            },
            [&](const Status&) {
                ++completed;
                healthyIdle = writer.healthy(kNoTimeMicros);
                writer.stop();
            });
        started.get_future().wait();  // the task is running now
        healthyWhileBlocked = writer.healthy(kNoTimeMicros);
        healthyWithinLimit = writer.healthy(kHourMicros);
        release.set_value();
        CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    }
    CHECK_FALSE(healthyWhileBlocked);
    CHECK(healthyWithinLimit);
    CHECK(healthyIdle);
    CHECK(completed == 1);
    CHECK(uv_loop_close(&loop) == 0);
}
