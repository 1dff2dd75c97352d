// Gemini session parsers: whole `.json` files and `.jsonl` sessions — token
// rules, models, timestamp fallbacks, last-wins revisions, state and reading
// in pieces (sources.md, "Gemini CLI").
#include <doctest/doctest.h>

#include "sources/gemini.h"
#include "sources_test_util.h"

namespace etld::sources {
namespace {

using testing::prices;

// 2026-03-01T00:00:00Z, the mtime of the test files.
constexpr UnixMicros kMtime = 1772323200LL * kMicrosPerSecond;

const FileContext& jsonCtx() {
    static const FileContext c =
        makeFileContext(Provider::Gemini, 1, "abc123/chats/session-2026-01-01.json", kMtime);
    return c;
}

const FileContext& jsonlCtx() {
    static const FileContext c =
        makeFileContext(Provider::Gemini, 0, "abc123/chats/session-x.jsonl", kMtime);
    return c;
}

std::vector<UsageRecord> jsonRecords(std::string_view text) {
    Result<GeminiJsonResult> r = parseGeminiJsonFile(text, jsonCtx(), prices());
    REQUIRE(r.ok());
    return r->records;
}

// A session file with the given messages (JSON texts).
std::string session(
    const std::vector<std::string>& messages,
    std::string_view extra = R"("sessionId":"sess-9","startTime":"2026-02-01T08:00:00.000Z",)") {
    std::string out = "{\n  " + std::string(extra) + "\n  \"messages\": [\n";
    for (std::size_t i = 0; i < messages.size(); ++i)
        out += "    " + messages[i] + (i + 1 < messages.size() ? ",\n" : "\n");
    return out + "  ]\n}\n";
}

std::string gemini(
    std::string_view id, std::string_view tokens,
    std::string_view more = R"("model":"gemini-2.5-pro","timestamp":"2026-02-01T09:00:00.000Z")") {
    return R"({"id":")" + std::string(id) + R"(","type":"gemini","content":"ok","tokens":)" +
           std::string(tokens) + (more.empty() ? "" : "," + std::string(more)) + "}";
}

TEST_CASE("gemini json: gemini messages with tokens are records") {
    const std::vector<UsageRecord> r = jsonRecords(session({
        R"({"id":"u1","type":"user","content":"hi","timestamp":"2026-02-01T08:59:00Z"})",
        gemini("g1", R"({"input":100,"output":20,"cached":0,"thoughts":5,"tool":0,"total":125})"),
        R"({"id":"g2","type":"gemini","content":"no tokens","model":"gemini-2.5-pro"})",
    }));
    REQUIRE(r.size() == 1);
    CHECK(r[0].provider == Provider::Gemini);
    CHECK(r[0].model == "gemini-2.5-pro");
    CHECK(r[0].sessionId == "sess-9");
    CHECK(r[0].projectSlug == "abc123");
    CHECK(r[0].messageId == "g1");
    CHECK(r[0].sourceOffset == 1);
    CHECK(r[0].eventKey == geminiKey("1/abc123/chats/session-2026-01-01.json", "g1"));
    CHECK(r[0].tsText == "2026-02-01T09:00:00.000Z");
    CHECK(r[0].inputTokens == 100);
    CHECK(r[0].outputTokens == 25);
    CHECK(r[0].reasoningTokens == 5);
    CHECK(r[0].costUsd == doctest::Approx(100 * 1.25e-6 + 25 * 10e-6));
}

TEST_CASE("gemini: cached input is taken out when total counts it inside input") {
    // total == input + output + thoughts + tool: input includes the cached tokens.
    const std::vector<UsageRecord> r = jsonRecords(session({gemini(
        "g1",
        R"({"input":15327,"output":23,"cached":11526,"thoughts":919,"tool":7,"total":16276})")}));
    REQUIRE(r.size() == 1);
    CHECK(r[0].inputTokens == 15327 - 11526 + 7);
    CHECK(r[0].cacheReadTokens == 11526);
    CHECK(r[0].outputTokens == 23 + 919);
    CHECK(r[0].reasoningTokens == 919);
    CHECK(r[0].rawExtras == R"({"tool_tokens":7})");
}

TEST_CASE("gemini: cached input stays when total does not count it inside input") {
    const std::vector<UsageRecord> other = jsonRecords(session({gemini(
        "g1", R"({"input":100,"output":10,"cached":50,"thoughts":0,"tool":0,"total":160})")}));
    CHECK(other[0].inputTokens == 100);
    CHECK(other[0].cacheReadTokens == 50);
    const std::vector<UsageRecord> noTotal =
        jsonRecords(session({gemini("g1", R"({"input":100,"output":10,"cached":50})")}));
    CHECK(noTotal[0].inputTokens == 100);
}

TEST_CASE("gemini: cached above input saturates the input at zero") {
    const std::vector<UsageRecord> r = jsonRecords(session(
        {gemini("g1", R"({"input":10,"output":5,"cached":50,"thoughts":0,"tool":3,"total":18})")}));
    CHECK(r[0].inputTokens == 3);
    CHECK(r[0].cacheReadTokens == 50);
}

TEST_CASE("gemini: all-zero tokens and a missing model are ignored") {
    CHECK(jsonRecords(
              session({gemini(
                  "g1", R"({"input":0,"output":0,"cached":0,"thoughts":0,"tool":0,"total":0})")}))
              .empty());
    CHECK(jsonRecords(session({gemini("g1", R"({"input":5,"output":5})",
                                      R"("timestamp":"2026-02-01T09:00:00Z")")}))
              .empty());
}

TEST_CASE("gemini json: the model is the message's own, never another message's") {
    const std::vector<UsageRecord> r = jsonRecords(session({
        gemini("g1", R"({"input":5,"output":5})"),
        gemini("g2", R"({"input":5,"output":5})", R"("timestamp":"2026-02-01T09:00:00Z")"),
    }));
    CHECK(r.size() == 1);
}

TEST_CASE("gemini: invalid token counts skip the message") {
    Result<GeminiJsonResult> r =
        parseGeminiJsonFile(session({gemini("g1", R"({"input":-5,"output":5})"),
                                     gemini("g2", R"({"input":5,"output":"5"})"),
                                     gemini("g3", R"({"input":5,"output":5})")}),
                            jsonCtx(), prices());
    REQUIRE(r.ok());
    CHECK(r->skippedMessages == 2);
    CHECK(r->records.size() == 1);
}

TEST_CASE("gemini json: timestamps fall back from message to session to mtime") {
    const std::string created = R"("model":"gemini-2.5-pro","created_at":"2026-02-01T09:30:00Z")";
    const std::string none = R"("model":"gemini-2.5-pro","timestamp":"garbage")";
    const std::string tokens = R"({"input":1,"output":1})";
    CHECK(jsonRecords(session({gemini("g", tokens, created)}))[0].tsText ==
          "2026-02-01T09:30:00.000Z");
    CHECK(jsonRecords(session({gemini("g", tokens, none)}))[0].tsText ==
          "2026-02-01T08:00:00.000Z");
    CHECK(jsonRecords(
              session({gemini("g", tokens, none)}, R"("lastUpdated":"2026-02-02T10:00:00Z",)"))[0]
              .tsText == "2026-02-02T10:00:00.000Z");
    const std::vector<UsageRecord> mtime = jsonRecords(session({gemini("g", tokens, none)}, ""));
    CHECK(mtime[0].ts == kMtime);
    CHECK(mtime[0].day == "2026-03-01");
}

TEST_CASE("gemini json: the session is sessionId, else the file's stem") {
    const std::vector<UsageRecord> r =
        jsonRecords(session({gemini("g", R"({"input":1,"output":1})")}, ""));
    CHECK(r[0].sessionId == "session-2026-01-01");
}

TEST_CASE("gemini json: a file caught mid-write is an error, not records") {
    const std::string full = session({gemini("g", R"({"input":1,"output":1})")});
    Result<GeminiJsonResult> r =
        parseGeminiJsonFile(full.substr(0, full.size() / 2), jsonCtx(), prices());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "not_json");
}

TEST_CASE("gemini json: a message without id is named by its index") {
    const std::vector<UsageRecord> r = jsonRecords(
        session({R"({"type":"user"})",
                 R"({"type":"gemini","model":"gemini-2.5-pro","tokens":{"input":1,"output":1}})"}));
    REQUIRE(r.size() == 1);
    CHECK(r[0].messageId == "#1");
}

TEST_CASE("gemini json: a rewritten file revises the event by its id, last wins") {
    const std::vector<UsageRecord> first =
        jsonRecords(session({gemini("g1", R"({"input":100,"output":50})")}));
    const std::vector<UsageRecord> second =
        jsonRecords(session({gemini("g1", R"({"input":100,"output":50})"),
                             gemini("g1", R"({"input":10,"output":5})")}));
    std::vector<UsageRecord> all = first;
    all.insert(all.end(), second.begin(), second.end());
    const std::vector<UsageRecord> events = resolveEvents(all);
    REQUIRE(events.size() == 1);
    CHECK(events[0].inputTokens == 10);  // the later message, though lighter
}

// --- .jsonl sessions ---

constexpr std::string_view kHeader =
    R"({"sessionId":"sess-j","projectHash":"abc123","startTime":"2026-02-05T07:00:00.000Z","lastUpdated":"2026-02-05T08:00:00.000Z"})";

ChunkResult jsonl(const std::vector<std::string>& lines) {
    return testing::parseWhole(jsonlCtx(), testing::fileOf(lines));
}

TEST_CASE("gemini jsonl: the header names the session; records follow") {
    const ChunkResult r = jsonl({std::string(kHeader), R"({"id":"u","type":"user","content":"hi"})",
                                 gemini("g1", R"({"input":10,"output":2})")});
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].sessionId == "sess-j");
    CHECK(r.records[0].projectSlug == "abc123");
    CHECK(r.records[0].sourcePath == "0/abc123/chats/session-x.jsonl");
    CHECK(r.records[0].eventKey == geminiKey("0/abc123/chats/session-x.jsonl", "g1"));
}

TEST_CASE("gemini jsonl: without a model the record takes the last model seen") {
    const ChunkResult r =
        jsonl({std::string(kHeader),
               gemini("g1", R"({"input":1,"output":1})", R"("model":"gemini-2.5-flash")"),
               gemini("g2", R"({"input":1,"output":1})", ""),
               R"({"type":"info","model":"gemini-2.5-pro"})",
               gemini("g3", R"({"input":1,"output":1})", "")});
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[1].model == "gemini-2.5-flash");
    CHECK(r.records[2].model == "gemini-2.5-pro");
}

TEST_CASE("gemini jsonl: no model at all ignores the record") {
    CHECK(jsonl({std::string(kHeader), gemini("g1", R"({"input":1,"output":1})", "")})
              .records.empty());
}

TEST_CASE("gemini jsonl: timestamps fall back to the header, then to the mtime") {
    const ChunkResult r = jsonl({std::string(kHeader), gemini("g1", R"({"input":1,"output":1})",
                                                              R"("model":"gemini-2.5-pro")")});
    CHECK(r.records[0].tsText == "2026-02-05T07:00:00.000Z");
    const ChunkResult noHeader =
        jsonl({gemini("g1", R"({"input":1,"output":1})", R"("model":"gemini-2.5-pro")")});
    CHECK(noHeader.records[0].ts == kMtime);
    CHECK(noHeader.records[0].sessionId == "session-x");
}

TEST_CASE("gemini jsonl: a repeated id is a revision and the last one wins") {
    const ChunkResult r = jsonl({std::string(kHeader), gemini("g1", R"({"input":500,"output":90})"),
                                 gemini("g2", R"({"input":7,"output":7})"),
                                 gemini("g1", R"({"input":50,"output":9})")});
    const std::vector<UsageRecord> events = resolveEvents(r.records);
    REQUIRE(events.size() == 2);
    const UsageRecord& g1 = events[0].messageId == "g1" ? events[0] : events[1];
    CHECK(g1.inputTokens == 50);
    CHECK(g1.outputTokens == 9);
}

TEST_CASE("gemini jsonl: the same id in two files is two events") {
    const std::string bytes =
        testing::fileOf({std::string(kHeader), gemini("g1", R"({"input":5,"output":5})")});
    std::vector<UsageRecord> all = testing::parseWhole(jsonlCtx(), bytes).records;
    const FileContext other =
        makeFileContext(Provider::Gemini, 0, "abc123/chats/session-y.jsonl", kMtime);
    for (UsageRecord& rec : testing::parseWhole(other, bytes).records) all.push_back(rec);
    CHECK(resolveEvents(all).size() == 2);
}

TEST_CASE("gemini jsonl: malformed lines and invalid counts are skipped") {
    const ChunkResult r = jsonl({std::string(kHeader), R"({"id":"g1","type":"gemini","tok)",
                                 gemini("g2", R"({"input":1.5,"output":1})"),
                                 gemini("g3", R"({"input":1,"output":1})")});
    CHECK(r.skippedLines == 2);
    CHECK(r.records.size() == 1);
}

TEST_CASE("gemini jsonl: the state survives saving and loading") {
    GeminiFileState state;
    state.headerSeen = true;
    state.sessionId = "s";
    state.startTime = 123;
    state.lastModel = "gemini-2.5-pro";
    Result<GeminiFileState> loaded = loadGeminiState(saveGeminiState(state));
    REQUIRE(loaded.ok());
    CHECK(*loaded == state);
    CHECK(loadGeminiState("").value() == GeminiFileState{});
    CHECK_FALSE(loadGeminiState(R"({"start":"x"})").ok());
}

TEST_CASE("gemini jsonl: a session read in pieces gives the records of one read") {
    std::vector<std::string> lines = {std::string(kHeader)};
    for (int i = 0; i < 12; ++i) {
        lines.push_back(R"({"id":"u)" + std::to_string(i) + R"(","type":"user","content":"q"})");
        lines.push_back(gemini("g" + std::to_string(i % 5),
                               R"({"input":)" + std::to_string(10 + i) +
                                   R"(,"output":3,"cached":2,"thoughts":1,"total":)" +
                                   std::to_string(14 + i) + "}",
                               i % 3 == 0 ? R"("model":"gemini-2.5-flash")" : ""));
    }
    const std::string bytes = testing::fileOf(lines);
    const ChunkResult whole = testing::parseWhole(jsonlCtx(), bytes);
    CHECK(whole.records.size() == 12);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 11; i < bytes.size(); i += 89) cuts.push_back(i);
    CHECK(testing::parseInPieces(jsonlCtx(), bytes, cuts).records == whole.records);
}

}  // namespace
}  // namespace etld::sources
