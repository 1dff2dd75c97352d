#include "sources/claude.h"

#include "sources/identity.h"
#include "sources/json_util.h"

namespace etld::sources {

using rapidjson::Value;

namespace {

// `N.N.N` at the start: digits, '.', digits, '.', digits.
bool versionOk(std::string_view v) {
    std::size_t pos = 0;
    for (int part = 0; part < 3; ++part) {
        const std::size_t start = pos;
        while (pos < v.size() && v[pos] >= '0' && v[pos] <= '9') ++pos;
        if (pos == start) return false;
        if (part < 2) {
            if (pos >= v.size() || v[pos] != '.') return false;
            ++pos;
        }
    }
    return true;
}

// The kinds of a string member the rules distinguish.
enum class StringCheck { Absent, Ok, Null, WrongType, Empty };

StringCheck checkString(const Value* v, bool mustBeNonEmpty) {
    if (v == nullptr) return StringCheck::Absent;
    if (v->IsNull()) return StringCheck::Null;
    if (!v->IsString()) return StringCheck::WrongType;
    if (mustBeNonEmpty && v->GetStringLength() == 0) return StringCheck::Empty;
    return StringCheck::Ok;
}

std::string_view stringReason(StringCheck c) {
    switch (c) {
        case StringCheck::Null:
            return "null_field";
        case StringCheck::WrongType:
            return "wrong_type";
        case StringCheck::Empty:
            return "empty_id";
        default:
            return {};
    }
}

}  // namespace

std::string saveClaudeState(const ClaudeFileState& state) {
    json::Builder b;
    b.beginObject().key("v").i64(1).key("idless").beginObject();
    for (const auto& [hash, count] : state.idlessSeen) b.key(hash).u64(count);
    b.endObject().endObject();
    return b.text();
}

Result<ClaudeFileState> loadClaudeState(std::string_view text) {
    ClaudeFileState state;
    if (text.empty()) return state;
    rapidjson::Document d;
    if (!json::parse(d, text) || !d.IsObject()) return json::stateError("claude");
    if (const Value* idless = json::member(d, "idless")) {
        if (!idless->IsObject()) return json::stateError("claude");
        for (auto it = idless->MemberBegin(); it != idless->MemberEnd(); ++it) {
            if (!it->value.IsUint64()) return json::stateError("claude");
            state.idlessSeen[std::string(json::view(it->name))] = it->value.GetUint64();
        }
    }
    return state;
}

LineResult parseClaudeLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                           ClaudeFileState& state, const PriceTable& prices) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return LineResult::notUsage();
    // Prompts and tool results too are parsed into a document: looking for a
    // quoted `usage` first, to only validate the lines without one, cost
    // more than the documents it spared (the search stops at every quote).
    json::LineScratch& scratch = json::lineScratch();
    if (auto outcome = json::parseLineObject(line, scratch)) return *outcome;
    const rapidjson::Document& d = scratch.doc();

    // Where the record is: the line itself, or an agent-progress line's data.message.
    const Value* rec = &d;
    const Value* message = json::objectMember(d, "message");
    const Value* usage = message != nullptr ? json::member(*message, "usage") : nullptr;
    bool progress = false;
    if (usage == nullptr) {
        const Value* data = json::objectMember(d, "data");
        const Value* inner = data != nullptr ? json::objectMember(*data, "message") : nullptr;
        const Value* innerMessage =
            inner != nullptr ? json::objectMember(*inner, "message") : nullptr;
        if (innerMessage != nullptr && json::member(*innerMessage, "usage") != nullptr) {
            rec = inner;
            message = innerMessage;
            usage = json::member(*innerMessage, "usage");
            progress = true;
        }
    }
    if (usage == nullptr || !usage->IsObject()) return LineResult::notUsage();

    auto field = [&](std::string_view name) -> const Value* {
        if (const Value* v = json::member(*rec, name)) return v;
        return rec != &d ? json::member(d, name) : nullptr;
    };

    // Line-level keys: null, wrong type, empty ids.
    const Value* cwd = field("cwd");
    const Value* version = field("version");
    const Value* sessionId = field("sessionId");
    const Value* requestId = field("requestId");
    const Value* cost = field("costUSD");
    const Value* apiError = field("isApiErrorMessage");
    const Value* messageId = json::member(*message, "id");
    const Value* model = json::member(*message, "model");
    const Value* speed = json::member(*usage, "speed");
    for (const auto& [v, nonEmpty] :
         {std::pair{cwd, false}, std::pair{version, false}, std::pair{sessionId, true},
          std::pair{requestId, true}, std::pair{messageId, true}, std::pair{model, true},
          std::pair{speed, false}}) {
        const std::string_view why = stringReason(checkString(v, nonEmpty));
        if (!why.empty()) return LineResult::skipped(why);
    }
    if (json::isNull(cost) || json::isNull(apiError)) return LineResult::skipped("null_field");
    if (cost != nullptr && !cost->IsNumber()) return LineResult::skipped("wrong_type");
    if (apiError != nullptr && !apiError->IsBool()) return LineResult::skipped("wrong_type");
    if (version != nullptr && !versionOk(json::view(*version)))
        return LineResult::skipped("bad_version");

    const Value* tsValue = field("timestamp");
    std::optional<UnixMicros> ts;
    if (tsValue != nullptr && tsValue->IsString()) ts = parseIsoTimestamp(json::view(*tsValue));
    if (!ts) return LineResult::skipped("bad_timestamp");

    // Token counts.
    std::int64_t input = 0, output = 0, cacheRead = 0, cacheCreate = 0, cache5m = 0, cache1h = 0;
    if (json::readCount(json::member(*usage, "input_tokens"), input) != json::CountRead::Ok ||
        json::readCount(json::member(*usage, "output_tokens"), output) != json::CountRead::Ok)
        return LineResult::skipped("bad_tokens");
    for (const auto& [name, out] : {std::pair{"cache_read_input_tokens", &cacheRead},
                                    std::pair{"cache_creation_input_tokens", &cacheCreate}}) {
        const json::CountRead c = json::readCount(json::member(*usage, name), *out);
        if (c == json::CountRead::Null) return LineResult::skipped("null_field");
        if (c == json::CountRead::Invalid) return LineResult::skipped("bad_tokens");
    }
    const Value* creation = json::objectMember(*usage, "cache_creation");
    if (creation != nullptr) {
        for (const auto& [name, out] : {std::pair{"ephemeral_5m_input_tokens", &cache5m},
                                        std::pair{"ephemeral_1h_input_tokens", &cache1h}}) {
            const json::CountRead c = json::readCount(json::member(*creation, name), *out);
            if (c == json::CountRead::Null || c == json::CountRead::Invalid)
                return LineResult::skipped("bad_tokens");
        }
    }

    // The line is a valid record from here on.
    UsageRecord r;
    r.provider = Provider::Claude;
    r.sourcePath = file.sourcePath;
    r.sourceOffset = offset;
    r.sessionId = sessionId != nullptr ? std::string(json::view(*sessionId)) : file.pathSession;
    r.projectSlug = file.pathProject;
    if (cwd != nullptr) r.cwd = std::string(json::view(*cwd));
    setTimestamp(r, *ts);
    if (model != nullptr) r.model = std::string(json::view(*model));
    if (speed != nullptr) {
        r.hasSpeed = true;
        if (json::view(*speed) == "fast") r.speed = Speed::Fast;
    }
    r.inputTokens = input;
    r.outputTokens = output;
    r.cacheReadTokens = cacheRead;
    if (creation != nullptr) {
        r.cacheCreateTokens = cache5m + cache1h;
        r.cacheCreate1hTokens = cache1h;
    } else {
        r.cacheCreateTokens = cacheCreate;
    }
    if (cost != nullptr) r.liveCostUsd = cost->GetDouble();
    if (messageId != nullptr) r.messageId = std::string(json::view(*messageId));
    if (requestId != nullptr) r.requestId = std::string(json::view(*requestId));
    const Value* sidechain = field("isSidechain");
    r.isSidechain = sidechain != nullptr && sidechain->IsBool() && sidechain->GetBool();
    if (r.messageId.empty()) {
        r.lineHash = lineHash(line);
        r.identicalBefore = state.idlessSeen[r.lineHash]++;
    }
    r.eventKey = claudeOwnKey(r);

    const bool isApiError = apiError != nullptr && apiError->GetBool();
    if (progress || isApiError) {
        json::Builder extras;
        extras.beginObject();
        if (isApiError) extras.key("api_error").boolean(true);
        if (progress) extras.key("agent_progress").boolean(true);
        r.rawExtras = extras.endObject().text();
    }
    priceRecord(prices, r);
    return LineResult::of(std::move(r));
}

}  // namespace etld::sources
