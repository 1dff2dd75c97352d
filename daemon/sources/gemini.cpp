#include "sources/gemini.h"

#include <algorithm>

#include "sources/identity.h"
#include "sources/json_util.h"

namespace etld::sources {

using rapidjson::Value;

namespace {

struct GeminiTokens {
    std::int64_t input = 0, output = 0, cached = 0, thoughts = 0, tool = 0;
    std::optional<std::int64_t> total;
};

bool readTokens(const Value& v, GeminiTokens& t) {
    for (const auto& [name, field] :
         {std::pair{"input", &t.input}, std::pair{"output", &t.output},
          std::pair{"cached", &t.cached}, std::pair{"thoughts", &t.thoughts},
          std::pair{"tool", &t.tool}}) {
        if (json::readCount(json::member(v, name), *field) == json::CountRead::Invalid)
            return false;
    }
    std::int64_t total = 0;
    switch (json::readCount(json::member(v, "total"), total)) {
        case json::CountRead::Invalid:
            return false;
        case json::CountRead::Ok:
            t.total = total;
            break;
        default:
            break;
    }
    return true;
}

// Fills the token fields; false when all are zero (the record is ignored).
bool applyTokens(UsageRecord& r, const GeminiTokens& t) {
    std::int64_t input = t.input;
    if (t.cached > 0 && t.total == t.input + t.output + t.thoughts + t.tool)
        input -= std::min(t.cached, t.input);
    r.inputTokens = input + t.tool;
    r.cacheReadTokens = t.cached;
    r.outputTokens = t.output + t.thoughts;
    r.reasoningTokens = t.thoughts;
    if (t.tool > 0)
        r.rawExtras =
            json::Builder().beginObject().key("tool_tokens").i64(t.tool).endObject().text();
    return r.inputTokens != 0 || r.outputTokens != 0 || r.cacheReadTokens != 0;
}

std::optional<UnixMicros> timeMember(const Value& v, std::string_view name) {
    auto text = json::stringMember(v, name);
    return text ? parseIsoTimestamp(*text) : std::nullopt;
}

UnixMicros messageTime(const Value& m, std::optional<UnixMicros> start,
                       std::optional<UnixMicros> updated, UnixMicros mtime) {
    if (auto t = timeMember(m, "timestamp")) return *t;
    if (auto t = timeMember(m, "created_at")) return *t;
    if (start) return *start;
    if (updated) return *updated;
    return mtime;
}

}  // namespace

std::string saveGeminiState(const GeminiFileState& state) {
    json::Builder b;
    b.beginObject().key("v").i64(1).key("header").boolean(state.headerSeen);
    b.key("session").str(state.sessionId);
    if (state.startTime) b.key("start").i64(*state.startTime);
    if (state.lastUpdated) b.key("updated").i64(*state.lastUpdated);
    b.key("model").str(state.lastModel).endObject();
    return b.text();
}

Result<GeminiFileState> loadGeminiState(std::string_view text) {
    GeminiFileState state;
    if (text.empty()) return state;
    rapidjson::Document d;
    if (!json::parse(d, text) || !d.IsObject()) return json::stateError("gemini");
    if (const Value* h = json::member(d, "header")) {
        if (!h->IsBool()) return json::stateError("gemini");
        state.headerSeen = h->GetBool();
    }
    for (const auto& [name, field] :
         {std::pair{"session", &state.sessionId}, std::pair{"model", &state.lastModel}}) {
        const Value* m = json::member(d, name);
        if (m == nullptr) continue;
        if (!m->IsString()) return json::stateError("gemini");
        *field = std::string(json::view(*m));
    }
    for (const auto& [name, field] :
         {std::pair{"start", &state.startTime}, std::pair{"updated", &state.lastUpdated}}) {
        const Value* m = json::member(d, name);
        if (m == nullptr) continue;
        if (!m->IsInt64()) return json::stateError("gemini");
        *field = m->GetInt64();
    }
    return state;
}

LineResult parseGeminiLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                           GeminiFileState& state, const PriceTable& prices) {
    json::LineScratch& scratch = json::lineScratch();
    if (auto outcome = json::parseLineObject(line, scratch)) return *outcome;
    const rapidjson::Document& d = scratch.doc();

    const bool isRecord = json::stringMember(d, "type") == "gemini";
    const std::optional<std::string_view> lineModel = json::nonEmptyString(d, "model");
    const Value* tokens = isRecord ? json::objectMember(d, "tokens") : nullptr;
    GeminiTokens t;
    if (tokens != nullptr && !readTokens(*tokens, t)) return LineResult::skipped("bad_tokens");

    // The line is valid: it may update the file's state.
    if (!state.headerSeen) {
        state.headerSeen = true;
        if (!isRecord) {
            if (auto s = json::nonEmptyString(d, "sessionId")) state.sessionId = std::string(*s);
            state.startTime = timeMember(d, "startTime");
            state.lastUpdated = timeMember(d, "lastUpdated");
        }
    }
    const std::string model = lineModel ? std::string(*lineModel) : state.lastModel;
    if (lineModel) state.lastModel = std::string(*lineModel);
    if (tokens == nullptr || model.empty()) return LineResult::notUsage();

    UsageRecord r;
    r.provider = Provider::Gemini;
    r.sourcePath = file.sourcePath;
    r.sourceOffset = offset;
    r.sessionId = state.sessionId.empty() ? file.pathSession : state.sessionId;
    r.projectSlug = file.pathProject;
    r.model = model;
    if (!applyTokens(r, t)) return LineResult::notUsage();
    setTimestamp(r, messageTime(d, state.startTime, state.lastUpdated, file.mtime));
    auto id = json::nonEmptyString(d, "id");
    r.messageId = id ? std::string(*id) : "@" + std::to_string(offset);
    r.eventKey = geminiKey(r.sourcePath, r.messageId);
    priceRecord(prices, r);
    return LineResult::of(std::move(r));
}

Result<GeminiJsonResult> parseGeminiJsonFile(std::string_view bytes, const FileContext& file,
                                             const PriceTable& prices) {
    std::string fileCopy;  // d's strings point into it
    rapidjson::Document d;
    if (!json::parseInPlace(d, fileCopy, bytes) || !d.IsObject())
        return Error{"not_json", "Gemini session file does not parse (caught mid-write?)", 0};
    GeminiJsonResult out;
    const Value* messages = json::member(d, "messages");
    if (messages == nullptr || !messages->IsArray()) return out;

    const auto session = json::nonEmptyString(d, "sessionId");
    const std::optional<UnixMicros> start = timeMember(d, "startTime");
    const std::optional<UnixMicros> updated = timeMember(d, "lastUpdated");
    for (rapidjson::SizeType i = 0; i < messages->Size(); ++i) {
        const Value& m = (*messages)[i];
        if (!m.IsObject() || json::stringMember(m, "type") != "gemini") continue;
        const Value* tokens = json::objectMember(m, "tokens");
        if (tokens == nullptr) continue;
        GeminiTokens t;
        if (!readTokens(*tokens, t)) {
            ++out.skippedMessages;
            continue;
        }
        const auto model = json::nonEmptyString(m, "model");
        if (!model) continue;

        UsageRecord r;
        r.provider = Provider::Gemini;
        r.sourcePath = file.sourcePath;
        r.sourceOffset = i;
        r.sessionId = session ? std::string(*session) : file.pathSession;
        r.projectSlug = file.pathProject;
        r.model = std::string(*model);
        if (!applyTokens(r, t)) continue;
        setTimestamp(r, messageTime(m, start, updated, file.mtime));
        auto id = json::nonEmptyString(m, "id");
        r.messageId = id ? std::string(*id) : "#" + std::to_string(i);
        r.eventKey = geminiKey(r.sourcePath, r.messageId);
        priceRecord(prices, r);
        out.records.push_back(std::move(r));
    }
    return out;
}

}  // namespace etld::sources
