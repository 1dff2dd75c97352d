// The renderers of the status document: sorted and compact JSON, the text
// summary (compared as whole strings, line for line), and the --check line
// with its exit codes.
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "status/render.h"
#include "status/status.h"

using namespace etld;
using namespace etld::status;

namespace {

// 2026-05-06T08:24:11.123456+00:00
constexpr UnixMicros kNow = 1778055851123456;
constexpr UnixMicros kSec = kMicrosPerSecond;

// The spec's example: a daemon answering, everything caught up.
StatusInput exampleInput() {
    StatusInput in;
    in.origin = Origin::Daemon;
    in.watcherRunning = true;
    in.lastRefresh = kNow - 3 * kSec;
    in.eventsInLastCycle = 12;
    in.lockHeldBy = 4242;
    in.eventsTotal = 228311;
    in.maxEventId = 228311;
    in.eventsByProvider = {{"codex", 310}, {"claude", 228001}};
    in.eventsByCostSource = {{"rate_card", 228311}};
    const std::int64_t rows[] = {4521, 841, 37, 120, 388};
    for (size_t i = 0; i < in.marts.size(); ++i) {
        in.marts[i].watermark = 228311;
        in.marts[i].rowCount = rows[i];
        in.marts[i].lastRefresh = kNow - 3 * kSec;
    }
    in.daemon = DaemonInfo{4242, "0.1.0", kNow - 3725 * kSec};
    in.sources.push_back(SourceState{
        "claude", {"/home/u/.claude/projects"}, "events", 1204, 900000, 0, 1000, 3, std::nullopt});
    in.sources.push_back(SourceState{"codex",
                                     {"/home/u/.codex/sessions"},
                                     "stat_scan",
                                     12,
                                     5000,
                                     4096,
                                     5000,
                                     0,
                                     "permission denied: /x"});
    in.schemaVersion = 3;
    in.storePath = "/home/u/.local/state/etld/etld.sqlite3";
    return in;
}

rapidjson::Document parse(std::string_view json) {
    rapidjson::Document d;
    d.Parse(json.data(), json.size());
    REQUIRE_FALSE(d.HasParseError());
    return d;
}

void setHealth(rapidjson::Document& doc, const char* health) {
    doc["health"].SetString(rapidjson::StringRef(health));
}

// Every object at every depth has its keys in ascending byte order.
bool sortedEverywhere(const rapidjson::Value& v) {
    if (v.IsObject()) {
        std::string_view prev;
        bool first = true;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
            const std::string_view key(it->name.GetString(), it->name.GetStringLength());
            if (!first && !(prev < key)) return false;
            prev = key;
            first = false;
            if (!sortedEverywhere(it->value)) return false;
        }
    } else if (v.IsArray()) {
        for (const auto& e : v.GetArray())
            if (!sortedEverywhere(e)) return false;
    }
    return true;
}

std::string firstLine(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

}  // namespace

// ---- withThousands ---------------------------------------------------------

TEST_CASE("withThousands groups digits by three, sign kept") {
    CHECK(withThousands(0) == "0");
    CHECK(withThousands(7) == "7");
    CHECK(withThousands(999) == "999");
    CHECK(withThousands(1000) == "1,000");
    CHECK(withThousands(228311) == "228,311");
    CHECK(withThousands(1234567) == "1,234,567");
    CHECK(withThousands(-1) == "-1");
    CHECK(withThousands(-999) == "-999");
    CHECK(withThousands(-1000) == "-1,000");
    CHECK(withThousands(-1234567) == "-1,234,567");
    CHECK(withThousands(LLONG_MAX) == "9,223,372,036,854,775,807");
    CHECK(withThousands(LLONG_MIN) == "-9,223,372,036,854,775,808");
}

// ---- JSON ------------------------------------------------------------------

TEST_CASE("sorted JSON: keys ordered at every depth, indent 2, empty containers inline") {
    const rapidjson::Document doc =
        parse(R"({"b":1,"a":{"d":[1,{"z":true,"y":null}],"c":{}},"e":[],"Z":"x\"y","f":2.5})");
    const std::string expected =
        "{\n"
        "  \"Z\": \"x\\\"y\",\n"
        "  \"a\": {\n"
        "    \"c\": {},\n"
        "    \"d\": [\n"
        "      1,\n"
        "      {\n"
        "        \"y\": null,\n"
        "        \"z\": true\n"
        "      }\n"
        "    ]\n"
        "  },\n"
        "  \"b\": 1,\n"
        "  \"e\": [],\n"
        "  \"f\": 2.5\n"
        "}\n";
    CHECK(renderJsonSorted(doc) == expected);
}

TEST_CASE("sorted JSON of a scalar is the scalar and a newline") {
    CHECK(renderJsonSorted(parse("42")) == "42\n");
}

TEST_CASE("sorted JSON of a full status document is sorted everywhere and loses nothing") {
    StatusInput in = exampleInput();
    in.fault = Fault{"store_full", "disk full", kNow - kSec};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    const std::string text = renderJsonSorted(doc);
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    CHECK(text.rfind("{\n  \"as_of\": null,\n  \"current_job\": null,\n", 0) == 0);
    const rapidjson::Document back = parse(text);
    CHECK(sortedEverywhere(back));
    CHECK(back == doc);  // RapidJSON compares objects regardless of member order
    // The socket order is not sorted, so this test would notice a renderer
    // that forgot to sort.
    CHECK_FALSE(sortedEverywhere(doc));
}

TEST_CASE("compact JSON keeps the document's own order, without whitespace") {
    const rapidjson::Document doc = parse(R"({ "b" : 1, "a" : [ 1, 2 ], "c" : { } })");
    CHECK(renderJsonCompact(doc) == R"({"b":1,"a":[1,2],"c":{}})");
}

TEST_CASE("compact JSON of a status document starts with the compatible block") {
    const rapidjson::Document doc = assembleStatus(StatusInput{}, kNow);
    const std::string json = renderJsonCompact(doc);
    CHECK(json.rfind(R"({"watcher":{"enabled":true,"running":"unknown",)", 0) == 0);
    CHECK(json.find('\n') == std::string::npos);
}

// ---- text ------------------------------------------------------------------

TEST_CASE("text: the spec's example, line for line, then our extras") {
    const rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    const std::string expected =
        "ETL pipeline \u2014 live (last refresh 3s ago)\n"
        "\n"
        "  Events:        228,311 total (228,311 max id)\n"
        "                 by provider: claude=228,001 codex=310\n"
        "                 by cost source: rate_card=228,311\n"
        "\n"
        "  Marts:\n"
        "                 daily=4,521 rows          (watermark 228,311, fresh)\n"
        "                 session=841 rows          (watermark 228,311, fresh)\n"
        "                 project=37 rows           (watermark 228,311, fresh)\n"
        "                 provider_day=120 rows     (watermark 228,311, fresh)\n"
        "                 model_day=388 rows        (watermark 228,311, fresh)\n"
        "\n"
        "  Watcher:       running\n"
        "                 last cycle: 12 events processed\n"
        "\n"
        "  Source:        daemon (pid 4242, version 0.1.0, up 1h 2m 5s)\n"
        "                 store /home/u/.local/state/etld/etld.sqlite3 (schema 3)\n"
        "\n"
        "  Sources:       claude: 1,204 files, 0 bytes pending, 3 lines skipped (watching events)\n"
        "                 codex: 12 files, 4,096 bytes pending, 0 lines skipped (watching "
        "stat_scan)\n"
        "                 codex last error: permission denied: /x\n";
    CHECK(renderText(doc, false) == expected);
}

TEST_CASE("text: from the store, with lag, marts behind, a fault and jobs") {
    StatusInput in;
    in.origin = Origin::Database;
    in.eventsTotal = 1500;
    in.maxEventId = 1500;
    for (MartState& m : in.marts) m.watermark = 1500;
    in.marts[0].rowCount = 1200;
    in.marts[2].watermark = 1000;
    in.asOf = kNow - 20 * kSec;
    in.schemaVersion = 3;
    in.storePath = "/srv/etld.sqlite3";
    in.fault = Fault{"store_full", "database or disk is full", kNow - 2 * kSec};
    Job cur;
    cur.jobId = "00112233445566778899aabbccddeeff";
    cur.startedAt = kNow - 2 * kSec;
    cur.force = true;
    cur.status = "running";
    cur.progress = JobProgress{1024, 4096, 310, 2048.0, 6, kNow};
    in.currentJob = cur;
    Job last;
    last.jobId = "0123456789abcdef0123456789abcdef";
    last.startedAt = kNow - 60 * kSec;
    last.status = "failed";
    last.completedAt = kNow - 5 * kSec;
    last.error = "interrupted";
    in.lastJob = last;

    const rapidjson::Document doc = assembleStatus(in, kNow);
    const std::string expected =
        "ETL pipeline \u2014 error (no refresh observed)\n"
        "\n"
        "  Events:        1,500 total (1,500 max id)\n"
        "\n"
        "  Marts:\n"
        "                 daily=1,200 rows          (watermark 1,500, fresh)\n"
        "                 session=0 rows            (watermark 1,500, fresh)\n"
        "                 project=0 rows            (watermark 1,000, 500 behind)\n"
        "                 provider_day=0 rows       (watermark 1,500, fresh)\n"
        "                 model_day=0 rows          (watermark 1,500, fresh)\n"
        "\n"
        "  Watcher:       state unknown (daemon not running)\n"
        "\n"
        "  Lag (events behind marts): 500\n"
        "\n"
        "  Source:        database, as of 2026-05-06T08:23:51.123456+00:00\n"
        "                 store /srv/etld.sqlite3 (schema 3)\n"
        "\n"
        "  Fault:         store_full: database or disk is full (since "
        "2026-05-06T08:24:09.123456+00:00)\n"
        "\n"
        "  Backfill:      running 00112233445566778899aabbccddeeff (force), started "
        "2026-05-06T08:24:09.123456+00:00\n"
        "                 1,024 of 4,096 bytes, 310 events, 2,048 bytes/s, eta 6s\n"
        "\n"
        "  Last backfill: failed 0123456789abcdef0123456789abcdef, completed "
        "2026-05-06T08:24:06.123456+00:00\n"
        "                 error: interrupted\n";
    CHECK(renderText(doc, false) == expected);
}

TEST_CASE("text: a mart label longer than 24 characters still gets two spaces") {
    StatusInput in;
    in.maxEventId = 5;
    in.eventsTotal = 5;
    for (MartState& m : in.marts) m.watermark = 5;
    in.marts[3].rowCount = 12345678901;  // "provider_day=12,345,678,901 rows": 32 characters
    const std::string text = renderText(assembleStatus(in, kNow), false);
    CHECK(
        text.find("\n                 provider_day=12,345,678,901 rows  (watermark 5, fresh)\n") !=
        std::string::npos);
}

TEST_CASE("text: a store with a lock holder names it on the source line") {
    StatusInput in;
    in.lockHeldBy = 777;
    const std::string text = renderText(assembleStatus(in, kNow), false);
    CHECK(text.find(
              "\n  Source:        database, no daemon state recorded; lock held by pid 777\n") !=
          std::string::npos);
}

TEST_CASE("text: the watcher line for each state") {
    StatusInput in = exampleInput();
    in.eventsInLastCycle = std::nullopt;
    auto watcherLine = [&](const StatusInput& i) {
        const std::string text = renderText(assembleStatus(i, kNow), false);
        const size_t at = text.find("\n  Watcher:       ");
        REQUIRE(at != std::string::npos);
        return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
    };
    CHECK(watcherLine(in) == "  Watcher:       running");
    in.watcherRunning = false;
    CHECK(watcherLine(in) == "  Watcher:       stopped");
    in.watcherEnabled = false;
    CHECK(watcherLine(in) == "  Watcher:       disabled (--no-watch or ETLD_DISABLE_WATCHER)");
    in.watcherEnabled = true;
    in.origin = Origin::Database;
    CHECK(watcherLine(in) == "  Watcher:       state unknown (daemon not running)");
    in.watcherEnabled = false;  // the store recorded a disabled watcher
    CHECK(watcherLine(in) == "  Watcher:       disabled (--no-watch or ETLD_DISABLE_WATCHER)");
}

TEST_CASE("text: no last-cycle line when the cycle count is unknown") {
    StatusInput in = exampleInput();
    in.eventsInLastCycle = std::nullopt;
    CHECK(renderText(assembleStatus(in, kNow), false).find("last cycle") == std::string::npos);
}

TEST_CASE("text: no lag line when the lag is 0, a lag line when it is not") {
    StatusInput in = exampleInput();
    CHECK(renderText(assembleStatus(in, kNow), false).find("Lag") == std::string::npos);
    in.marts[1].watermark -= 1234;
    CHECK(renderText(assembleStatus(in, kNow), false)
              .find("\n\n  Lag (events behind marts): 1,234\n") != std::string::npos);
}

TEST_CASE("text: by-provider pairs by count descending, then key ascending") {
    StatusInput in = exampleInput();
    in.eventsByProvider = {{"gemini", 5}, {"codex", 9}, {"claude", 5}};
    const std::string text = renderText(assembleStatus(in, kNow), false);
    CHECK(text.find("\n                 by provider: codex=9 claude=5 gemini=5\n") !=
          std::string::npos);
}

TEST_CASE("text: a refresh long ago is counted with separators") {
    StatusInput in = exampleInput();
    in.lastRefresh = kNow - 3600 * kSec;
    CHECK(firstLine(renderText(assembleStatus(in, kNow), false)) ==
          "ETL pipeline \u2014 live (last refresh 3,600s ago)");
}

TEST_CASE("text: colour off has no escape sequences at all") {
    StatusInput in = exampleInput();
    in.fault = Fault{"store_full", "disk full", kNow - 60 * kSec};
    const std::string text = renderText(assembleStatus(in, kNow), false);
    CHECK(text.find('\x1b') == std::string::npos);
}

TEST_CASE("text: colour on makes the first line bold and coloured by health, nothing else") {
    rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    const std::string tail = "ETL pipeline \u2014 ";
    const std::string since = " (last refresh 3s ago)\x1b[0m";
    CHECK(firstLine(renderText(doc, true)) == "\x1b[1;32m" + tail + "live" + since);
    setHealth(doc, "syncing");
    CHECK(firstLine(renderText(doc, true)) == "\x1b[1;33m" + tail + "syncing" + since);
    setHealth(doc, "stale");
    CHECK(firstLine(renderText(doc, true)) == "\x1b[1;33m" + tail + "stale" + since);
    setHealth(doc, "error");
    const std::string text = renderText(doc, true);
    CHECK(firstLine(text) == "\x1b[1;31m" + tail + "error" + since);
    CHECK(text.find('\x1b', text.find('\n')) == std::string::npos);
}

TEST_CASE("text: a document missing keys still renders") {
    const std::string text = renderText(parse("{}"), false);
    CHECK(firstLine(text) == "ETL pipeline \u2014 unknown (no refresh observed)");
    CHECK(text.find("  Events:        0 total (0 max id)\n") != std::string::npos);
}

// ---- --check ---------------------------------------------------------------

TEST_CASE("check: the line carries health and performance data") {
    const rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    const CheckLine c = renderCheck(doc, Answerer::Daemon);
    CHECK(c.line == "ETLD OK - live | events=228311 lag=0;100 pending_bytes=4096B");
    CHECK(c.exitCode == 0);
}

TEST_CASE("check: the daemon answered live or syncing -> 0") {
    rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    CHECK(renderCheck(doc, Answerer::Daemon).exitCode == 0);
    setHealth(doc, "syncing");
    const CheckLine c = renderCheck(doc, Answerer::Daemon);
    CHECK(c.exitCode == 0);
    CHECK(c.line.rfind("ETLD OK - syncing | ", 0) == 0);
}

TEST_CASE("check: the daemon answered stale -> 1") {
    StatusInput in = exampleInput();
    for (MartState& m : in.marts) m.watermark -= 101;
    const CheckLine c = renderCheck(assembleStatus(in, kNow), Answerer::Daemon);
    CHECK(c.exitCode == 1);
    CHECK(c.line == "ETLD WARNING - stale | events=228311 lag=101;100 pending_bytes=4096B");
}

TEST_CASE("check: the store read live, syncing or stale -> 1") {
    rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    for (const char* h : {"live", "syncing", "stale"}) {
        setHealth(doc, h);
        const CheckLine c = renderCheck(doc, Answerer::Store);
        CHECK(c.exitCode == 1);
        CHECK(c.line.rfind(std::string("ETLD WARNING - ") + h + " (read from the store) | ", 0) ==
              0);
    }
}

TEST_CASE("check: health error from the daemon or from the store -> 2") {
    StatusInput in = exampleInput();
    in.fault = Fault{"store_full", "disk full", kNow - 10 * kSec};
    const rapidjson::Document doc = assembleStatus(in, kNow);
    const CheckLine fromDaemon = renderCheck(doc, Answerer::Daemon);
    CHECK(fromDaemon.exitCode == 2);
    CHECK(fromDaemon.line.rfind("ETLD CRITICAL - error | ", 0) == 0);
    const CheckLine fromStore = renderCheck(doc, Answerer::Store);
    CHECK(fromStore.exitCode == 2);
    CHECK(fromStore.line.rfind("ETLD CRITICAL - error (read from the store) | ", 0) == 0);
}

TEST_CASE("check: a health this version does not know -> 3") {
    rapidjson::Document doc = assembleStatus(exampleInput(), kNow);
    setHealth(doc, "degraded");
    const CheckLine c = renderCheck(doc, Answerer::Daemon);
    CHECK(c.exitCode == 3);
    CHECK(c.line.rfind("ETLD UNKNOWN - unrecognised health \"degraded\" | ", 0) == 0);
}
