#include "sources/json_util.h"

#include <rapidjson/reader.h>

#include <cmath>
#include <limits>

namespace etld::sources::json {
namespace {

// parse() reads through an EncodedInputStream, which drops a leading UTF-8
// byte-order mark, or as much of one as matches (0xEF, 0xEF 0xBB); the
// in-place parses see the text without it, so all three agree.
std::string_view withoutByteOrderMark(std::string_view text) {
    constexpr std::string_view kMark = "\xEF\xBB\xBF";
    std::size_t n = 0;
    while (n < kMark.size() && n < text.size() && text[n] == kMark[n]) ++n;
    return text.substr(n);
}

// Copies `text` into `buffer` for an in-place parse, with room after it:
// RapidJSON's SIMD scans load aligned 16-byte blocks, and the block holding
// the terminating NUL reaches up to 15 bytes past it. Those bytes must
// belong to the buffer's allocation (harmless on the CPU, but a read past
// the end for ASan and TSan, and for the standard).
constexpr std::size_t kSimdPaddingBytes = 16;

char* copyPadded(std::string& buffer, std::string_view text) {
    buffer.reserve(text.size() + kSimdPaddingBytes);
    buffer.assign(text.data(), text.size());  // std::string keeps it NUL-terminated
    return buffer.data();
}

}  // namespace

bool parse(rapidjson::Document& doc, std::string_view text) {
    doc.Parse<kParseFlags>(text.data(), text.size());
    return !doc.HasParseError();
}

bool parseInPlace(rapidjson::Document& doc, std::string& buffer, std::string_view text) {
    doc.ParseInsitu<kParseFlags>(copyPadded(buffer, withoutByteOrderMark(text)));
    return !doc.HasParseError();
}

LineScratch::LineScratch()
    : pool_(new char[kPoolBytes]), values_(pool_.get(), kPoolBytes), doc_(&values_) {}

LineScratch& lineScratch() {
    thread_local LineScratch scratch;
    return scratch;
}

std::optional<LineResult> parseLineObject(std::string_view line, LineScratch& scratch) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return LineResult::notUsage();
    // The last line's values go: the pool starts over in its own buffer
    // (chunks a large line added are freed), and a copy buffer grown by an
    // unusually long line is let go of.
    constexpr std::size_t kKeepBufferBytes = 1 << 20;
    scratch.doc_.SetNull();
    scratch.values_.Clear();
    if (scratch.buffer_.capacity() > kKeepBufferBytes) std::string().swap(scratch.buffer_);
    if (!parseInPlace(scratch.doc_, scratch.buffer_, line)) return LineResult::skipped("malformed_json");
    if (!scratch.doc_.IsObject()) return LineResult::notUsage();
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
