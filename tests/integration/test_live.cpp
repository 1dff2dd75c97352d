// The live daemon: the watcher feeding ingest, health transitions with the
// marts held back and released through test hooks, backfill jobs and their
// error window, subscriptions, restarts that read nothing, and an
// unprivileged daemon meeting a directory it may not read. No test sleeps:
// it waits for a subscription update, a sync, or moves the daemon's clock.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "harness.h"

using namespace etld::it;

namespace {

std::string claudeLine(int n, int in = 10, int out = 5, const std::string& model = "claude-sonnet-4-20250514") {
    return R"({"type":"assistant","sessionId":"s1","requestId":"r)" + std::to_string(n) +
           R"(","timestamp":"2026-02-01T10:00:00.000Z","version":"1.0.0","cwd":"/p","message":{"id":"m)" +
           std::to_string(n) + R"(","model":")" + model + R"(","usage":{"input_tokens":)" +
           std::to_string(in) + R"(,"output_tokens":)" + std::to_string(out) + "}}}\n";
}

void append(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << bytes;
}

// A daemon whose three roots live in the temporary directory.
struct Live {
    TempDir dir;
    std::string claude = dir / "home/claude";
    std::string projects = claude + "/projects/-p";
    std::string file = projects + "/a.jsonl";
    DaemonProcess daemon;

    explicit Live(bool watch = true, std::vector<std::string> extraArgs = {})
        : daemon(dir, config(watch, std::move(extraArgs))) {
        std::filesystem::create_directories(projects);
        daemon.startAndWaitReady();
    }
    DaemonConfig config(bool watch, std::vector<std::string> extraArgs) {
        DaemonConfig c;
        c.noWatch = !watch;
        c.extraArgs = std::move(extraArgs);
        c.env = {{"CLAUDE_CONFIG_DIR", dir / "home/claude"},
                 {"CODEX_HOME", dir / "home/codex"},
                 {"GEMINI_DATA_DIR", dir / "home/gemini"}};
        return c;
    }
    rapidjson::Document call(std::string_view method, std::string_view params = {}) {
        auto c = RawClient::connect(daemon.socket());
        return c.call(method, params);
    }
    rapidjson::Document sync() {
        auto r = call("sync");
        REQUIRE_MESSAGE(errorCode(r).empty(), errorCode(r));
        return r;
    }
    std::string health() { return at(call("status"), "result.health").GetString(); }
    std::int64_t lag() { return at(call("status"), "result.lag_events").GetInt64(); }
};

}  // namespace

TEST_CASE("an appended line reaches a subscriber without a sync") {
    Live live;
    auto sub = RawClient::connect(live.daemon.socket());
    auto first = sub.call("subscribe", {}, "\"sub\"");
    CHECK(at(first, "result.events.total").GetInt64() == 0);
    append(live.file, claudeLine(1));
    // Updates arrive as the watcher, ingest and marts move; wait for the count.
    for (;;) {
        auto update = parseJson(sub.expectLine());
        CHECK(std::string(at(update, "event").GetString()) == "status");
        CHECK(std::string(at(update, "id").GetString()) == "sub");
        if (at(update, "result.events.total").GetInt64() == 1 &&
            at(update, "result.lag_events").GetInt64() == 0)
            break;
    }
    live.daemon.stop();
}

TEST_CASE("a root created after start-up is picked up without a restart") {
    Live live;
    const std::string codex = live.dir / "home/codex/sessions/2026/02/01";
    std::filesystem::create_directories(codex);
    append(codex + "/rollout-1.jsonl",
           R"({"timestamp":"2026-02-01T00:00:00.000Z","type":"session_meta","payload":{"id":"c1","cwd":"/w"}})" "\n"
           R"({"timestamp":"2026-02-01T00:00:01.000Z","type":"turn_context","payload":{"model":"gpt-5"}})" "\n"
           R"({"timestamp":"2026-02-01T00:00:02.000Z","type":"event_msg","payload":{"type":"token_count","info":{"last_token_usage":{"input_tokens":100,"cached_input_tokens":20,"output_tokens":10,"reasoning_output_tokens":0,"total_tokens":110}}}})" "\n");
    auto r = live.sync();
    CHECK(at(r, "result.events.by_provider.codex").GetInt64() == 1);
    CHECK(std::string(at(r, "result.sources.codex.watching").GetString()) == "events");
    live.daemon.stop();
}

TEST_CASE("health: stale above 100 unabsorbed events, syncing at 100 with a recent step, then live") {
    Live live;
    live.call("test.hold_refresh", R"({"hold":true})");
    std::string lines;
    for (int i = 0; i < 150; ++i) lines += claudeLine(i);
    append(live.file, lines);
    auto r = live.sync();
    CHECK(at(r, "result.events.total").GetInt64() == 150);
    CHECK(at(r, "result.lag_events").GetInt64() == 150);
    CHECK(std::string(at(r, "result.health").GetString()) == "stale");

    auto step = live.call("test.refresh_step", R"({"max_events":49})");
    CHECK(at(step, "result.lag_events").GetInt64() == 101);
    CHECK(std::string(at(step, "result.health").GetString()) == "stale");
    step = live.call("test.refresh_step", R"({"max_events":1})");
    CHECK(at(step, "result.lag_events").GetInt64() == 100);
    CHECK(std::string(at(step, "result.health").GetString()) == "syncing");
    // Ten seconds after the last step it still counts as recent; eleven not.
    live.call("test.advance_clock", R"({"ms":10000})");
    CHECK(live.health() == "syncing");
    live.call("test.advance_clock", R"({"ms":1000})");
    CHECK(live.health() == "live");  // lag 1..100 with no recent refresh
    step = live.call("test.refresh_step", R"({"max_events":1000})");
    CHECK(at(step, "result.lag_events").GetInt64() == 0);
    CHECK(std::string(at(step, "result.health").GetString()) == "live");
    live.daemon.stop();
}

TEST_CASE("health: error above 100 unabsorbed events when the watcher is stopped") {
    Live live(/*watch=*/false);
    live.call("test.hold_refresh", R"({"hold":true})");
    std::string lines;
    for (int i = 0; i < 101; ++i) lines += claudeLine(i);
    append(live.file, lines);
    auto r = live.sync();
    CHECK(at(r, "result.watcher.running").IsFalse());
    CHECK(at(r, "result.lag_events").GetInt64() == 101);
    CHECK(std::string(at(r, "result.health").GetString()) == "error");
    live.daemon.stop();
}

TEST_CASE("a failed backfill shows error for 30 s, then the health is back") {
    Live live;
    append(live.file, claudeLine(1));
    live.sync();
    live.call("test.fail_backfill");
    auto started = live.call("backfill", R"({"force":false})");
    REQUIRE(errorCode(started).empty());
    const std::string jobId = at(started, "result.job_id").GetString();
    CHECK(jobId.size() == 32);
    auto r = live.sync();  // the job's cycle has run once the barrier passed
    CHECK(at(r, "result.current_job").IsNull());
    CHECK(std::string(at(r, "result.last_job.status").GetString()) == "failed");
    CHECK(std::string(at(r, "result.last_job.job_id").GetString()) == jobId);
    CHECK(std::string(at(r, "result.health").GetString()) == "error");
    live.call("test.advance_clock", R"({"ms":29000})");
    CHECK(live.health() == "error");
    live.call("test.advance_clock", R"({"ms":1000})");
    CHECK(live.health() == "live");
    CHECK(at(live.call("status"), "result.last_job").IsNull());
    // The store path says the same.
    live.daemon.stop();
    auto offline = runProgram({etlctlPath(), "--db", live.daemon.db(), "--socket", live.daemon.socket(),
                               "status", "--format", "json"}, live.dir.path());
    CHECK(offline.exitCode == 0);
}

TEST_CASE("backfill: busy while one runs, invalid params, and a forced one re-prices from a new table") {
    Live live;
    append(live.file, claudeLine(1, 1000000, 1000));
    live.sync();
    const double before = at(live.call("status"), "result.events.total").GetInt64();
    CHECK(before == 1);
    CHECK(errorCode(live.call("backfill", R"({"force":"yes"})")) == "invalid_params");
    live.daemon.stop();

    // A price file that makes the model ten times dearer, and the transcript gone.
    const std::string prices = live.dir / "prices.json";
    std::ofstream(prices) << R"({"claude-sonnet-4-20250514":{"input_cost_per_token":3e-05,)"
                             R"("output_cost_per_token":0.00015,"litellm_provider":"anthropic"}})";
    std::remove(live.file.c_str());
    DaemonConfig c = live.config(true, {"--pricing", prices});
    DaemonProcess again(live.dir, c);
    again.startAndWaitReady();
    auto client = RawClient::connect(again.socket());
    auto started = client.call("backfill", R"({"force":true})");
    REQUIRE(errorCode(started).empty());
    auto busy = client.call("backfill", R"({"force":true})");
    if (!errorCode(busy).empty()) {  // unless the tiny job already ended
        CHECK(errorCode(busy) == "busy");
        CHECK(std::string(at(busy, "error.data.job_id").GetString()) ==
              std::string(at(started, "result.job_id").GetString()));
    }
    // Follow the job to its end through a subscription (no polling, no sleep).
    const std::string jobId = at(started, "result.job_id").GetString();
    auto sub = RawClient::connect(again.socket());
    auto doc = sub.call("subscribe");
    for (const rapidjson::Value* result = &at(doc, "result");;) {
        const auto& last = at(*result, "last_job");
        if (at(*result, "current_job").IsNull() && last.IsObject() &&
            std::string(at(last, "job_id").GetString()) == jobId) {
            CHECK(std::string(at(last, "status").GetString()) == "complete");
            break;
        }
        doc = parseJson(sub.expectLine());
        result = &at(doc, "result");
    }
    auto r = client.call("sync");
    CHECK(at(r, "result.events.total").GetInt64() == 1);  // history stays
    again.stop();

    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(again.db().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT cost_usd, (SELECT cost_usd FROM daily_mart) FROM usage_events", -1, &st, nullptr);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_double(st, 0) == doctest::Approx(1000000 * 3e-05 + 1000 * 0.00015));
    CHECK(sqlite3_column_double(st, 1) == doctest::Approx(sqlite3_column_double(st, 0)));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

TEST_CASE("a restart on an ingested corpus reads no file contents") {
    Live live;
    for (int i = 0; i < 50; ++i) append(live.projects + "/f" + std::to_string(i) + ".jsonl", claudeLine(i));
    live.sync();
    live.daemon.stop();
    live.daemon.startAndWaitReady();
    auto r = live.sync();
    CHECK(at(r, "result.events.total").GetInt64() == 50);
    CHECK(at(r, "result.sources.claude.files").GetInt64() == 50);
    CHECK(at(r, "result.sources.claude.bytes_read_since_start").GetInt64() == 0);
    live.daemon.stop();
}

TEST_CASE("etld --backfill runs the job in the foreground, and refuses while a daemon runs") {
    Live live;
    append(live.file, claudeLine(1));
    auto refused = runEtld(live.dir, {"--db", live.daemon.db(), "--backfill"});
    CHECK(refused.exitCode != 0);
    CHECK(refused.err.find("pid " + std::to_string(live.daemon.pid())) != std::string::npos);
    live.daemon.stop();
    auto done = runEtld(live.dir, {"--db", live.daemon.db(), "--backfill", "--force"},
                        RunOptions{live.config(true, {}).env, std::nullopt, kDeadlineMs});
    CHECK(done.exitCode == 0);
    auto offline = runProgram({etlctlPath(), "--db", live.daemon.db(), "--socket", live.daemon.socket(),
                               "status", "--format", "json"}, live.dir.path());
    auto doc = parseJson(offline.out);
    CHECK(at(doc, "events.total").GetInt64() == 1);
    CHECK(std::string(at(doc, "last_job.status").GetString()) == "complete");
    CHECK(at(doc, "last_job.force").IsTrue());
}

TEST_CASE("an unprivileged daemon skips a directory it may not read, says so, and goes on") {
    if (!canDropPrivileges()) return;
    TempDir dir;
    const std::string home = dir / "home";
    const std::string ok = home + "/claude/projects/-ok";
    const std::string closed = home + "/claude/projects/-closed";
    std::filesystem::create_directories(ok);
    std::filesystem::create_directories(closed);
    append(ok + "/a.jsonl", claudeLine(1));
    append(closed + "/b.jsonl", claudeLine(2));
    const std::string state = dir / "state";
    std::filesystem::create_directories(state);
    REQUIRE(::chown(state.c_str(), kNobodyUid, kNobodyGid) == 0);
    REQUIRE(::chmod(closed.c_str(), 0) == 0);
    ::chmod(dir.path().c_str(), 0755);
    RunOptions as = asUser(RunAs{});
    as.env = {{"CLAUDE_CONFIG_DIR", home + "/claude"}, {"CODEX_HOME", home + "/codex"},
              {"GEMINI_DATA_DIR", home + "/gemini"}};
    auto run = runProgram({etldPath(), "--db", state + "/etl.db", "--backfill"}, dir.path(), as);
    CHECK_MESSAGE(run.exitCode == 0, run.describe());
    CHECK(run.err.find("-closed") != std::string::npos);  // logged once
    auto offline = runProgram({etlctlPath(), "--db", state + "/etl.db", "--socket", dir / "none.sock",
                               "status", "--offline", "--format", "json"}, dir.path());
    auto doc = parseJson(offline.out);
    CHECK(at(doc, "events.total").GetInt64() == 1);
    CHECK(std::string(at(doc, "sources.claude.last_error").GetString()).find("-closed") != std::string::npos);
    ::chmod(closed.c_str(), 0755);
}
