// Small helpers over RapidJSON shared by the parsers (internal to
// etld_sources).
//
// The parsers read real JSON — whatever the spacing, key order or escaping —
// and never match byte patterns. A member read distinguishes three cases the
// skip rules need: absent, written as `null`, and present with a value. Token
// counts are integers: a JSON number is accepted when it is integral and not
// negative (`100`, `100.0`, `1e2`); anything else is reported as invalid.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sources/record.h"
#include "util/result.h"

namespace etld::sources::json {

// Full-precision numbers (costUSD is a dollar figure we add up).
constexpr unsigned kParseFlags = rapidjson::kParseFullPrecisionFlag;

// Parses `text`; false if it is not one JSON value (trailing whitespace is fine).
bool parse(rapidjson::Document& doc, std::string_view text);

// What a transcript line is parsed in: a copy of it (the document's strings
// point into it) and the document, with a pool for its values. One per
// thread (lineScratch()), kept from line to line: a fresh copy and document
// per line cost an allocation of the line's size and one of 64 KiB, for
// every line of every file. One line at a time: parsing the next line
// replaces what the last one gave.
class LineScratch {
public:
    LineScratch();
    LineScratch(const LineScratch&) = delete;
    LineScratch& operator=(const LineScratch&) = delete;
    const rapidjson::Document& doc() const { return doc_; }

private:
    friend std::optional<LineResult> parseLineObject(std::string_view line, LineScratch& scratch);
    static constexpr std::size_t kPoolBytes = 64 * 1024;
    std::unique_ptr<char[]> pool_;
    rapidjson::MemoryPoolAllocator<> values_;
    std::string buffer_;
    rapidjson::Document doc_;
};

// This thread's.
LineScratch& lineScratch();

// One transcript line as a JSON object in `scratch.doc()`, or the line's
// outcome when it is none: a blank line or a value that is not an object is
// not usage; malformed JSON is a skipped line.
std::optional<LineResult> parseLineObject(std::string_view line, LineScratch& scratch);

// The same parse, done in place in a copy of `text` kept in `buffer`: string
// values then point into `buffer` (which must outlive `doc`) instead of
// being copied, through the parser's stack, into the document's allocator,
// which was most of the parsing work on log lines carrying long texts. It
// accepts exactly what parse() accepts, and gives the same values.
bool parseInPlace(rapidjson::Document& doc, std::string& buffer, std::string_view text);

// A member of an object value; nullptr if `v` is not an object or lacks it.
const rapidjson::Value* member(const rapidjson::Value& v, std::string_view name);

// An object member that is itself an object; nullptr otherwise.
const rapidjson::Value* objectMember(const rapidjson::Value& v, std::string_view name);

inline bool isNull(const rapidjson::Value* v) {
    return v != nullptr && v->IsNull();
}

inline std::string_view view(const rapidjson::Value& v) {
    return {v.GetString(), v.GetStringLength()};
}

// The string value of a member, if it is a string.
std::optional<std::string_view> stringMember(const rapidjson::Value& v, std::string_view name);

// A non-empty string member, else nullopt (absent, null, wrong type, empty).
std::optional<std::string_view> nonEmptyString(const rapidjson::Value& v, std::string_view name);

// A token count: a non-negative integral number.
enum class CountRead { Absent, Null, Invalid, Ok };
CountRead readCount(const rapidjson::Value* v, std::int64_t& out);

// The error of a saved parser state that does not load (code
// `bad_parser_state`): the caller re-reads the file from its start.
Error stateError(std::string_view provider);

// Writes a compact JSON value with RapidJSON's writer (used for event keys,
// parser state and raw_extras).
class Builder {
  public:
    Builder() : writer_(buffer_) {}
    Builder& beginArray() {
        writer_.StartArray();
        return *this;
    }
    Builder& endArray() {
        writer_.EndArray();
        return *this;
    }
    Builder& beginObject() {
        writer_.StartObject();
        return *this;
    }
    Builder& endObject() {
        writer_.EndObject();
        return *this;
    }
    Builder& key(std::string_view k) {
        writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
        return *this;
    }
    Builder& str(std::string_view s) {
        writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        return *this;
    }
    Builder& i64(std::int64_t n) {
        writer_.Int64(n);
        return *this;
    }
    Builder& u64(std::uint64_t n) {
        writer_.Uint64(n);
        return *this;
    }
    Builder& boolean(bool b) {
        writer_.Bool(b);
        return *this;
    }
    std::string text() const { return {buffer_.GetString(), buffer_.GetSize()}; }

  private:
    rapidjson::StringBuffer buffer_;
    rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

}  // namespace etld::sources::json
