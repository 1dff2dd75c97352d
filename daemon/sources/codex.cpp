#include "sources/codex.h"

#include <algorithm>

#include "sources/identity.h"
#include "sources/json_util.h"

namespace etld::sources {

using rapidjson::Value;

namespace {

enum class UsageRead { Absent, Invalid, Ok };

// Reads one `*_token_usage` object; absent or null counts are 0.
UsageRead readUsage(const Value* v, CodexUsage& out) {
    if (v == nullptr || !v->IsObject()) return UsageRead::Absent;
    CodexUsage u;
    for (const auto& [name, field] :
         {std::pair{"input_tokens", &u.input}, std::pair{"cached_input_tokens", &u.cached},
          std::pair{"output_tokens", &u.output},
          std::pair{"reasoning_output_tokens", &u.reasoning}}) {
        if (json::readCount(json::member(*v, name), *field) == json::CountRead::Invalid)
            return UsageRead::Invalid;
    }
    std::int64_t total = 0;
    switch (json::readCount(json::member(*v, "total_tokens"), total)) {
        case json::CountRead::Invalid:
            return UsageRead::Invalid;
        case json::CountRead::Ok:
            u.total = total;
            break;
        default:
            break;
    }
    out = u;
    return UsageRead::Ok;
}

std::int64_t minus(std::int64_t a, std::int64_t b) {
    return std::max<std::int64_t>(0, a - b);
}

CodexUsage difference(const CodexUsage& now, const std::optional<CodexUsage>& before) {
    if (!before) return now;
    CodexUsage d;
    d.input = minus(now.input, before->input);
    d.cached = minus(now.cached, before->cached);
    d.output = minus(now.output, before->output);
    d.reasoning = minus(now.reasoning, before->reasoning);
    if (now.total) d.total = minus(*now.total, before->total.value_or(0));
    return d;
}

std::optional<std::string_view> modelOf(const Value& payload) {
    if (const Value* info = json::objectMember(payload, "info")) {
        if (auto m = json::nonEmptyString(*info, "model")) return m;
        if (auto m = json::nonEmptyString(*info, "model_name")) return m;
        if (const Value* meta = json::objectMember(*info, "metadata"))
            if (auto m = json::nonEmptyString(*meta, "model")) return m;
    }
    return json::nonEmptyString(payload, "model");
}

void writeUsage(json::Builder& b, const CodexUsage& u) {
    b.beginObject()
        .key("in")
        .i64(u.input)
        .key("cached")
        .i64(u.cached)
        .key("out")
        .i64(u.output)
        .key("reasoning")
        .i64(u.reasoning);
    if (u.total) b.key("total").i64(*u.total);
    b.endObject();
}

bool loadUsage(const Value& v, CodexUsage& u) {
    if (!v.IsObject()) return false;
    for (const auto& [name, field] :
         {std::pair{"in", &u.input}, std::pair{"cached", &u.cached}, std::pair{"out", &u.output},
          std::pair{"reasoning", &u.reasoning}}) {
        const Value* m = json::member(v, name);
        if (m == nullptr || !m->IsInt64()) return false;
        *field = m->GetInt64();
    }
    if (const Value* t = json::member(v, "total")) {
        if (!t->IsInt64()) return false;
        u.total = t->GetInt64();
    }
    return true;
}

}  // namespace

std::string saveCodexState(const CodexFileState& state) {
    json::Builder b;
    b.beginObject()
        .key("v")
        .i64(1)
        .key("session")
        .str(state.sessionId)
        .key("cwd")
        .str(state.cwd)
        .key("model")
        .str(state.model);
    if (state.previousTotal) {
        b.key("prev");
        writeUsage(b, *state.previousTotal);
    }
    b.endObject();
    return b.text();
}

Result<CodexFileState> loadCodexState(std::string_view text) {
    CodexFileState state;
    if (text.empty()) return state;
    rapidjson::Document d;
    if (!json::parse(d, text) || !d.IsObject()) return json::stateError("codex");
    for (const auto& [name, field] :
         {std::pair{"session", &state.sessionId}, std::pair{"cwd", &state.cwd},
          std::pair{"model", &state.model}}) {
        const Value* m = json::member(d, name);
        if (m == nullptr) continue;
        if (!m->IsString()) return json::stateError("codex");
        *field = std::string(json::view(*m));
    }
    if (const Value* prev = json::member(d, "prev")) {
        CodexUsage u;
        if (!loadUsage(*prev, u)) return json::stateError("codex");
        state.previousTotal = u;
    }
    return state;
}

LineResult parseCodexLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                          CodexFileState& state, const PriceTable& prices) {
    json::LineScratch& scratch = json::lineScratch();
    if (auto outcome = json::parseLineObject(line, scratch)) return *outcome;
    const rapidjson::Document& d = scratch.doc();
    const std::optional<std::string_view> type = json::stringMember(d, "type");
    const Value* payload = json::objectMember(d, "payload");
    if (!type || payload == nullptr) return LineResult::notUsage();

    if (*type == "session_meta") {
        if (auto id = json::nonEmptyString(*payload, "id")) state.sessionId = std::string(*id);
        if (auto cwd = json::nonEmptyString(*payload, "cwd")) state.cwd = std::string(*cwd);
        return LineResult::notUsage();
    }
    if (*type == "turn_context") {
        auto model = json::nonEmptyString(*payload, "model");
        if (!model) model = json::nonEmptyString(*payload, "model_name");
        if (model) state.model = std::string(*model);
        return LineResult::notUsage();
    }
    if (*type != "event_msg" || json::stringMember(*payload, "type") != "token_count")
        return LineResult::notUsage();
    const Value* info = json::objectMember(*payload, "info");
    if (info == nullptr) return LineResult::notUsage();  // `info: null`

    CodexUsage last, total;
    const UsageRead lastRead = readUsage(json::member(*info, "last_token_usage"), last);
    const UsageRead totalRead = readUsage(json::member(*info, "total_token_usage"), total);
    if (lastRead == UsageRead::Invalid || totalRead == UsageRead::Invalid)
        return LineResult::skipped("bad_tokens");
    if (lastRead == UsageRead::Absent && totalRead == UsageRead::Absent)
        return LineResult::notUsage();
    const std::optional<std::string_view> eventModel = modelOf(*payload);

    // A repeated total: the same usage reported again.
    if (totalRead == UsageRead::Ok && state.previousTotal == total) {
        if (eventModel) state.model = std::string(*eventModel);
        return LineResult::notUsage();
    }
    const CodexUsage raw =
        lastRead == UsageRead::Ok ? last : difference(total, state.previousTotal);
    if (raw.input == 0 && raw.cached == 0 && raw.output == 0 && raw.reasoning == 0) {
        if (totalRead == UsageRead::Ok) state.previousTotal = total;
        if (eventModel) state.model = std::string(*eventModel);
        return LineResult::notUsage();
    }
    std::optional<UnixMicros> ts;
    if (auto text = json::stringMember(d, "timestamp")) ts = parseIsoTimestamp(*text);
    if (!ts) return LineResult::skipped("bad_timestamp");

    // A valid record: commit the state.
    if (totalRead == UsageRead::Ok) state.previousTotal = total;
    if (eventModel) state.model = std::string(*eventModel);

    UsageRecord r;
    r.provider = Provider::Codex;
    r.sourcePath = file.sourcePath;
    r.sourceOffset = offset;
    r.sessionId = state.sessionId.empty() ? file.pathSession : state.sessionId;
    r.cwd = state.cwd;
    r.projectSlug = state.cwd.empty() ? "codex-" + r.sessionId : projectSlugFromCwd(state.cwd);
    setTimestamp(r, *ts);
    if (state.model.empty()) {
        r.model = std::string(kCodexFallbackModel);
        r.rawExtras = R"({"model_fallback":true})";
    } else {
        r.model = state.model;
    }
    const std::int64_t cached = std::min(raw.cached, raw.input);
    r.inputTokens = raw.input - cached;
    r.cacheReadTokens = cached;
    r.outputTokens = raw.output;
    r.reasoningTokens = raw.reasoning;
    r.eventKey = codexKey(r.tsText, r.model,
                          {raw.input, raw.cached, raw.output, raw.reasoning,
                           raw.total.value_or(raw.input + raw.output)});
    priceRecord(prices, r);
    return LineResult::of(std::move(r));
}

}  // namespace etld::sources
