#include "sources/pricing.h"

#include <rapidjson/error/en.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>

#include "sources/json_util.h"

namespace etld::sources {

// Defined by the file embed_file.py generates from data/prices.json.
namespace embedded {
extern const unsigned char kPricesJson[];
extern const std::size_t kPricesJsonSize;
}  // namespace embedded

using rapidjson::Value;

namespace {

// Our own key for the `speed: fast` multiplier (not a LiteLLM field).
constexpr std::string_view kFastMultiplierKey = "etld_fast_multiplier";

std::optional<double> number(const Value& entry, std::string_view name) {
    const Value* v = json::member(entry, name);
    if (v == nullptr || !v->IsNumber()) return std::nullopt;
    return v->GetDouble();
}

std::optional<double> firstNumber(const Value& entry, std::string_view a, std::string_view b) {
    if (auto v = number(entry, a)) return v;
    return number(entry, b);
}

// The rate names that may carry an `_above_<N>k_tokens` tier.
constexpr std::array<std::string_view, 5> kTieredRates = {
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
};

// N of `<rate>_above_<N>k_tokens` when `key` has that form, else 0.
std::int64_t tierOf(std::string_view key) {
    constexpr std::string_view kAbove = "_above_";
    constexpr std::string_view kSuffix = "k_tokens";
    for (std::string_view rate : kTieredRates) {
        if (key.size() <= rate.size() + kAbove.size() + kSuffix.size()) continue;
        if (key.substr(0, rate.size()) != rate) continue;
        std::string_view rest = key.substr(rate.size());
        if (rest.substr(0, kAbove.size()) != kAbove) continue;
        rest.remove_prefix(kAbove.size());
        if (rest.size() <= kSuffix.size() || rest.substr(rest.size() - kSuffix.size()) != kSuffix)
            continue;
        rest.remove_suffix(kSuffix.size());
        std::int64_t n = 0;
        bool digits = rest.size() <= 9;  // a threshold below a trillion tokens
        for (char c : rest) {
            if (c < '0' || c > '9') digits = false;
            if (!digits) break;
            n = n * 10 + (c - '0');
        }
        if (digits) return n;
    }
    return 0;
}

std::optional<ModelPrice> readEntry(std::string_view model, const Value& entry) {
    if (!entry.IsObject()) return std::nullopt;
    const std::optional<double> input = number(entry, "input_cost_per_token");
    const std::optional<double> output = number(entry, "output_cost_per_token");
    if (!input && !output) return std::nullopt;

    ModelPrice p;
    p.inputPerToken = input.value_or(0.0);
    p.outputPerToken = output.value_or(0.0);
    p.cacheReadPerToken =
        firstNumber(entry, "cache_read_input_token_cost", "cache_read_cost_per_token")
            .value_or(p.inputPerToken);
    p.cacheWritePerToken =
        firstNumber(entry, "cache_creation_input_token_cost", "cache_creation_cost_per_token")
            .value_or(p.inputPerToken);
    p.cacheWrite1hPerToken =
        number(entry, "cache_creation_input_token_cost_above_1hr").value_or(2.0 * p.inputPerToken);

    // The tier: the smallest N among the entry's `_above_<N>k_tokens` rates.
    std::int64_t tierK = 0;
    for (auto it = entry.MemberBegin(); it != entry.MemberEnd(); ++it) {
        const std::int64_t n = tierOf(json::view(it->name));
        if (n > 0 && (tierK == 0 || n < tierK)) tierK = n;
    }
    const std::string suffix = "_above_" + std::to_string(tierK) + "k_tokens";
    auto above = [&](std::string_view rate, double base) {
        return tierK > 0 ? number(entry, std::string(rate) + suffix).value_or(base) : base;
    };
    p.tierThresholdTokens = tierK * 1000;
    p.inputAbovePerToken = above("input_cost_per_token", p.inputPerToken);
    p.outputAbovePerToken = above("output_cost_per_token", p.outputPerToken);
    p.cacheReadAbovePerToken = above("cache_read_input_token_cost", p.cacheReadPerToken);
    p.cacheWriteAbovePerToken = above("cache_creation_input_token_cost", p.cacheWritePerToken);
    // Anthropic: the 1-hour write above the tier costs twice the above-tier input.
    p.cacheWrite1hAbovePerToken = tierK > 0 ? 2.0 * p.inputAbovePerToken : p.cacheWrite1hPerToken;

    const std::optional<std::string_view> provider = json::stringMember(entry, "litellm_provider");
    p.perComponentTier = (provider && provider->find("anthropic") != std::string_view::npos) ||
                         model.find("claude") != std::string_view::npos;
    if (auto fast = number(entry, kFastMultiplierKey); fast && *fast > 0.0)
        p.fastMultiplier = *fast;
    return p;
}

// The id without a trailing `-YYYYMMDD`, or "" when it has none.
std::string_view withoutDate(std::string_view model) {
    constexpr std::size_t kDateLen = 9;  // "-YYYYMMDD"
    if (model.size() <= kDateLen || model[model.size() - kDateLen] != '-') return {};
    for (std::size_t i = model.size() - kDateLen + 1; i < model.size(); ++i)
        if (model[i] < '0' || model[i] > '9') return {};
    return model.substr(0, model.size() - kDateLen);
}

constexpr std::array<std::string_view, 4> kPrefixes = {"anthropic/", "openai/", "gemini/",
                                                       "vertex_ai/"};

double tiered(std::int64_t n, std::int64_t threshold, double base, double above) {
    const std::int64_t low = std::min(n, threshold);
    const std::int64_t high = std::max<std::int64_t>(0, n - threshold);
    return static_cast<double>(low) * base + static_cast<double>(high) * above;
}

}  // namespace

Result<PriceTable> PriceTable::fromJson(std::string_view text) {
    rapidjson::Document d;
    if (!json::parse(d, text)) {
        return Error{"pricing_json",
                     std::string("price table is not JSON: ") +
                         rapidjson::GetParseError_En(d.GetParseError()) + " at byte " +
                         std::to_string(d.GetErrorOffset()),
                     0};
    }
    if (!d.IsObject()) return Error{"pricing_json", "price table is not a JSON object", 0};
    // StackUnderflow's cache nests the models under "pricing"; LiteLLM's file is the map itself.
    const Value* models = json::objectMember(d, "pricing");
    if (models == nullptr) models = &d;
    PriceTable table;
    for (auto it = models->MemberBegin(); it != models->MemberEnd(); ++it) {
        const std::string_view name = json::view(it->name);
        if (auto p = readEntry(name, it->value)) table.models_[std::string(name)] = *p;
    }
    return table;
}

Result<PriceTable> PriceTable::fromFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error{"pricing_io", "cannot open price file " + path, 0};
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return Error{"pricing_io", "cannot read price file " + path, 0};
    Result<PriceTable> table = fromJson(text.str());
    if (!table) return Error{table.error().code, path + ": " + table.error().message, 0};
    return table;
}

std::string_view PriceTable::embeddedJson() {
    return {reinterpret_cast<const char*>(embedded::kPricesJson), embedded::kPricesJsonSize};
}

Result<PriceTable> PriceTable::fromEmbedded() {
    return fromJson(embeddedJson());
}

void PriceTable::merge(const PriceTable& overrides) {
    for (const auto& [model, price] : overrides.models_) models_[model] = price;
}

const ModelPrice* PriceTable::find(std::string_view model, std::string* matched) const {
    auto lookup = [&](std::string_view id) -> const ModelPrice* {
        const auto it = models_.find(id);
        if (it == models_.end()) return nullptr;
        if (matched != nullptr) *matched = it->first;
        return &it->second;
    };
    if (model.empty()) return nullptr;
    if (const ModelPrice* p = lookup(model)) return p;
    const std::string_view stripped = withoutDate(model);
    if (!stripped.empty())
        if (const ModelPrice* p = lookup(stripped)) return p;
    for (std::string_view base : {model, stripped}) {
        if (base.empty()) continue;
        for (std::string_view prefix : kPrefixes) {
            std::string id(prefix);
            id += base;
            if (const ModelPrice* p = lookup(id)) return p;
        }
    }
    return nullptr;
}

PriceQuote priceTokens(const PriceTable& table, std::string_view model, Speed speed,
                       const TokenCounts& t) {
    if (model.empty() || model == kSyntheticModel) return {0.0, CostSource::RateCard};
    const ModelPrice* p = table.find(model);
    if (p == nullptr) return {0.0, CostSource::Unknown};

    const std::int64_t write1h = std::clamp<std::int64_t>(t.cacheCreate1h, 0, t.cacheCreate);
    const std::int64_t write5m = t.cacheCreate - write1h;
    const std::int64_t threshold = p->tierThresholdTokens;
    double cost = 0.0;
    if (threshold > 0 && p->perComponentTier) {
        cost = tiered(t.input, threshold, p->inputPerToken, p->inputAbovePerToken) +
               tiered(t.output, threshold, p->outputPerToken, p->outputAbovePerToken) +
               tiered(t.cacheRead, threshold, p->cacheReadPerToken, p->cacheReadAbovePerToken) +
               tiered(write5m, threshold, p->cacheWritePerToken, p->cacheWriteAbovePerToken) +
               tiered(write1h, threshold, p->cacheWrite1hPerToken, p->cacheWrite1hAbovePerToken);
    } else {
        const bool above = threshold > 0 && t.input + t.cacheRead > threshold;
        cost =
            static_cast<double>(t.input) * (above ? p->inputAbovePerToken : p->inputPerToken) +
            static_cast<double>(t.output) * (above ? p->outputAbovePerToken : p->outputPerToken) +
            static_cast<double>(t.cacheRead) *
                (above ? p->cacheReadAbovePerToken : p->cacheReadPerToken) +
            static_cast<double>(write5m) *
                (above ? p->cacheWriteAbovePerToken : p->cacheWritePerToken) +
            static_cast<double>(write1h) *
                (above ? p->cacheWrite1hAbovePerToken : p->cacheWrite1hPerToken);
    }
    if (speed == Speed::Fast) cost *= p->fastMultiplier;
    return {cost, CostSource::RateCard};
}

void priceRecord(const PriceTable& table, UsageRecord& record) {
    if (record.liveCostUsd) {
        record.costUsd = *record.liveCostUsd;
        record.costSource = CostSource::Live;
        return;
    }
    const PriceQuote q =
        priceTokens(table, record.model, record.speed,
                    {record.inputTokens, record.outputTokens, record.cacheReadTokens,
                     record.cacheCreateTokens, record.cacheCreate1hTokens});
    record.costUsd = q.costUsd;
    record.costSource = q.source;
}

Result<PriceTable> PriceTable::load(const std::string& overridesPath) {
    auto prices = fromEmbedded();
    if (!prices)
        return Error{"pricing", "the embedded price table is broken: " + prices.error().message};
    if (!overridesPath.empty()) {
        auto extra = fromFile(overridesPath);
        if (!extra)
            return Error{"pricing", "cannot read --pricing " + overridesPath + ": " + extra.error().message};
        prices->merge(*extra);
    }
    return prices;
}

}  // namespace etld::sources
