// Identity and winners as functions of the set of records: the Claude
// fixture's day totals, the Claude rules 1-3, Codex and Gemini keys, and
// order independence (sources.md, "Identity", "Which record of an event wins").
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "sources/claude.h"
#include "sources_test_util.h"

namespace etld::sources {
namespace {

using testing::patched;
using testing::prices;

constexpr std::string_view kBase =
    R"({"type":"assistant","sessionId":"s1","version":"1.0.30","timestamp":"2025-06-08T10:00:00.000Z",)"
    R"("requestId":"req_1","message":{"id":"msg_1","model":"claude-sonnet-4-20250514",)"
    R"("usage":{"input_tokens":10,"output_tokens":20}}})";

UsageRecord claude(std::string_view patch, std::string_view path = "-p/s1.jsonl",
                   std::uint64_t offset = 0) {
    ClaudeFileState state;
    const FileContext file = makeFileContext(Provider::Claude, 0, path, 0);
    LineResult r = parseClaudeLine(patched(kBase, patch), offset, file, state, prices());
    REQUIRE(r.kind == LineResult::Kind::Record);
    return *r.record;
}

std::vector<UsageRecord> claudeFixtureRecords() {
    const std::string dir =
        testing::sharedDir() + "/fixtures/claude/projects/-Users-test-dev-ai-music/";
    std::vector<UsageRecord> all;
    std::uint64_t skipped = 0;
    for (const char* name : {"ba79134d-b6e9-4867-af0c-6941038c9e4b.jsonl",
                             "d3ad4cdc-5657-435d-98fa-0035d53e383d.jsonl",
                             "fed8ce56-bc79-401f-a83e-af084253362f.jsonl",
                             "ff71dbed-a4f2-4284-a4fc-fe2fb90de929.jsonl"}) {
        const FileContext file = makeFileContext(
            Provider::Claude, 0, std::string("-Users-test-dev-ai-music/") + name, 0);
        ChunkResult r = testing::parseWhole(file, testing::readFile(dir + name));
        skipped += r.skippedLines;
        for (UsageRecord& rec : r.records) all.push_back(std::move(rec));
    }
    CHECK(skipped == 0);
    return all;
}

struct DayTotals {
    std::int64_t input = 0, output = 0, cacheCreate = 0, cacheRead = 0, events = 0;
    double cost = 0.0;
};

std::map<std::string, DayTotals> byDay(const std::vector<UsageRecord>& events) {
    std::map<std::string, DayTotals> days;
    for (const UsageRecord& e : events) {
        DayTotals& d = days[e.day];
        d.input += e.inputTokens;
        d.output += e.outputTokens;
        d.cacheCreate += e.cacheCreateTokens;
        d.cacheRead += e.cacheReadTokens;
        d.cost += e.costUsd;
        ++d.events;
    }
    return days;
}

TEST_CASE("identity: the Claude fixture gives ccusage's day totals and 90 events") {
    const std::vector<UsageRecord> records = claudeFixtureRecords();
    CHECK(records.size() == 123);
    const std::vector<UsageRecord> events = resolveEvents(records);
    CHECK(events.size() == 90);
    const std::map<std::string, DayTotals> days = byDay(events);
    REQUIRE(days.size() == 2);
    const DayTotals& d8 = days.at("2025-06-08");
    CHECK(d8.input == 205);
    CHECK(d8.output == 19035);
    CHECK(d8.cacheCreate == 190624);
    CHECK(d8.cacheRead == 4257841);
    CHECK(std::abs(d8.cost - 2.2783323) < 1e-6);
    const DayTotals& d10 = days.at("2025-06-10");
    CHECK(d10.input == 88);
    CHECK(d10.output == 278);
    CHECK(d10.cacheCreate == 16000);
    CHECK(d10.cacheRead == 44544);
    CHECK(std::abs(d10.cost - 0.0777972) < 1e-6);
    for (const UsageRecord& e : events) CHECK(e.projectSlug == "-Users-test-dev-ai-music");
}

TEST_CASE("identity: the result does not depend on the order of the records") {
    std::vector<UsageRecord> records = claudeFixtureRecords();
    const std::vector<UsageRecord> expected = resolveEvents(records);
    std::mt19937 rng(20250608);  // fixed seed: the test is deterministic
    for (int round = 0; round < 5; ++round) {
        std::shuffle(records.begin(), records.end(), rng);
        CHECK(resolveEvents(records) == expected);
    }
    std::reverse(records.begin(), records.end());
    CHECK(resolveEvents(records) == expected);
}

TEST_CASE("identity: Claude rule 2 joins copies of one response across sessions and files") {
    const UsageRecord a = claude(R"({"sessionId":"s1"})", "-p/s1.jsonl");
    const UsageRecord b = claude(R"({"sessionId":"s2"})", "-q/s2.jsonl");
    const std::vector<UsageRecord> events = resolveEvents({b, a});
    REQUIRE(events.size() == 1);
    CHECK(events[0].eventKey == claudeMessageKey("msg_1", "req_1"));
    CHECK(events[0].sourcePath == "0/-p/s1.jsonl");  // equal otherwise: the smallest path
}

TEST_CASE("identity: the heavier streamed chunk wins and decides the day") {
    const UsageRecord early =
        claude(R"({"message":{"usage":{"output_tokens":1}}})", "-p/s1.jsonl", 0);
    const UsageRecord late =
        claude(R"({"timestamp":"2025-06-09T00:00:01Z","message":{"usage":{"output_tokens":500}}})",
               "-p/s1.jsonl", 900);
    const std::vector<UsageRecord> events = resolveEvents({early, late});
    REQUIRE(events.size() == 1);
    CHECK(events[0].outputTokens == 500);
    CHECK(events[0].day == "2025-06-09");
}

TEST_CASE("identity: equal tokens go to the higher cost, then to the one with speed") {
    const UsageRecord cheap = claude(R"({"costUSD":0.01})", "-p/a.jsonl");
    const UsageRecord dear = claude(R"({"costUSD":0.02})", "-p/b.jsonl");
    CHECK(resolveEvents({cheap, dear})[0].costUsd == 0.02);
    const UsageRecord plain = claude("{}", "-p/a.jsonl");
    const UsageRecord speed = claude(R"({"message":{"usage":{"speed":"standard"}}})", "-p/b.jsonl");
    CHECK(resolveEvents({plain, speed})[0].hasSpeed);
}

TEST_CASE("identity: without requestId, chunks of one session are one event") {
    const UsageRecord a = claude(R"({"requestId":"<delete>"})", "-p/s1.jsonl", 0);
    const UsageRecord b = claude(
        R"({"requestId":"<delete>","message":{"usage":{"output_tokens":99}}})", "-p/s1.jsonl", 50);
    const UsageRecord other =
        claude(R"({"requestId":"<delete>","sessionId":"s2"})", "-p/s2.jsonl", 0);
    const std::vector<UsageRecord> events = resolveEvents({a, b, other});
    REQUIRE(events.size() == 2);
}

TEST_CASE("identity: Claude rule 1 keys id-less records by session, line hash and count") {
    const std::string line = patched(kBase, R"({"message":{"id":"<delete>"}})");
    const std::string bytes = testing::fileOf({line, line});
    const FileContext f1 = makeFileContext(Provider::Claude, 0, "-p/s1.jsonl", 0);
    const FileContext f2 = makeFileContext(Provider::Claude, 0, "-p/copy/s1.jsonl", 0);
    std::vector<UsageRecord> all = testing::parseWhole(f1, bytes).records;
    CHECK(resolveEvents(all).size() == 2);  // two identical lines in one file: two events
    for (UsageRecord& r : testing::parseWhole(f2, bytes).records) all.push_back(r);
    const std::vector<UsageRecord> events = resolveEvents(all);
    CHECK(events.size() == 2);  // a copied file adds nothing
    for (const UsageRecord& e : events) CHECK(e.sourcePath == "0/-p/copy/s1.jsonl");
}

TEST_CASE("identity: a sidechain belongs to the non-sidechain event with its rule-2 key") {
    const UsageRecord main = claude(R"({"sessionId":"s1"})", "-p/s1.jsonl");
    const UsageRecord side = claude(
        R"({"sessionId":"s9","isSidechain":true,"message":{"usage":{"output_tokens":5000}}})",
        "-p/s9/subagents/agent-1.jsonl");
    CHECK(claudeSidechainBelongsTo(side, main));
    const std::vector<UsageRecord> events = resolveEvents({side, main});
    REQUIRE(events.size() == 1);
    CHECK_FALSE(events[0].isSidechain);  // never wins, however heavy
    CHECK(events[0].outputTokens == 20);
}

TEST_CASE("identity: a sidechain belongs to a same-session record with its message.id") {
    const UsageRecord main = claude(R"({"requestId":"req_main"})", "-p/s1.jsonl");
    const UsageRecord side =
        claude(R"({"requestId":"req_other","isSidechain":true})", "-p/s1/subagents/agent-1.jsonl");
    const std::vector<UsageRecord> events = resolveEvents({main, side});
    REQUIRE(events.size() == 1);
    CHECK(events[0].eventKey == claudeMessageKey("msg_1", "req_main"));
}

TEST_CASE("identity: sidechains alone form one event per session and message.id") {
    const UsageRecord a = claude(R"({"isSidechain":true})", "-p/s1/subagents/agent-1.jsonl", 0);
    const UsageRecord b = claude(R"({"isSidechain":true,"message":{"usage":{"output_tokens":70}}})",
                                 "-p/s1/subagents/agent-1.jsonl", 10);
    const UsageRecord otherSession =
        claude(R"({"isSidechain":true,"sessionId":"s2","requestId":"req_2"})", "-p/s2.jsonl", 0);
    const std::vector<UsageRecord> events = resolveEvents({a, b, otherSession});
    REQUIRE(events.size() == 2);
    CHECK(events[0].eventKey == claudeSessionKey("msg_1", "s1"));
    CHECK(events[0].outputTokens == 70);
    CHECK(events[1].eventKey == claudeSessionKey("msg_1", "s2"));
}

TEST_CASE("identity: a later main record absorbs the sidechain-only event") {
    const UsageRecord side =
        claude(R"({"isSidechain":true,"message":{"usage":{"output_tokens":70}}})",
               "-p/s1/subagents/agent-1.jsonl");
    const UsageRecord main = claude("{}", "-p/s1.jsonl");
    CHECK(resolveEvents({side})[0].eventKey == claudeSessionKey("msg_1", "s1"));
    const std::vector<UsageRecord> merged = resolveEvents({side, main});
    REQUIRE(merged.size() == 1);
    CHECK(merged[0].eventKey == claudeMessageKey("msg_1", "req_1"));
    CHECK(merged[0].outputTokens == 20);
}

TEST_CASE("identity: a sidechain of another session without the main's requestId stays apart") {
    const UsageRecord main = claude(R"({"sessionId":"s1"})", "-p/s1.jsonl");
    const UsageRecord side =
        claude(R"({"sessionId":"s2","requestId":"<delete>","isSidechain":true})", "-p/s2.jsonl");
    CHECK_FALSE(claudeSidechainBelongsTo(side, main));
    CHECK(resolveEvents({main, side}).size() == 2);
}

TEST_CASE("identity: Codex copies of one event keep the smallest path and offset") {
    UsageRecord a;
    a.provider = Provider::Codex;
    a.eventKey = codexKey("2026-04-19T20:00:06.000Z", "gpt-5.4", {1200, 200, 350, 150, 1550});
    a.sourcePath = "0/2026/04/19/b.jsonl";
    a.sourceOffset = 5;
    UsageRecord b = a;
    b.sourcePath = "0/2026/04/19/a.jsonl";
    b.sourceOffset = 900;
    UsageRecord c = a;
    c.sourceOffset = 1;
    const std::vector<UsageRecord> events = resolveEvents({a, b, c});
    REQUIRE(events.size() == 1);
    CHECK(events[0].sourcePath == "0/2026/04/19/a.jsonl");
    CHECK(betterRecord(c, a));
    CHECK_FALSE(betterRecord(a, c));
}

TEST_CASE("identity: a Gemini revision wins by position, not by weight") {
    UsageRecord first;
    first.provider = Provider::Gemini;
    first.eventKey = geminiKey("0/h/chats/s.jsonl", "g1");
    first.sourcePath = "0/h/chats/s.jsonl";
    first.sourceOffset = 10;
    first.outputTokens = 1000;
    UsageRecord later = first;
    later.sourceOffset = 500;
    later.outputTokens = 3;
    CHECK(betterRecord(later, first));
    CHECK(resolveEvents({later, first})[0].outputTokens == 3);
}

TEST_CASE("identity: betterRecord is strict") {
    const UsageRecord a = claude("{}");
    CHECK_FALSE(betterRecord(a, a));
}

TEST_CASE("identity: providers never share events") {
    UsageRecord codex;
    codex.provider = Provider::Codex;
    codex.eventKey = "same";
    UsageRecord gemini = codex;
    gemini.provider = Provider::Gemini;
    CHECK(resolveEvents({codex, gemini}).size() == 2);
}

TEST_CASE("identity: line hashes are stable FNV-1a values") {
    CHECK(lineHash("") == "cbf29ce484222325");
    CHECK(lineHash("a") == "af63dc4c8601ec8c");
    CHECK(lineHash("a") != lineHash("b"));
}

}  // namespace
}  // namespace etld::sources
