// Claude Code transcript parser: skip rules, token rules, model and cost,
// session and project, state, and reading in pieces (sources.md, "Claude Code").
#include <doctest/doctest.h>

#include "sources/claude.h"
#include "sources_test_util.h"

namespace etld::sources {
namespace {

using testing::patched;
using testing::prices;

// A valid usage line every test starts from.
constexpr std::string_view kBase =
    R"({"type":"assistant","parentUuid":null,"sessionId":"s1","cwd":"/w/app","version":"1.0.30",)"
    R"("timestamp":"2025-06-08T10:00:00.123Z","requestId":"req_1","isSidechain":false,)"
    R"("message":{"id":"msg_1","role":"assistant","model":"claude-sonnet-4-20250514",)"
    R"("content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":10,"output_tokens":20,)"
    R"("cache_read_input_tokens":30,"cache_creation_input_tokens":40,"service_tier":"standard"}}})";

const FileContext& ctx() {
    static const FileContext c = makeFileContext(Provider::Claude, 0, "-w-app/s1.jsonl", 0);
    return c;
}

LineResult parse(std::string_view line, const FileContext& file = ctx()) {
    ClaudeFileState state;
    return parseClaudeLine(line, 0, file, state, prices());
}

LineResult parsePatched(std::string_view patch) {
    return parse(patched(kBase, patch));
}

bool isSkipped(std::string_view patch) {
    return parsePatched(patch).kind == LineResult::Kind::Skipped;
}

UsageRecord recordOf(std::string_view patch) {
    LineResult r = parsePatched(patch);
    REQUIRE(r.kind == LineResult::Kind::Record);
    return *r.record;
}

TEST_CASE("claude: the base line is a record with the fields usage_events needs") {
    const UsageRecord r = recordOf("{}");
    CHECK(r.provider == Provider::Claude);
    CHECK(r.sessionId == "s1");
    CHECK(r.projectSlug == "-w-app");
    CHECK(r.cwd == "/w/app");
    CHECK(r.tsText == "2025-06-08T10:00:00.123Z");
    CHECK(r.day == "2025-06-08");
    CHECK(r.model == "claude-sonnet-4-20250514");
    CHECK(r.speed == Speed::Standard);
    CHECK_FALSE(r.hasSpeed);
    CHECK(r.inputTokens == 10);
    CHECK(r.outputTokens == 20);
    CHECK(r.cacheReadTokens == 30);
    CHECK(r.cacheCreateTokens == 40);
    CHECK(r.cacheCreate1hTokens == 0);
    CHECK(r.reasoningTokens == 0);
    CHECK(r.role == "assistant");
    CHECK(r.rawExtras.empty());
    CHECK(r.messageId == "msg_1");
    CHECK(r.requestId == "req_1");
    CHECK_FALSE(r.isSidechain);
    CHECK(r.eventKey == claudeMessageKey("msg_1", "req_1"));
    CHECK(r.sourcePath == "0/-w-app/s1.jsonl");
    CHECK(r.costSource == CostSource::RateCard);
    CHECK(r.costUsd == doctest::Approx(10 * 3e-6 + 20 * 15e-6 + 30 * 0.3e-6 + 40 * 3.75e-6));
}

TEST_CASE("claude: malformed JSON is a skipped line") {
    CHECK(parse(R"({"type":"assistant","message":{"usage":{"input_tokens":1)").kind ==
          LineResult::Kind::Skipped);
    CHECK(parse("not json").kind == LineResult::Kind::Skipped);
}

TEST_CASE("claude: lines that are not usage records are neither records nor skipped") {
    CHECK(parse(R"({"type":"summary","summary":"x","leafUuid":"u"})").kind ==
          LineResult::Kind::NotUsage);
    CHECK(parse(R"({"type":"user","message":{"role":"user","content":"hello"}})").kind ==
          LineResult::Kind::NotUsage);
    CHECK(parsePatched(R"({"message":{"usage":null}})").kind == LineResult::Kind::NotUsage);
    CHECK(parse("").kind == LineResult::Kind::NotUsage);
    CHECK(parse("  \r").kind == LineResult::Kind::NotUsage);
    CHECK(parse("[1,2]").kind == LineResult::Kind::NotUsage);
}

TEST_CASE("claude: the fast path for lines without a usage key judges them as the full parse does") {
    // No `"usage"` bytes: validity alone decides (skipped vs not usage).
    CHECK(parse(R"({"type":"user","message":{"content":"a long tool result"}})").kind ==
          LineResult::Kind::NotUsage);
    CHECK(parse(R"({"type":"user","message":{"content":"unterminated})").kind ==
          LineResult::Kind::Skipped);
    CHECK(parse("\xef\xbb\xbf{\"type\":\"user\"}").kind == LineResult::Kind::NotUsage);  // BOM, as parse()
    CHECK(parse(R"({"a":1} trailing)").kind == LineResult::Kind::Skipped);
    // A key spelled with an escape is still found: the full parse runs.
    std::string escaped(kBase);
    escaped.replace(escaped.find("\"usage\""), 7, "\"\\u0075sage\"");
    const LineResult r = parse(escaped);
    REQUIRE(r.kind == LineResult::Kind::Record);
    CHECK(r.record->inputTokens == 10);
}

TEST_CASE("claude: the line's type is not checked") {
    CHECK(recordOf(R"({"type":"user"})").inputTokens == 10);
    CHECK(recordOf(R"({"type":"<delete>"})").inputTokens == 10);
}

TEST_CASE("claude: null written for a checked key skips the line") {
    for (const char* patch : {
             R"({"cwd":null})",
             R"({"version":null})",
             R"({"sessionId":null})",
             R"({"requestId":null})",
             R"({"costUSD":null})",
             R"({"isApiErrorMessage":null})",
             R"({"message":{"id":null}})",
             R"({"message":{"model":null}})",
             R"({"message":{"usage":{"speed":null}}})",
             R"({"message":{"usage":{"cache_read_input_tokens":null}}})",
             R"({"message":{"usage":{"cache_creation_input_tokens":null}}})",
         }) {
        CAPTURE(patch);
        CHECK(isSkipped(patch));
    }
}

TEST_CASE("claude: null elsewhere in the line does not skip it") {
    // The base line already has "parentUuid":null.
    CHECK_FALSE(isSkipped(R"({"message":{"content":null,"stop_reason":null}})"));
    CHECK_FALSE(isSkipped(R"({"message":{"usage":{"service_tier":null}}})"));
}

TEST_CASE("claude: non-integer or negative token counts skip the line") {
    for (const char* patch : {
             R"({"message":{"usage":{"input_tokens":-1}}})",
             R"({"message":{"usage":{"input_tokens":1.5}}})",
             R"({"message":{"usage":{"input_tokens":"10"}}})",
             R"({"message":{"usage":{"output_tokens":-5}}})",
             R"({"message":{"usage":{"output_tokens":null}}})",
             R"({"message":{"usage":{"cache_read_input_tokens":-1}}})",
             R"({"message":{"usage":{"cache_creation_input_tokens":2.5}}})",
             R"({"message":{"usage":{"cache_creation":{"ephemeral_1h_input_tokens":-3}}}})",
             R"({"message":{"usage":{"cache_creation":{"ephemeral_5m_input_tokens":"7"}}}})",
             R"({"message":{"usage":{"input_tokens":"<delete>"}}})",
             R"({"message":{"usage":{"output_tokens":"<delete>"}}})",
         }) {
        CAPTURE(patch);
        CHECK(isSkipped(patch));
    }
}

TEST_CASE("claude: integral numbers written as decimals are integers") {
    CHECK(recordOf(R"({"message":{"usage":{"input_tokens":10.0,"output_tokens":2e1}}})")
              .outputTokens == 20);
}

TEST_CASE("claude: a timestamp that is not ISO-8601 with a zone skips the line") {
    CHECK(isSkipped(R"({"timestamp":"2025-06-08T10:00:00"})"));
    CHECK(isSkipped(R"({"timestamp":"yesterday"})"));
    CHECK(isSkipped(R"({"timestamp":"2025-02-30T10:00:00Z"})"));
    CHECK(isSkipped(R"({"timestamp":1749376800})"));
    CHECK(isSkipped(R"({"timestamp":"<delete>"})"));
}

TEST_CASE("claude: offsets and microseconds are normalised to UTC milliseconds, truncated") {
    CHECK(recordOf(R"({"timestamp":"2025-06-08T01:30:00+02:00"})").tsText ==
          "2025-06-07T23:30:00.000Z");
    const UsageRecord r = recordOf(R"({"timestamp":"2025-06-08T23:59:59.999999Z"})");
    CHECK(r.tsText == "2025-06-08T23:59:59.999Z");
    CHECK(r.day == "2025-06-08");
}

TEST_CASE("claude: a version not starting N.N.N skips the line") {
    CHECK(isSkipped(R"({"version":"1.0"})"));
    CHECK(isSkipped(R"({"version":"v1.0.30"})"));
    CHECK(isSkipped(R"({"version":""})"));
    CHECK(isSkipped(R"({"version":1})"));
    CHECK_FALSE(isSkipped(R"({"version":"2.1.0-beta.3"})"));
    CHECK_FALSE(isSkipped(R"({"version":"<delete>"})"));
}

TEST_CASE("claude: empty ids skip the line") {
    CHECK(isSkipped(R"({"sessionId":""})"));
    CHECK(isSkipped(R"({"requestId":""})"));
    CHECK(isSkipped(R"({"message":{"id":""}})"));
    CHECK(isSkipped(R"({"message":{"model":""}})"));
}

TEST_CASE("claude: checked keys of the wrong type skip the line") {
    CHECK(isSkipped(R"({"costUSD":"0.5"})"));
    CHECK(isSkipped(R"({"sessionId":42})"));
    CHECK(isSkipped(R"({"isApiErrorMessage":"yes"})"));
    CHECK(isSkipped(R"({"cwd":["/w"]})"));
}

TEST_CASE("claude: cache writes come from cache_creation when that object exists") {
    const UsageRecord r = recordOf(
        R"({"message":{"usage":{"cache_creation_input_tokens":999,)"
        R"("cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":50}}}})");
    CHECK(r.cacheCreateTokens == 150);
    CHECK(r.cacheCreate1hTokens == 50);
}

TEST_CASE("claude: without cache_creation all writes are 5-minute ones") {
    const UsageRecord r = recordOf("{}");
    CHECK(r.cacheCreateTokens == 40);
    CHECK(r.cacheCreate1hTokens == 0);
}

TEST_CASE("claude: absent cache counts are zero") {
    const UsageRecord r = recordOf(
        R"({"message":{"usage":{"cache_read_input_tokens":"<delete>","cache_creation_input_tokens":"<delete>"}}})");
    CHECK(r.cacheReadTokens == 0);
    CHECK(r.cacheCreateTokens == 0);
}

TEST_CASE("claude: usage.speed fast sets speed fast; any speed counts as having one") {
    const UsageRecord fast = recordOf(R"({"message":{"usage":{"speed":"fast"}}})");
    CHECK(fast.speed == Speed::Fast);
    CHECK(fast.hasSpeed);
    const UsageRecord standard = recordOf(R"({"message":{"usage":{"speed":"standard"}}})");
    CHECK(standard.speed == Speed::Standard);
    CHECK(standard.hasSpeed);
}

TEST_CASE("claude: fast speed multiplies the cost by the model's multiplier") {
    const UsageRecord standard = recordOf(R"({"message":{"model":"claude-opus-4-6"}})");
    const UsageRecord fast =
        recordOf(R"({"message":{"model":"claude-opus-4-6","usage":{"speed":"fast"}}})");
    CHECK(fast.costUsd == doctest::Approx(6 * standard.costUsd));
}

TEST_CASE("claude: a line's own costUSD is its live cost") {
    const UsageRecord r = recordOf(R"({"costUSD":0.125})");
    CHECK(r.costUsd == 0.125);
    CHECK(r.costSource == CostSource::Live);
}

TEST_CASE("claude: <synthetic> or no model counts tokens at cost 0") {
    const UsageRecord synthetic = recordOf(R"({"message":{"model":"<synthetic>"}})");
    CHECK(synthetic.inputTokens == 10);
    CHECK(synthetic.costUsd == 0.0);
    CHECK(synthetic.costSource == CostSource::RateCard);
    const UsageRecord none = recordOf(R"({"message":{"model":"<delete>"}})");
    CHECK(none.model.empty());
    CHECK(none.costUsd == 0.0);
}

TEST_CASE("claude: an unknown model counts tokens at cost 0, source unknown") {
    const UsageRecord r = recordOf(R"({"message":{"model":"claude-nonexistent-9"}})");
    CHECK(r.outputTokens == 20);
    CHECK(r.costUsd == 0.0);
    CHECK(r.costSource == CostSource::Unknown);
}

TEST_CASE("claude: the session comes from sessionId, else from the path") {
    CHECK(recordOf("{}").sessionId == "s1");
    const std::string line = patched(kBase, R"({"sessionId":"<delete>"})");
    CHECK(parse(line, makeFileContext(Provider::Claude, 0, "-w-app/abc.jsonl", 0))
              .record->sessionId == "abc");
    const LineResult sub =
        parse(line, makeFileContext(Provider::Claude, 2, "-w-app/abc/subagents/agent-1.jsonl", 0));
    CHECK(sub.record->sessionId == "abc");
    CHECK(sub.record->projectSlug == "-w-app");
    CHECK(sub.record->sourcePath == "2/-w-app/abc/subagents/agent-1.jsonl");
}

TEST_CASE("claude: an agent-progress line carries its record in data.message") {
    const std::string line =
        R"({"type":"progress","sessionId":"s1","cwd":"/w/app","version":"2.0.1","isSidechain":false,)"
        R"("timestamp":"2025-06-08T11:00:00.000Z","data":{"type":"agent_progress","message":{)"
        R"("type":"assistant","timestamp":"2025-06-08T10:59:59.500Z","requestId":"req_9",)"
        R"("message":{"id":"msg_9","model":"claude-haiku-4-5-20251001","usage":{"input_tokens":3,)"
        R"("output_tokens":4}}}}})";
    const LineResult r = parse(line);
    REQUIRE(r.kind == LineResult::Kind::Record);
    CHECK(r.record->messageId == "msg_9");
    CHECK(r.record->requestId == "req_9");
    CHECK(r.record->sessionId == "s1");                     // from the outer line
    CHECK(r.record->tsText == "2025-06-08T10:59:59.500Z");  // the inner one wins
    CHECK(r.record->model == "claude-haiku-4-5-20251001");
    CHECK(r.record->outputTokens == 4);
    CHECK_FALSE(r.record->isSidechain);
    CHECK(r.record->rawExtras == R"({"agent_progress":true})");
}

TEST_CASE("claude: an agent-progress line follows the same skip rules") {
    const std::string line =
        R"({"type":"progress","sessionId":"s1","timestamp":"2025-06-08T11:00:00.000Z",)"
        R"("data":{"message":{"requestId":null,"message":{"id":"m","usage":{"input_tokens":1,"output_tokens":1}}}}})";
    CHECK(parse(line).kind == LineResult::Kind::Skipped);
}

TEST_CASE("claude: isSidechain true marks a sidechain record keyed by message and session") {
    const UsageRecord r = recordOf(R"({"isSidechain":true})");
    CHECK(r.isSidechain);
    CHECK(r.eventKey == claudeSessionKey("msg_1", "s1"));
}

TEST_CASE("claude: without requestId the key is message.id and session") {
    CHECK(recordOf(R"({"requestId":"<delete>"})").eventKey == claudeSessionKey("msg_1", "s1"));
}

TEST_CASE("claude: id-less records are keyed by line hash and identical lines before") {
    const std::string line = patched(kBase, R"({"message":{"id":"<delete>"}})");
    const std::string other = patched(kBase, R"({"message":{"id":"<delete>"},"cwd":"/x"})");
    ClaudeFileState state;
    const LineResult a = parseClaudeLine(line, 0, ctx(), state, prices());
    const LineResult b = parseClaudeLine(other, 100, ctx(), state, prices());
    const LineResult c = parseClaudeLine(line, 200, ctx(), state, prices());
    REQUIRE(a.kind == LineResult::Kind::Record);
    REQUIRE(c.kind == LineResult::Kind::Record);
    CHECK(a.record->lineHash == lineHash(line));
    CHECK(a.record->identicalBefore == 0);
    CHECK(b.record->identicalBefore == 0);
    CHECK(c.record->identicalBefore == 1);
    CHECK(a.record->eventKey == claudeLineKey("s1", lineHash(line), 0));
    CHECK(c.record->eventKey == claudeLineKey("s1", lineHash(line), 1));
    CHECK(state.idlessSeen.at(lineHash(line)) == 2);
}

TEST_CASE("claude: a skipped line leaves the state as it was") {
    ClaudeFileState state;
    const std::string bad =
        patched(kBase, R"({"message":{"id":"<delete>"},"timestamp":"not a time"})");
    CHECK(parseClaudeLine(bad, 0, ctx(), state, prices()).kind == LineResult::Kind::Skipped);
    CHECK(state.idlessSeen.empty());
}

TEST_CASE("claude: the state survives saving and loading") {
    ClaudeFileState state;
    state.idlessSeen["0123456789abcdef"] = 3;
    state.idlessSeen["fedcba9876543210"] = 1;
    Result<ClaudeFileState> loaded = loadClaudeState(saveClaudeState(state));
    REQUIRE(loaded.ok());
    CHECK(*loaded == state);
    CHECK(loadClaudeState("").value() == ClaudeFileState{});
    CHECK_FALSE(loadClaudeState("{\"idless\":[1]}").ok());
    CHECK_FALSE(loadClaudeState("garbage").ok());
}

TEST_CASE("claude: a fixture transcript read in pieces gives the records of one read") {
    const std::string name = "d3ad4cdc-5657-435d-98fa-0035d53e383d.jsonl";
    const std::string bytes = testing::readFile(
        testing::sharedDir() + "/fixtures/claude/projects/-Users-test-dev-ai-music/" + name);
    const FileContext file =
        makeFileContext(Provider::Claude, 0, "-Users-test-dev-ai-music/" + name, 0);
    const ChunkResult whole = testing::parseWhole(file, bytes);
    CHECK(whole.records.size() > 50);
    CHECK(whole.consumedBytes == bytes.size());
    const ChunkResult pieces = testing::parseInPieces(
        file, bytes,
        {1, 777, 4096, bytes.size() / 3, bytes.size() / 2, bytes.size() / 2 + 1, bytes.size() - 2});
    CHECK(pieces.records == whole.records);
    CHECK(pieces.skippedLines == whole.skippedLines);
    CHECK(pieces.consumedBytes == bytes.size());
}

TEST_CASE("claude: id-less lines read in pieces keep their identical-line counts") {
    const std::string line = patched(kBase, R"({"message":{"id":"<delete>"}})");
    const std::string bytes = testing::fileOf({line, line, kBase.data(), line});
    const ChunkResult whole = testing::parseWhole(ctx(), bytes);
    REQUIRE(whole.records.size() == 4);
    CHECK(whole.records[3].identicalBefore == 2);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 5; i < bytes.size(); i += 97) cuts.push_back(i);
    CHECK(testing::parseInPieces(ctx(), bytes, cuts).records == whole.records);
}

TEST_CASE("claude: a line without its newline is not consumed") {
    const std::string bytes = std::string(kBase) + "\n" + std::string(kBase);
    const ChunkResult r = testing::parseWhole(ctx(), bytes);
    CHECK(r.records.size() == 1);
    CHECK(r.consumedBytes == kBase.size() + 1);
}

TEST_CASE("claude: a line longer than the limit is skipped and consumed") {
    std::string huge = std::string(kBase);
    huge.insert(1, R"("pad":")" + std::string(kMaxLineBytes, 'x') + R"(",)");
    const std::string bytes = huge + "\n" + std::string(kBase) + "\n";
    const ChunkResult r = testing::parseWhole(ctx(), bytes);
    CHECK(r.skippedLines == 1);
    CHECK(r.records.size() == 1);
    CHECK(r.consumedBytes == bytes.size());
}

}  // namespace
}  // namespace etld::sources
