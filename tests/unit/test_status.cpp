// The status assembler and its health rules (shared/spec/status.md).
//
// Time is explicit everywhere: a ManualClock stands at kNow and each test
// moves it or places events relative to it; nothing sleeps. Every health rule
// is driven on both sides of its boundary, one microsecond apart where the
// boundary is a time.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "status/status.h"

using namespace etld;
using namespace etld::status;

namespace {

// 2026-05-06T08:24:11.123456+00:00
constexpr UnixMicros kNow = 1778055851123456;
constexpr UnixMicros kSec = kMicrosPerSecond;

std::vector<std::string> keysOf(const rapidjson::Value& obj) {
    std::vector<std::string> keys;
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it)
        keys.emplace_back(it->name.GetString(), it->name.GetStringLength());
    return keys;
}

std::string strOf(const rapidjson::Value& v) {
    return {v.GetString(), v.GetStringLength()};
}

// A daemon answering, watcher running, `lag` events behind (max_id 1000), no
// refresh observed.
StatusInput daemonWithLag(std::int64_t lag) {
    StatusInput in;
    in.origin = Origin::Daemon;
    in.watcherRunning = true;
    in.eventsTotal = 1000;
    in.maxEventId = 1000;
    for (MartState& m : in.marts) m.watermark = 1000 - lag;
    return in;
}

Job failedJob(UnixMicros completedAt) {
    Job job;
    job.jobId = "0123456789abcdef0123456789abcdef";
    job.startedAt = completedAt - 60 * kSec;
    job.status = "failed";
    job.completedAt = completedAt;
    job.error = "interrupted";
    return job;
}

std::string health(const StatusInput& in, UnixMicros now) {
    return std::string(healthName(computeHealth(in, now)));
}

}  // namespace

// ---- shape -----------------------------------------------------------------

TEST_CASE("an empty input yields every key, the five marts zero-filled, health live") {
    const ManualClock clock(kNow);
    const rapidjson::Document doc = assembleStatus(StatusInput{}, clock.now());

    REQUIRE(doc.IsObject());
    CHECK(keysOf(doc) == std::vector<std::string>{"watcher", "marts", "events", "lag_seconds",
                                                  "health", "current_job", "last_job", "source",
                                                  "lag_events", "daemon", "sources", "fault",
                                                  "schema_version", "as_of", "store_path"});

    const auto& w = doc["watcher"];
    CHECK(keysOf(w) == std::vector<std::string>{"enabled", "running", "last_refresh_ts",
                                                "seconds_since_refresh", "events_in_last_cycle",
                                                "lock_held_by"});
    CHECK(w["enabled"].IsTrue());
    CHECK(strOf(w["running"]) == "unknown");
    CHECK(w["last_refresh_ts"].IsNull());
    CHECK(w["seconds_since_refresh"].IsNull());
    CHECK(w["events_in_last_cycle"].IsNull());
    CHECK(w["lock_held_by"].IsNull());

    const auto& marts = doc["marts"];
    CHECK(keysOf(marts) ==
          std::vector<std::string>{"daily", "session", "project", "provider_day", "model_day"});
    for (auto it = marts.MemberBegin(); it != marts.MemberEnd(); ++it) {
        CHECK(keysOf(it->value) ==
              std::vector<std::string>{"watermark", "row_count", "last_refresh_ts"});
        CHECK(it->value["watermark"].GetInt64() == 0);
        CHECK(it->value["row_count"].GetInt64() == 0);
        CHECK(it->value["last_refresh_ts"].IsNull());
    }

    const auto& events = doc["events"];
    CHECK(keysOf(events) ==
          std::vector<std::string>{"total", "max_id", "by_provider", "by_cost_source"});
    CHECK(events["total"].GetInt64() == 0);
    CHECK(events["max_id"].GetInt64() == 0);
    CHECK(events["by_provider"].IsObject());
    CHECK(events["by_provider"].MemberCount() == 0);
    CHECK(events["by_cost_source"].MemberCount() == 0);

    CHECK(doc["lag_seconds"].GetInt64() == 0);
    CHECK(strOf(doc["health"]) == "live");
    CHECK(doc["current_job"].IsNull());
    CHECK(doc["last_job"].IsNull());
    CHECK(strOf(doc["source"]) == "database");
    CHECK(doc["lag_events"].GetInt64() == 0);
    CHECK(doc["daemon"].IsNull());
    CHECK(doc["sources"].IsObject());
    CHECK(doc["sources"].MemberCount() == 0);
    CHECK(doc["fault"].IsNull());
    CHECK(doc["schema_version"].GetInt64() == 0);
    CHECK(doc["as_of"].IsNull());
    CHECK(strOf(doc["store_path"]).empty());
}

TEST_CASE("a full daemon document keeps every nested object in the socket's key order") {
    StatusInput in = daemonWithLag(0);
    in.lastRefresh = kNow - 3 * kSec;
    in.eventsInLastCycle = 12;
    in.lockHeldBy = 4242;
    Job cur;
    cur.jobId = "ffffffffffffffffffffffffffffffff";
    cur.startedAt = kNow - 5 * kSec;
    cur.status = "running";
    cur.progress.etaSeconds = 7;
    in.currentJob = cur;
    in.lastJob = failedJob(kNow - kSec);
    in.daemon = DaemonInfo{4242, "0.1.0", kNow - 3600 * kSec};
    in.sources.push_back(SourceState{
        "claude", {"/home/u/.claude/projects"}, "events", 3, 100, 0, 100, 0, std::nullopt});
    in.fault = Fault{"store_full", "disk full", kNow - kSec};
    in.schemaVersion = 3;
    in.storePath = "/var/lib/etld/etld.sqlite3";

    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(keysOf(doc["current_job"]) ==
          std::vector<std::string>{"job_id", "started_at", "force", "status", "bytes_done",
                                   "bytes_total", "events_done", "bytes_per_second",
                                   "eta_seconds"});
    CHECK(keysOf(doc["last_job"]) == std::vector<std::string>{"job_id", "started_at", "force",
                                                              "status", "completed_at", "error"});
    CHECK(keysOf(doc["daemon"]) ==
          std::vector<std::string>{"pid", "version", "started_at", "uptime_seconds"});
    CHECK(keysOf(doc["sources"]["claude"]) ==
          std::vector<std::string>{"roots", "watching", "files", "bytes_ingested", "bytes_pending",
                                   "bytes_read_since_start", "lines_skipped", "last_error"});
    CHECK(keysOf(doc["fault"]) == std::vector<std::string>{"code", "message", "since"});
}

TEST_CASE("timestamps use the status form, and seconds_since_refresh is whole seconds") {
    StatusInput in;
    in.lastRefresh = kNow - 3 * kSec - 999'999;  // 3.999999 s ago
    in.marts[0].lastRefresh = kNow;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(strOf(doc["watcher"]["last_refresh_ts"]) == "2026-05-06T08:24:07.123457+00:00");
    CHECK(doc["watcher"]["seconds_since_refresh"].GetInt64() == 3);
    CHECK(strOf(doc["marts"]["daily"]["last_refresh_ts"]) == "2026-05-06T08:24:11.123456+00:00");
}

TEST_CASE("a refresh stamped in the future reads as 0 seconds ago, never negative") {
    StatusInput in;
    in.lastRefresh = kNow + 5 * kSec;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(doc["watcher"]["seconds_since_refresh"].GetInt64() == 0);
}

// ---- counts ----------------------------------------------------------------

TEST_CASE("an empty provider counts in total only; zero counts are left out") {
    StatusInput in;
    in.eventsTotal = 1010;
    in.maxEventId = 1010;
    in.eventsByProvider = {{"claude", 900}, {"", 10}, {"codex", 100}, {"gemini", 0}};
    in.eventsByCostSource = {{"rate_card", 1000}, {"", 10}};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    const auto& ev = doc["events"];
    CHECK(ev["total"].GetInt64() == 1010);
    CHECK(ev["max_id"].GetInt64() == 1010);
    CHECK(keysOf(ev["by_provider"]) == std::vector<std::string>{"claude", "codex"});
    CHECK(ev["by_provider"]["claude"].GetInt64() == 900);
    CHECK(ev["by_provider"]["codex"].GetInt64() == 100);
    CHECK(keysOf(ev["by_cost_source"]) == std::vector<std::string>{"rate_card"});
    CHECK(ev["by_cost_source"]["rate_card"].GetInt64() == 1000);
}

TEST_CASE("a provider named twice in the counts is summed into one key") {
    StatusInput in;
    in.eventsByProvider = {{"claude", 5}, {"claude", 7}};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(doc["events"]["by_provider"].MemberCount() == 1);
    CHECK(doc["events"]["by_provider"]["claude"].GetInt64() == 12);
}

TEST_CASE("lag is max_id minus the lowest watermark of the five marts") {
    StatusInput in = daemonWithLag(0);
    in.marts[3].watermark = 950;  // provider_day trails
    CHECK(lagEvents(in) == 50);
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(doc["lag_seconds"].GetInt64() == 50);
    CHECK(doc["lag_events"].GetInt64() == 50);
}

TEST_CASE("lag is 0 when max_id is 0, whatever the watermarks") {
    StatusInput in;
    in.marts[0].watermark = 7;
    CHECK(lagEvents(in) == 0);
}

TEST_CASE("lag is floored at 0 when every watermark is past max_id") {
    StatusInput in = daemonWithLag(0);
    for (MartState& m : in.marts) m.watermark = 1200;
    CHECK(lagEvents(in) == 0);
}

// ---- health: each rule on both sides of its boundary ------------------------

TEST_CASE("health names") {
    CHECK(healthName(Health::Live) == "live");
    CHECK(healthName(Health::Syncing) == "syncing");
    CHECK(healthName(Health::Stale) == "stale");
    CHECK(healthName(Health::Error) == "error");
}

TEST_CASE("rule 3: a lag of 100 is live, 101 is stale (watcher running)") {
    CHECK(health(daemonWithLag(100), kNow) == "live");
    CHECK(health(daemonWithLag(101), kNow) == "stale");
}

TEST_CASE("rule 3: at lag 101 a stopped watcher is error, an unknown one stale") {
    StatusInput stopped = daemonWithLag(101);
    stopped.watcherRunning = false;
    CHECK(health(stopped, kNow) == "error");

    StatusInput unknown = daemonWithLag(101);
    unknown.watcherRunning = std::nullopt;
    CHECK(health(unknown, kNow) == "stale");
}

TEST_CASE("rule 3: a stopped watcher at lag 100 is not an error") {
    StatusInput in = daemonWithLag(100);
    in.watcherRunning = false;
    CHECK(health(in, kNow) == "live");
}

TEST_CASE("from the store, running is the string unknown and health never reads false") {
    StatusInput in = daemonWithLag(101);
    in.origin = Origin::Database;
    in.watcherRunning = false;  // whatever a caller filled in, the store cannot know
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(strOf(doc["watcher"]["running"]) == "unknown");
    CHECK(strOf(doc["health"]) == "stale");
}

TEST_CASE("the daemon reports running as a boolean") {
    StatusInput in = daemonWithLag(0);
    CHECK(assembleStatus(in, kNow)["watcher"]["running"].IsTrue());
    in.watcherRunning = false;
    CHECK(assembleStatus(in, kNow)["watcher"]["running"].IsFalse());
}

TEST_CASE("rule 4: lag with a refresh 10 s ago is syncing, 11 s ago live") {
    ManualClock clock(kNow);
    StatusInput in = daemonWithLag(1);
    in.lastRefresh = kNow;

    clock.set(kNow + 10 * kSec);
    CHECK(health(in, clock.now()) == "syncing");
    clock.advance(kSec - 1);  // 10.999999 s: still 10 whole seconds
    CHECK(health(in, clock.now()) == "syncing");
    clock.advance(1);  // 11 s
    CHECK(health(in, clock.now()) == "live");
    CHECK(assembleStatus(in, clock.now())["watcher"]["seconds_since_refresh"].GetInt64() == 11);
}

TEST_CASE("rule 4: no lag with a fresh refresh is live, not syncing") {
    StatusInput in = daemonWithLag(0);
    in.lastRefresh = kNow - kSec;
    CHECK(health(in, kNow) == "live");
}

TEST_CASE("rule 5: lag 1..100 with no refresh observed is live") {
    CHECK(health(daemonWithLag(1), kNow) == "live");
    CHECK(health(daemonWithLag(100), kNow) == "live");
}

TEST_CASE("rule 2: no events at all is live, even with the watcher stopped") {
    StatusInput in;
    in.origin = Origin::Daemon;
    in.watcherRunning = false;
    CHECK(health(in, kNow) == "live");
}

TEST_CASE("rule 1: a failed backfill is error for less than 30 s after it ends") {
    ManualClock clock(kNow);
    StatusInput in = daemonWithLag(0);
    in.lastJob = failedJob(kNow);

    clock.advance(30 * kSec - 1);  // 29.999999 s
    CHECK(health(in, clock.now()) == "error");
    CHECK(assembleStatus(in, clock.now())["last_job"].IsObject());
    clock.advance(1);  // 30 s
    CHECK(health(in, clock.now()) == "live");
    CHECK(assembleStatus(in, clock.now())["last_job"].IsNull());
}

TEST_CASE("rule 1: a completed backfill never turns health error") {
    StatusInput in = daemonWithLag(0);
    in.lastJob = failedJob(kNow - kSec);
    in.lastJob->status = "complete";
    in.lastJob->error = std::nullopt;
    CHECK(health(in, kNow) == "live");
}

TEST_CASE("rule 0: a fault 9 s old is not yet error, 10 s old is") {
    ManualClock clock(kNow);
    StatusInput in = daemonWithLag(0);
    in.fault = Fault{"store_io", "disk I/O error", kNow};

    clock.advance(10 * kSec - 1);  // 9.999999 s
    CHECK(health(in, clock.now()) == "live");
    clock.advance(1);  // 10 s
    CHECK(health(in, clock.now()) == "error");
}

TEST_CASE("rule 0: a fault stamped in the future is young") {
    StatusInput in = daemonWithLag(0);
    in.fault = Fault{"store_io", "disk I/O error", kNow + 60 * kSec};
    CHECK(health(in, kNow) == "live");
}

TEST_CASE("order: an old fault beats a state that would be syncing") {
    StatusInput in = daemonWithLag(5);
    in.lastRefresh = kNow - kSec;
    REQUIRE(health(in, kNow) == "syncing");
    in.fault = Fault{"watch", "inotify limit", kNow - 10 * kSec};
    CHECK(health(in, kNow) == "error");
}

TEST_CASE("order: a failed job beats an empty store (rule 1 before rule 2)") {
    StatusInput in;
    in.lastJob = failedJob(kNow - kSec);
    CHECK(health(in, kNow) == "error");
}

TEST_CASE("order: a large lag is stale even with a fresh refresh (rule 3 before rule 4)") {
    StatusInput in = daemonWithLag(101);
    in.lastRefresh = kNow - kSec;
    CHECK(health(in, kNow) == "stale");
}

TEST_CASE("the document's health is computeHealth's") {
    StatusInput in = daemonWithLag(101);
    in.watcherRunning = false;
    CHECK(strOf(assembleStatus(in, kNow)["health"]) == "error");
}

// ---- watcher, jobs, daemon, sources, fault --------------------------------

TEST_CASE("a disabled watcher is reported as such and does not by itself change health") {
    StatusInput in = daemonWithLag(0);
    in.watcherEnabled = false;
    in.watcherRunning = false;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(doc["watcher"]["enabled"].IsFalse());
    CHECK(doc["watcher"]["running"].IsFalse());
    CHECK(strOf(doc["health"]) == "live");
}

TEST_CASE("current_job carries the compatible head, status running, and our progress") {
    StatusInput in;
    Job job;
    job.jobId = "00112233445566778899aabbccddeeff";
    job.startedAt = kNow - 2 * kSec;
    job.force = true;
    job.status = "running";
    job.progress = JobProgress{1024, 4096, 310, 512.5, 6, kNow};
    in.currentJob = job;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    const auto& j = doc["current_job"];
    CHECK(strOf(j["job_id"]) == "00112233445566778899aabbccddeeff");
    CHECK(strOf(j["started_at"]) == "2026-05-06T08:24:09.123456+00:00");
    CHECK(j["force"].IsTrue());
    CHECK(strOf(j["status"]) == "running");
    CHECK(j["bytes_done"].GetInt64() == 1024);
    CHECK(j["bytes_total"].GetInt64() == 4096);
    CHECK(j["events_done"].GetInt64() == 310);
    CHECK(j["bytes_per_second"].GetDouble() == doctest::Approx(512.5));
    CHECK(j["eta_seconds"].GetInt64() == 6);
}

TEST_CASE("current_job's unknown eta is null") {
    StatusInput in;
    in.currentJob = Job{};
    CHECK(assembleStatus(in, kNow)["current_job"]["eta_seconds"].IsNull());
}

TEST_CASE("last_job shows error only when the job recorded one") {
    StatusInput in;
    in.lastJob = failedJob(kNow - kSec);
    const rapidjson::Document failed = assembleStatus(in, kNow);
    CHECK(strOf(failed["last_job"]["status"]) == "failed");
    CHECK(strOf(failed["last_job"]["completed_at"]) == "2026-05-06T08:24:10.123456+00:00");
    CHECK(strOf(failed["last_job"]["error"]) == "interrupted");

    in.lastJob->status = "complete";
    in.lastJob->error = std::nullopt;
    const rapidjson::Document complete = assembleStatus(in, kNow);
    CHECK(strOf(complete["last_job"]["status"]) == "complete");
    CHECK_FALSE(complete["last_job"].HasMember("error"));
}

TEST_CASE("a finished job without completed_at is neither shown nor counted") {
    StatusInput in;
    in.lastJob = failedJob(kNow);
    in.lastJob->completedAt = std::nullopt;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(doc["last_job"].IsNull());
    CHECK(strOf(doc["health"]) == "live");
}

TEST_CASE("daemon block: pid, version, start and uptime in whole seconds") {
    StatusInput in = daemonWithLag(0);
    in.daemon = DaemonInfo{4242, "0.1.0", kNow - 3725 * kSec - 500'000};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(strOf(doc["source"]) == "daemon");
    CHECK(doc["daemon"]["pid"].GetInt64() == 4242);
    CHECK(strOf(doc["daemon"]["version"]) == "0.1.0");
    CHECK(doc["daemon"]["uptime_seconds"].GetInt64() == 3725);
}

TEST_CASE("from the store the daemon block is null and as_of is set") {
    StatusInput in;
    in.origin = Origin::Database;
    in.daemon = DaemonInfo{4242, "0.1.0", kNow - kSec};  // recorded, but nobody answered
    in.asOf = kNow - 20 * kSec;
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(strOf(doc["source"]) == "database");
    CHECK(doc["daemon"].IsNull());
    CHECK(strOf(doc["as_of"]) == "2026-05-06T08:23:51.123456+00:00");
}

TEST_CASE("sources: one object per provider, in input order, first entry wins") {
    StatusInput in;
    in.sources.push_back(
        SourceState{"codex", {"/a", "/b"}, "stat_scan", 2, 10, 20, 30, 4, "EACCES on /b"});
    in.sources.push_back(SourceState{"claude", {}, "events", 1, 1, 0, 1, 0, std::nullopt});
    in.sources.push_back(SourceState{"codex", {}, "none", 9, 9, 9, 9, 9, std::nullopt});
    const rapidjson::Document doc = assembleStatus(in, kNow);
    const auto& s = doc["sources"];
    CHECK(keysOf(s) == std::vector<std::string>{"codex", "claude"});
    CHECK(s["codex"]["roots"].Size() == 2);
    CHECK(strOf(s["codex"]["roots"][1]) == "/b");
    CHECK(strOf(s["codex"]["watching"]) == "stat_scan");
    CHECK(s["codex"]["files"].GetInt64() == 2);
    CHECK(s["codex"]["bytes_ingested"].GetInt64() == 10);
    CHECK(s["codex"]["bytes_pending"].GetInt64() == 20);
    CHECK(s["codex"]["bytes_read_since_start"].GetInt64() == 30);
    CHECK(s["codex"]["lines_skipped"].GetInt64() == 4);
    CHECK(strOf(s["codex"]["last_error"]) == "EACCES on /b");
    CHECK(s["claude"]["last_error"].IsNull());
}

TEST_CASE("fault block: code, message and since") {
    StatusInput in;
    in.fault = Fault{"store_full", "database or disk is full", kNow - 2 * kSec};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    CHECK(strOf(doc["fault"]["code"]) == "store_full");
    CHECK(strOf(doc["fault"]["message"]) == "database or disk is full");
    CHECK(strOf(doc["fault"]["since"]) == "2026-05-06T08:24:09.123456+00:00");
}
