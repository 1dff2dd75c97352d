// Prices: a table of per-token rates and the rules that turn a record's
// tokens into dollars (sources.md, "Prices").
//
// The table is read from JSON in one of two shapes:
//  * LiteLLM's `model_prices_and_context_window.json`: an object of model id
//    -> entry, rates in USD per token (`input_cost_per_token`,
//    `output_cost_per_token`, `cache_creation_input_token_cost`,
//    `cache_creation_input_token_cost_above_1hr`,
//    `cache_read_input_token_cost`, and `*_above_<N>k_tokens` tier rates).
//    Entries without an input or output rate (LiteLLM's `sample_spec`, image
//    or audio-only models) are not prices of ours and are left out.
//  * StackUnderflow's cached shape: `{"pricing": {model:
//    {input_cost_per_token, output_cost_per_token,
//    cache_creation_cost_per_token, cache_read_cost_per_token}}}`.
// Our own key `etld_fast_multiplier` (a number) gives a model's multiplier
// for `speed: fast`; LiteLLM's `provider_specific_entry` is ignored (it says
// 6 for opus-4-8, where ccusage charges 2). The embedded table lives in
// data/prices.json and is compiled into the library (embed_file.py).
//
// Look-up: the exact id; then the id without a trailing `-YYYYMMDD`; then
// each of the prefixes `anthropic/`, `openai/`, `gemini/`, `vertex_ai/`
// before the exact id, then before the stripped id; else unknown.
//
// Cost of one record, in double precision (costs are summed per day by the
// marts, never tiered per day):
//  * `<synthetic>` or no model: 0, source rate_card (nothing was billed);
//  * a model the table does not know: 0, source unknown;
//  * otherwise input·in + output·out + cache_read·cr + 5-minute
//    writes·cw + 1-hour writes·cw1h, where a missing cache-read or
//    cache-write rate falls back to the input rate and a missing 1-hour rate
//    is twice the input rate;
//  * tiers: a model with `*_above_<N>k_tokens` rates has a tier at N·1000
//    tokens of one record. Anthropic models (provider `anthropic`, or a
//    `claude` id) tier each component on its own, only above the threshold:
//    `min(n, T)·base + max(0, n − T)·above`; the 1-hour write's above rate is
//    twice the above-tier input rate. Every other model moves the whole
//    record to the above rates when its input including cached reads
//    (input + cache_read) exceeds T; exactly T stays at base. A component
//    without an above rate keeps its base rate;
//  * `speed == fast` multiplies the result by the model's fast multiplier
//    (1 when the entry has none).
// A line's own cost (Claude `costUSD`) is used as it is, source live; see
// priceRecord.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sources/record.h"
#include "util/result.h"

namespace etld::sources {

struct ModelPrice {
    double inputPerToken = 0.0;
    double outputPerToken = 0.0;
    double cacheReadPerToken = 0.0;
    double cacheWritePerToken = 0.0;    // 5-minute cache writes
    double cacheWrite1hPerToken = 0.0;  // 1-hour cache writes

    // Tier: 0 = none. Above-tier rates equal the base ones where the table
    // gives none.
    std::int64_t tierThresholdTokens = 0;
    double inputAbovePerToken = 0.0;
    double outputAbovePerToken = 0.0;
    double cacheReadAbovePerToken = 0.0;
    double cacheWriteAbovePerToken = 0.0;
    double cacheWrite1hAbovePerToken = 0.0;

    // Anthropic's rule: each component tiered on its own. Otherwise the whole
    // record moves to the above rates.
    bool perComponentTier = false;
    double fastMultiplier = 1.0;

    bool operator==(const ModelPrice&) const = default;
};

class PriceTable {
  public:
    // Either shape (see above); an error if the text is not a JSON object.
    static Result<PriceTable> fromJson(std::string_view text);
    // Reads and parses a file (`--pricing FILE`).
    static Result<PriceTable> fromFile(const std::string& path);
    // The table compiled into the library from data/prices.json.
    static Result<PriceTable> fromEmbedded();
    // The embedded table with a price file's entries merged over it (empty
    // path: the embedded table alone); errors name the file.
    static Result<PriceTable> load(const std::string& overridesPath);
    // The embedded JSON text itself.
    static std::string_view embeddedJson();

    // Adds the other table's entries; an entry of the same model is replaced
    // whole (its fast multiplier included).
    void merge(const PriceTable& overrides);

    // The entry for a model id by the look-up order above; nullptr if none.
    // `matched` receives the table key that answered.
    const ModelPrice* find(std::string_view model, std::string* matched = nullptr) const;

    void set(std::string model, ModelPrice price) { models_[std::move(model)] = price; }
    std::size_t size() const { return models_.size(); }

  private:
    std::map<std::string, ModelPrice, std::less<>> models_;
};

// The tokens a cost is computed from: exactly what an event stores.
struct TokenCounts {
    std::int64_t input = 0;
    std::int64_t output = 0;
    std::int64_t cacheRead = 0;
    std::int64_t cacheCreate = 0;    // all cache writes
    std::int64_t cacheCreate1h = 0;  // the 1-hour share of cacheCreate
};

struct PriceQuote {
    double costUsd = 0.0;
    CostSource source = CostSource::RateCard;
};

// Prices tokens alone (re-pricing a stored event uses exactly this).
PriceQuote priceTokens(const PriceTable& table, std::string_view model, Speed speed,
                       const TokenCounts& tokens);

// Fills cost_usd and cost_source of a record: its own live cost when it has
// one, otherwise priceTokens over its tokens.
void priceRecord(const PriceTable& table, UsageRecord& record);

// The model id Claude Code writes for responses it made up itself (errors,
// interruptions): tokens count, cost 0.
constexpr std::string_view kSyntheticModel = "<synthetic>";

}  // namespace etld::sources
