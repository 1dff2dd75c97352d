#include "sources/json_util.h"

#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cmath>
#include <limits>

namespace etld::sources::json {

bool parse(rapidjson::Document& doc, std::string_view text) {
    doc.Parse<kParseFlags>(text.data(), text.size());
    return !doc.HasParseError();
}

bool isValid(std::string_view text) {
    rapidjson::MemoryStream bytes(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(bytes);
    rapidjson::BaseReaderHandler<> keepNothing;
    rapidjson::Reader reader;
    return !reader.Parse<kParseFlags>(in, keepNothing).IsError();
}

bool mayHaveKey(std::string_view line, std::string_view quotedKey) {
    return line.find(quotedKey) != std::string_view::npos ||
           line.find("\\u") != std::string_view::npos;
}

bool parseInPlace(rapidjson::Document& doc, std::string& buffer, std::string_view text) {
    // parse() reads through an EncodedInputStream, which drops a leading
    // UTF-8 byte-order mark, or as much of one as matches (0xEF, 0xEF 0xBB).
    std::size_t bom = 0;
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    if (!text.empty() && byte(0) == 0xEF) {
        bom = 1;
        if (text.size() > 1 && byte(1) == 0xBB) {
            bom = 2;
            if (text.size() > 2 && byte(2) == 0xBF) bom = 3;
        }
    }
    text.remove_prefix(bom);
    buffer.assign(text.data(), text.size());  // std::string keeps it NUL-terminated
    doc.ParseInsitu<kParseFlags>(buffer.data());
    return !doc.HasParseError();
}

std::optional<LineResult> parseLineObject(std::string_view line, std::string& buffer,
                                          rapidjson::Document& doc) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return LineResult::notUsage();
    if (!parseInPlace(doc, buffer, line)) return LineResult::skipped("malformed_json");
    if (!doc.IsObject()) return LineResult::notUsage();
    return std::nullopt;
}

const rapidjson::Value* member(const rapidjson::Value& v, std::string_view name) {
    if (!v.IsObject()) return nullptr;
    const auto it = v.FindMember(rapidjson::Value(rapidjson::StringRef(name.data(), name.size())));
    return it == v.MemberEnd() ? nullptr : &it->value;
}

const rapidjson::Value* objectMember(const rapidjson::Value& v, std::string_view name) {
    const rapidjson::Value* m = member(v, name);
    return m != nullptr && m->IsObject() ? m : nullptr;
}

std::optional<std::string_view> stringMember(const rapidjson::Value& v, std::string_view name) {
    const rapidjson::Value* m = member(v, name);
    if (m == nullptr || !m->IsString()) return std::nullopt;
    return view(*m);
}

std::optional<std::string_view> nonEmptyString(const rapidjson::Value& v, std::string_view name) {
    auto s = stringMember(v, name);
    if (!s || s->empty()) return std::nullopt;
    return s;
}

CountRead readCount(const rapidjson::Value* v, std::int64_t& out) {
    if (v == nullptr) return CountRead::Absent;
    if (v->IsNull()) return CountRead::Null;
    if (v->IsUint64()) {
        const std::uint64_t u = v->GetUint64();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return CountRead::Invalid;
        out = static_cast<std::int64_t>(u);
        return CountRead::Ok;
    }
    if (v->IsInt64()) return CountRead::Invalid;  // negative
    if (v->IsDouble()) {
        // 2^63: the first double above every int64.
        constexpr double kInt64Limit = 9223372036854775808.0;
        const double d = v->GetDouble();
        if (!(d >= 0.0) || d >= kInt64Limit || std::floor(d) != d) return CountRead::Invalid;
        out = static_cast<std::int64_t>(d);
        return CountRead::Ok;
    }
    return CountRead::Invalid;
}

Error stateError(std::string_view provider) {
    return Error{"bad_parser_state",
                 "saved " + std::string(provider) + " parser state is not valid JSON of its shape",
                 0};
}

}  // namespace etld::sources::json
