// Codex rollout parser: the shared fixture as shipped, repeats, totals-only
// events, last_token_usage, model override and fallback, skip rules, state
// and reading in pieces (sources.md, "Codex CLI").
#include <doctest/doctest.h>

#include "sources/codex.h"
#include "sources_test_util.h"

namespace etld::sources {
namespace {

using testing::prices;

const FileContext& ctx() {
    static const FileContext c =
        makeFileContext(Provider::Codex, 0, "2026/04/19/rollout-2026-04-19T20-00-00-abc.jsonl", 0);
    return c;
}

std::string fixturePath() {
    return testing::sharedDir() +
           "/fixtures/codex/sessions/2026/04/19/rollout-2026-04-19T20-00-00-test-uuid-0001.jsonl";
}

std::string meta(std::string_view cwd = "/Users/me/app") {
    return R"({"timestamp":"2026-05-01T10:00:00.000Z","type":"session_meta","payload":{"id":"sess-1","cwd":")" +
           std::string(cwd) + R"(","model":"o3"}})";
}

std::string turn(std::string_view model) {
    return R"({"timestamp":"2026-05-01T10:00:01.000Z","type":"turn_context","payload":{"model":")" +
           std::string(model) + R"("}})";
}

// A token_count event; `info` is the JSON text of payload.info.
std::string tokenCount(std::string_view ts, std::string_view info) {
    return R"({"timestamp":")" + std::string(ts) +
           R"(","type":"event_msg","payload":{"type":"token_count","info":)" + std::string(info) +
           "}}";
}

std::string usage(int in, int cached, int out, int reasoning) {
    return R"({"input_tokens":)" + std::to_string(in) + R"(,"cached_input_tokens":)" +
           std::to_string(cached) + R"(,"output_tokens":)" + std::to_string(out) +
           R"(,"reasoning_output_tokens":)" + std::to_string(reasoning) + "}";
}

std::string lastOnly(std::string_view ts, int in, int cached, int out, int reasoning) {
    return tokenCount(ts, R"({"last_token_usage":)" + usage(in, cached, out, reasoning) + "}");
}

std::string totalOnly(std::string_view ts, int in, int cached, int out, int reasoning) {
    return tokenCount(ts, R"({"total_token_usage":)" + usage(in, cached, out, reasoning) + "}");
}

TEST_CASE("codex: the shipped fixture gives two gpt-5.4 events and one skipped line") {
    const std::string bytes = testing::readFile(fixturePath());
    const FileContext file = makeFileContext(
        Provider::Codex, 0, "2026/04/19/rollout-2026-04-19T20-00-00-test-uuid-0001.jsonl", 0);
    const ChunkResult r = testing::parseWhole(file, bytes);
    CHECK(r.skippedLines == 1);
    CHECK(r.consumedBytes == bytes.size());
    const std::vector<UsageRecord> events = resolveEvents(r.records);
    REQUIRE(events.size() == 2);
    std::int64_t input = 0, cacheRead = 0, output = 0, reasoning = 0;
    double cost = 0.0;
    for (const UsageRecord& e : events) {
        CHECK(e.model == "gpt-5.4");
        CHECK(e.day == "2026-04-19");
        CHECK(e.sessionId == "test-uuid-0001");
        CHECK(e.projectSlug == "-Users-test-dev-sample-project");
        CHECK(e.cwd == "/Users/test/dev/sample-project");
        CHECK(e.costSource == CostSource::RateCard);
        CHECK(e.rawExtras.empty());
        input += e.inputTokens;
        cacheRead += e.cacheReadTokens;
        output += e.outputTokens;
        reasoning += e.reasoningTokens;
        cost += e.costUsd;
    }
    CHECK(input == 1700);
    CHECK(cacheRead == 300);
    CHECK(output == 550);
    CHECK(reasoning == 200);
    CHECK(cost == doctest::Approx(0.012575).epsilon(1e-9));
}

TEST_CASE("codex: the fixture read in pieces gives the records of one read") {
    const std::string bytes = testing::readFile(fixturePath());
    const ChunkResult whole = testing::parseWhole(ctx(), bytes);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 3; i < bytes.size(); i += 61) cuts.push_back(i);
    const ChunkResult pieces = testing::parseInPieces(ctx(), bytes, cuts);
    CHECK(pieces.records == whole.records);
    CHECK(pieces.skippedLines == whole.skippedLines);
}

TEST_CASE("codex: tokens split cached input out of input; reasoning stays in output") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf(
                   {meta(), turn("gpt-5"), lastOnly("2026-05-01T10:00:02Z", 1000, 300, 200, 50)}));
    REQUIRE(r.records.size() == 1);
    const UsageRecord& e = r.records[0];
    CHECK(e.inputTokens == 700);
    CHECK(e.cacheReadTokens == 300);
    CHECK(e.outputTokens == 200);
    CHECK(e.reasoningTokens == 50);
    CHECK(e.cacheCreateTokens == 0);
    CHECK(e.costUsd == doctest::Approx(700 * 1.25e-6 + 300 * 0.125e-6 + 200 * 10e-6));
}

TEST_CASE("codex: cached tokens above input are capped at input") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf({turn("gpt-5"), lastOnly("2026-05-01T10:00:02Z", 100, 250, 10, 0)}));
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].inputTokens == 0);
    CHECK(r.records[0].cacheReadTokens == 100);
}

TEST_CASE("codex: a total equal to the previous one is a repeat and ignored") {
    const std::string both = tokenCount("2026-05-01T10:00:03Z",
                                        R"({"total_token_usage":)" + usage(100, 0, 10, 0) +
                                            R"(,"last_token_usage":)" + usage(100, 0, 10, 0) + "}");
    const ChunkResult r = testing::parseWhole(ctx(), testing::fileOf({turn("gpt-5"), both, both}));
    CHECK(r.records.size() == 1);
    CHECK(r.skippedLines == 0);
}

TEST_CASE("codex: totals-only events count the difference from the previous total") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf({turn("gpt-5"), totalOnly("2026-05-01T10:00:02Z", 100, 20, 10, 5),
                                totalOnly("2026-05-01T10:00:03Z", 250, 20, 30, 5)}));
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0].inputTokens == 80);
    CHECK(r.records[0].cacheReadTokens == 20);
    CHECK(r.records[1].inputTokens == 150);
    CHECK(r.records[1].cacheReadTokens == 0);
    CHECK(r.records[1].outputTokens == 20);
    CHECK(r.records[1].reasoningTokens == 0);
}

TEST_CASE("codex: a smaller total saturates each field at zero") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf({turn("gpt-5"), totalOnly("2026-05-01T10:00:02Z", 100, 50, 10, 5),
                                totalOnly("2026-05-01T10:00:03Z", 40, 60, 30, 0)}));
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[1].inputTokens == 0);
    CHECK(r.records[1].cacheReadTokens == 0);
    CHECK(r.records[1].outputTokens == 20);
    CHECK(r.records[1].reasoningTokens == 0);
}

TEST_CASE("codex: last_token_usage is used over the difference of totals") {
    const std::string both = tokenCount("2026-05-01T10:00:03Z",
                                        R"({"total_token_usage":)" + usage(5000, 0, 500, 0) +
                                            R"(,"last_token_usage":)" + usage(40, 0, 4, 0) + "}");
    const ChunkResult r = testing::parseWhole(ctx(), testing::fileOf({turn("gpt-5"), both}));
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].inputTokens == 40);
    CHECK(r.records[0].outputTokens == 4);
}

TEST_CASE("codex: all-zero events and info null are ignored, not skipped") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf({turn("gpt-5"), lastOnly("2026-05-01T10:00:02Z", 0, 0, 0, 0),
                                tokenCount("2026-05-01T10:00:03Z", "null"),
                                tokenCount("2026-05-01T10:00:04Z", "{}")}));
    CHECK(r.records.empty());
    CHECK(r.skippedLines == 0);
}

TEST_CASE("codex: turn_context sets the model; a token_count model overrides it") {
    const std::string withModel =
        tokenCount("2026-05-01T10:00:03Z",
                   R"({"model":"gpt-5.4","last_token_usage":)" + usage(1, 0, 1, 0) + "}");
    const ChunkResult r = testing::parseWhole(
        ctx(),
        testing::fileOf({meta(), turn("gpt-5-codex"), lastOnly("2026-05-01T10:00:02Z", 1, 0, 1, 0),
                         withModel, lastOnly("2026-05-01T10:00:04Z", 2, 0, 2, 0)}));
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[0].model == "gpt-5-codex");  // not session_meta's o3
    CHECK(r.records[1].model == "gpt-5.4");
    CHECK(r.records[2].model == "gpt-5.4");
}

TEST_CASE("codex: before any model the record is gpt-5 marked as a fallback") {
    const ChunkResult r = testing::parseWhole(
        ctx(), testing::fileOf({meta(), lastOnly("2026-05-01T10:00:02Z", 10, 0, 1, 0),
                                turn("gpt-5.4"), lastOnly("2026-05-01T10:00:03Z", 10, 0, 1, 0)}));
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[0].model == "gpt-5");
    CHECK(r.records[0].rawExtras == R"({"model_fallback":true})");
    CHECK(r.records[1].model == "gpt-5.4");
    CHECK(r.records[1].rawExtras.empty());
}

TEST_CASE("codex: session and project come from session_meta, else from the path") {
    const std::string ev = lastOnly("2026-05-01T10:00:02Z", 10, 0, 1, 0);
    const ChunkResult with =
        testing::parseWhole(ctx(), testing::fileOf({meta("/Users/me/app"), ev}));
    CHECK(with.records[0].sessionId == "sess-1");
    CHECK(with.records[0].projectSlug == "-Users-me-app");
    CHECK(with.records[0].cwd == "/Users/me/app");
    const ChunkResult without = testing::parseWhole(ctx(), testing::fileOf({ev}));
    CHECK(without.records[0].sessionId == "rollout-2026-04-19T20-00-00-abc");
    CHECK(without.records[0].projectSlug == "codex-rollout-2026-04-19T20-00-00-abc");
    CHECK(without.records[0].cwd.empty());
}

TEST_CASE("codex: an unparseable timestamp skips the record and leaves the state") {
    CodexFileState state;
    state.model = "gpt-5";
    const std::string bad = totalOnly("not a time", 100, 0, 10, 0);
    CHECK(parseCodexLine(bad, 0, ctx(), state, prices()).kind == LineResult::Kind::Skipped);
    CHECK_FALSE(state.previousTotal.has_value());
    CHECK(
        parseCodexLine(totalOnly("2026-05-01T10:00:02Z", 100, 0, 10, 0), 1, ctx(), state, prices())
            .record->inputTokens == 100);
}

TEST_CASE("codex: invalid counts and malformed JSON are skipped lines") {
    CodexFileState state;
    CHECK(parseCodexLine(
              tokenCount("2026-05-01T10:00:02Z", R"({"last_token_usage":{"input_tokens":-1}})"), 0,
              ctx(), state, prices())
              .kind == LineResult::Kind::Skipped);
    CHECK(parseCodexLine(
              tokenCount("2026-05-01T10:00:02Z", R"({"last_token_usage":{"output_tokens":"9"}})"),
              0, ctx(), state, prices())
              .kind == LineResult::Kind::Skipped);
    CHECK(
        parseCodexLine(R"({"timestamp": "2026-05-01T10:00:02Z", "type": "event_msg", "payload": {)",
                       0, ctx(), state, prices())
            .kind == LineResult::Kind::Skipped);
}

TEST_CASE("codex: the key is timestamp, model and the counts as written") {
    const ChunkResult r = testing::parseWhole(
        ctx(),
        testing::fileOf({turn("gpt-5"), lastOnly("2026-05-01T10:00:02.123456Z", 100, 20, 10, 5)}));
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0].eventKey ==
          codexKey("2026-05-01T10:00:02.123Z", "gpt-5", {100, 20, 10, 5, 110}));
    const std::string withTotal = tokenCount(
        "2026-05-01T10:00:02Z",
        R"({"last_token_usage":{"input_tokens":100,"output_tokens":10,"total_tokens":777}})");
    CHECK(testing::parseWhole(ctx(), testing::fileOf({turn("gpt-5"), withTotal}))
              .records[0]
              .eventKey == codexKey("2026-05-01T10:00:02.000Z", "gpt-5", {100, 0, 10, 0, 777}));
}

TEST_CASE("codex: the state survives saving and loading") {
    CodexFileState state;
    state.sessionId = "s";
    state.cwd = "/w \"quoted\"";
    state.model = "gpt-5.4";
    state.previousTotal = CodexUsage{10, 2, 3, 1, 13};
    Result<CodexFileState> loaded = loadCodexState(saveCodexState(state));
    REQUIRE(loaded.ok());
    CHECK(*loaded == state);
    state.previousTotal->total.reset();
    CHECK(loadCodexState(saveCodexState(state)).value() == state);
    CHECK(loadCodexState("").value() == CodexFileState{});
    CHECK_FALSE(loadCodexState(R"({"prev":{"in":"x"}})").ok());
}

TEST_CASE("codex: totals-only events read in pieces keep the previous total") {
    std::vector<std::string> lines = {meta(), turn("gpt-5.4")};
    for (int i = 1; i <= 20; ++i)
        lines.push_back(totalOnly(
            "2026-05-01T10:00:" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "Z", 100 * i,
            10 * i, 7 * i, i));
    lines.push_back(lines.back());  // a repeat
    const std::string bytes = testing::fileOf(lines);
    const ChunkResult whole = testing::parseWhole(ctx(), bytes);
    CHECK(whole.records.size() == 20);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 17; i < bytes.size(); i += 131) cuts.push_back(i);
    CHECK(testing::parseInPieces(ctx(), bytes, cuts).records == whole.records);
}

}  // namespace
}  // namespace etld::sources
