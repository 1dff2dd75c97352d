// Prices: both file shapes, merging, look-up order, tiers on both sides of
// the threshold, the 1-hour cache rule, fast multipliers, and the embedded
// table (sources.md, "Prices").
#include <doctest/doctest.h>

#include "sources/pricing.h"
#include "sources_test_util.h"

namespace etld::sources {
namespace {

using testing::prices;

double cost(const PriceTable& t, std::string_view model, const TokenCounts& tokens,
            Speed speed = Speed::Standard) {
    return priceTokens(t, model, speed, tokens).costUsd;
}

PriceTable tableOf(std::string_view json) {
    const Result<PriceTable> t = PriceTable::fromJson(json);
    REQUIRE(t.ok());
    return t.value();
}

TEST_CASE("pricing: the embedded table loads and equals data/prices.json") {
    CHECK(prices().size() > 200);
    Result<PriceTable> fromPath = PriceTable::fromFile(testing::sourceRoot() + "/data/prices.json");
    REQUIRE(fromPath.ok());
    CHECK(fromPath->size() == prices().size());
    CHECK(PriceTable::embeddedJson() ==
          testing::readFile(testing::sourceRoot() + "/data/prices.json"));
}

TEST_CASE("pricing: every model the fixtures and the spec name resolves") {
    for (const char* model :
         {"claude-sonnet-4-20250514", "gpt-5.4", "gpt-5", "gpt-5-codex", "gemini-2.5-pro",
          "claude-3-5-haiku-20241022", "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"}) {
        CAPTURE(model);
        CHECK(prices().find(model) != nullptr);
    }
}

TEST_CASE("pricing: claude-3-5-haiku-20241022 has the spec's rates") {
    const ModelPrice* p = prices().find("claude-3-5-haiku-20241022");
    REQUIRE(p != nullptr);
    CHECK(p->inputPerToken == doctest::Approx(0.8e-6));
    CHECK(p->outputPerToken == doctest::Approx(4e-6));
    CHECK(p->cacheWritePerToken == doctest::Approx(1.0e-6));
    CHECK(p->cacheReadPerToken == doctest::Approx(0.08e-6));
}

TEST_CASE("pricing: look-up tries exact, then without the date, then with prefixes") {
    const PriceTable t = tableOf(R"({
        "m-20250101": {"input_cost_per_token": 1},
        "m": {"input_cost_per_token": 2},
        "anthropic/p": {"input_cost_per_token": 3},
        "openai/q": {"input_cost_per_token": 4},
        "vertex_ai/r-x": {"input_cost_per_token": 5}
    })");
    std::string matched;
    CHECK(t.find("m-20250101", &matched)->inputPerToken == 1);
    CHECK(matched == "m-20250101");
    CHECK(t.find("m-20991231", &matched)->inputPerToken == 2);
    CHECK(matched == "m");
    CHECK(t.find("p", &matched)->inputPerToken == 3);
    CHECK(matched == "anthropic/p");
    CHECK(t.find("q-20250101")->inputPerToken == 4);
    CHECK(t.find("r-x")->inputPerToken == 5);
    CHECK(t.find("m-2025010") == nullptr);  // not a date
    CHECK(t.find("nothing") == nullptr);
    CHECK(t.find("") == nullptr);
}

TEST_CASE("pricing: the embedded table strips dates the table lacks") {
    std::string matched;
    REQUIRE(prices().find("claude-opus-4-8-20261201", &matched) != nullptr);
    CHECK(matched == "claude-opus-4-8");
}

TEST_CASE("pricing: Anthropic tiers each component above 200k only") {
    // claude-sonnet-4-20250514: 3/15/3.75/0.30 per million, above 200k 6/22.5/7.5/0.60.
    const PriceTable& t = prices();
    CHECK(cost(t, "claude-sonnet-4-20250514", {200000, 0, 0, 0, 0}) == doctest::Approx(0.6));
    CHECK(cost(t, "claude-sonnet-4-20250514", {200001, 0, 0, 0, 0}) ==
          doctest::Approx(0.6 + 6e-6).epsilon(1e-12));
    CHECK(cost(t, "claude-sonnet-4-20250514", {300000, 0, 0, 0, 0}) == doctest::Approx(0.6 + 0.6));
    // Each component on its own: 150k input and 150k cache read stay at base.
    CHECK(cost(t, "claude-sonnet-4-20250514", {150000, 0, 150000, 0, 0}) ==
          doctest::Approx(0.45 + 0.045));
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 250000, 0, 0, 0}) ==
          doctest::Approx(200000 * 15e-6 + 50000 * 22.5e-6));
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 0, 250000, 0, 0}) ==
          doctest::Approx(200000 * 0.3e-6 + 50000 * 0.6e-6));
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 0, 0, 250000, 0}) ==
          doctest::Approx(200000 * 3.75e-6 + 50000 * 7.5e-6));
}

TEST_CASE("pricing: 1-hour cache writes use the above_1hr rate, doubled input above 200k") {
    const PriceTable& t = prices();
    // Base 1h rate of claude-sonnet-4: cache_creation_input_token_cost_above_1hr = 6e-6.
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 0, 0, 1000, 1000}) ==
          doctest::Approx(1000 * 6e-6));
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 0, 0, 1500, 1000}) ==
          doctest::Approx(1000 * 6e-6 + 500 * 3.75e-6));
    // Above 200k: twice the above-200k input rate (2 * 6e-6).
    CHECK(cost(t, "claude-sonnet-4-20250514", {0, 0, 0, 250000, 250000}) ==
          doctest::Approx(200000 * 6e-6 + 50000 * 12e-6));
    // A table entry without the 1h field: twice the input rate.
    const PriceTable plain = tableOf(R"({"claude-x": {"input_cost_per_token": 1e-6,
        "output_cost_per_token": 5e-6, "cache_creation_input_token_cost": 1.25e-6}})");
    CHECK(cost(plain, "claude-x", {0, 0, 0, 100, 100}) == doctest::Approx(100 * 2e-6));
}

TEST_CASE("pricing: OpenAI moves the whole record above the tier when input+cached exceeds it") {
    // gpt-5.4: 2.5/15/0.25 per million, above 272k 5/22.5/0.5.
    const PriceTable& t = prices();
    CHECK(cost(t, "gpt-5.4", {200000, 1000, 72000, 0, 0}) ==
          doctest::Approx(200000 * 2.5e-6 + 1000 * 15e-6 + 72000 * 0.25e-6));
    CHECK(cost(t, "gpt-5.4", {200001, 1000, 72000, 0, 0}) ==
          doctest::Approx(200001 * 5e-6 + 1000 * 22.5e-6 + 72000 * 0.5e-6));
}

TEST_CASE("pricing: Google tiers gemini-2.5-pro at 200k the same way") {
    const PriceTable& t = prices();
    CHECK(cost(t, "gemini-2.5-pro", {100000, 10, 100000, 0, 0}) ==
          doctest::Approx(100000 * 1.25e-6 + 10 * 10e-6 + 100000 * 0.125e-6));
    CHECK(cost(t, "gemini-2.5-pro", {100000, 10, 100001, 0, 0}) ==
          doctest::Approx(100000 * 2.5e-6 + 10 * 15e-6 + 100001 * 0.25e-6));
}

TEST_CASE("pricing: models without tier rates never tier") {
    CHECK(cost(prices(), "gpt-5", {1000000, 0, 0, 0, 0}) == doctest::Approx(1.25));
    CHECK(cost(prices(), "gpt-5-codex", {1000000, 0, 0, 0, 0}) == doctest::Approx(1.25));
}

TEST_CASE("pricing: fast multipliers come from our own key") {
    const TokenCounts t{1000, 1000, 0, 0, 0};
    for (const auto& [model, mult] :
         {std::pair{"claude-opus-4-6", 6.0}, std::pair{"claude-opus-4-6-20260205", 6.0},
          std::pair{"claude-opus-4-7", 6.0}, std::pair{"claude-opus-4-8", 2.0},
          std::pair{"claude-sonnet-4-20250514", 1.0}}) {
        CAPTURE(model);
        CHECK(cost(prices(), model, t, Speed::Fast) ==
              doctest::Approx(mult * cost(prices(), model, t)));
    }
}

TEST_CASE("pricing: LiteLLM's provider_specific_entry is not a fast multiplier") {
    const PriceTable t = tableOf(R"({"claude-z": {"input_cost_per_token": 1e-6,
        "output_cost_per_token": 1e-6, "provider_specific_entry": {"fast": 6.0}}})");
    CHECK(t.find("claude-z")->fastMultiplier == 1.0);
    CHECK(cost(t, "claude-z", {10, 0, 0, 0, 0}, Speed::Fast) == doctest::Approx(10e-6));
}

TEST_CASE("pricing: synthetic and empty models cost 0, unknown ones are marked unknown") {
    const TokenCounts t{10, 10, 10, 10, 0};
    CHECK(priceTokens(prices(), "<synthetic>", Speed::Standard, t).costUsd == 0.0);
    CHECK(priceTokens(prices(), "<synthetic>", Speed::Standard, t).source == CostSource::RateCard);
    CHECK(priceTokens(prices(), "", Speed::Standard, t).costUsd == 0.0);
    const PriceQuote unknown = priceTokens(prices(), "mystery-model", Speed::Standard, t);
    CHECK(unknown.costUsd == 0.0);
    CHECK(unknown.source == CostSource::Unknown);
}

TEST_CASE("pricing: a record's live cost wins over the table") {
    UsageRecord r;
    r.model = "claude-sonnet-4-20250514";
    r.inputTokens = 1000;
    r.liveCostUsd = 0.5;
    priceRecord(prices(), r);
    CHECK(r.costUsd == 0.5);
    CHECK(r.costSource == CostSource::Live);
    r.liveCostUsd.reset();
    priceRecord(prices(), r);
    CHECK(r.costUsd == doctest::Approx(1000 * 3e-6));
    CHECK(r.costSource == CostSource::RateCard);
}

TEST_CASE("pricing: StackUnderflow's cached shape loads") {
    Result<PriceTable> t =
        PriceTable::fromFile(testing::sharedDir() + "/fixtures/pricing-litellm-sample.json");
    REQUIRE(t.ok());
    CHECK(t->size() == 19);
    const ModelPrice* p = t->find("claude-3-5-haiku-20241022");
    REQUIRE(p != nullptr);
    CHECK(p->inputPerToken == doctest::Approx(8e-7));
    CHECK(p->cacheWritePerToken == doctest::Approx(1e-6));
    CHECK(p->cacheReadPerToken == doctest::Approx(8e-8));
    CHECK(p->perComponentTier);
    CHECK(p->tierThresholdTokens == 0);
}

TEST_CASE("pricing: an override file adds entries and replaces whole entries") {
    PriceTable base = tableOf(R"({
        "claude-opus-4-6": {"input_cost_per_token": 5e-6, "output_cost_per_token": 2.5e-5,
                            "cache_read_input_token_cost": 5e-7, "etld_fast_multiplier": 6},
        "keep": {"input_cost_per_token": 1e-6}})");
    const PriceTable overrides = tableOf(R"({"pricing": {
        "claude-opus-4-6": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
        "new-model": {"input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6}}})");
    base.merge(overrides);
    CHECK(base.size() == 3);
    const ModelPrice* p = base.find("claude-opus-4-6");
    CHECK(p->inputPerToken == 1e-6);
    CHECK(p->cacheReadPerToken == 1e-6);  // not kept from the replaced entry: falls back to input
    CHECK(p->fastMultiplier == 1.0);
    CHECK(base.find("keep")->inputPerToken == 1e-6);
    CHECK(base.find("new-model")->outputPerToken == 4e-6);
}

TEST_CASE("pricing: entries without input or output rates are not prices") {
    const PriceTable t = tableOf(R"({"sample_spec": {"max_tokens": "x"},
        "img": {"output_cost_per_image": 0.04}, "ok": {"output_cost_per_token": 1e-6}})");
    CHECK(t.size() == 1);
    CHECK(t.find("ok") != nullptr);
}

TEST_CASE("pricing: bad input is an error, not an empty table") {
    CHECK_FALSE(PriceTable::fromJson("{").ok());
    CHECK_FALSE(PriceTable::fromJson("[]").ok());
    Result<PriceTable> missing = PriceTable::fromFile("/nonexistent/prices.json");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().code == "pricing_io");
}

}  // namespace
}  // namespace etld::sources
