// Helpers shared by the unit tests of etld_sources (parsers, pricing,
// identity): where the shared fixtures are, reading files, the embedded price
// table, and building test lines by patching a valid one.
#pragma once

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "sources/identity.h"
#include "sources/jsonl.h"
#include "sources/pricing.h"
#include "sources/record.h"

namespace etld::sources::testing {

// The source root: $ETLD_SOURCE_ROOT (set by meson test), else derived from
// this header's path.
inline std::string sourceRoot() {
    if (const char* r = std::getenv("ETLD_SOURCE_ROOT"); r != nullptr && *r != '\0') return r;
    const std::string self = __FILE__;
    const std::size_t pos = self.rfind("/tests/unit/");
    return pos == std::string::npos ? "." : self.substr(0, pos);
}

// The shared folder (spec, fixtures, data): $ETLD_SHARED_DIR, else
// ../shared next to the source root.
inline std::string sharedDir() {
    if (const char* s = std::getenv("ETLD_SHARED_DIR"); s != nullptr && *s != '\0') return s;
    return sourceRoot() + "/../shared";
}

inline std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

inline const PriceTable& prices() {
    static const Result<PriceTable> table = PriceTable::fromEmbedded();
    REQUIRE(table.ok());
    return table.value();
}

// All records of a whole JSONL file read at once from a fresh state.
inline ChunkResult parseWhole(const FileContext& file, std::string_view bytes) {
    Result<ChunkResult> r = parseJsonlChunk(bytes, 0, file, "", prices());
    REQUIRE(r.ok());
    return std::move(r).value();
}

// The same file read in pieces cut at `cuts` (byte positions), with the
// state saved as text and loaded again between pieces, as the daemon does.
inline ChunkResult parseInPieces(const FileContext& file, std::string_view bytes,
                                 const std::vector<std::size_t>& cuts) {
    ChunkResult all;
    std::string state;
    std::size_t offset = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(bytes.size());
    for (std::size_t end : ends) {
        if (end < offset) continue;
        // A piece ends where the cut is; its incomplete last line is read again next time.
        Result<ChunkResult> r =
            parseJsonlChunk(bytes.substr(offset, end - offset), offset, file, state, prices());
        REQUIRE(r.ok());
        for (UsageRecord& rec : r->records) all.records.push_back(std::move(rec));
        all.skippedLines += r->skippedLines;
        state = r->state;
        offset += r->consumedBytes;
    }
    all.consumedBytes = offset;
    all.state = state;
    return all;
}

// Deep-merges `patch` into `base`: objects merge member by member; the string
// "<delete>" removes a member; anything else replaces.
inline void mergeInto(rapidjson::Value& base, const rapidjson::Value& patch,
                      rapidjson::Document::AllocatorType& alloc) {
    for (auto it = patch.MemberBegin(); it != patch.MemberEnd(); ++it) {
        const std::string name(it->name.GetString(), it->name.GetStringLength());
        auto found = base.FindMember(name.c_str());
        if (it->value.IsString() && std::string_view(it->value.GetString()) == "<delete>") {
            if (found != base.MemberEnd()) base.RemoveMember(found);
            continue;
        }
        if (found != base.MemberEnd() && found->value.IsObject() && it->value.IsObject()) {
            mergeInto(found->value, it->value, alloc);
            continue;
        }
        rapidjson::Value copy(it->value, alloc);
        if (found != base.MemberEnd()) {
            found->value = copy;
        } else {
            base.AddMember(rapidjson::Value(name.c_str(), alloc), copy, alloc);
        }
    }
}

// `base` with `patch` merged in, as one compact JSON line.
inline std::string patched(std::string_view base, std::string_view patch) {
    rapidjson::Document b, p;
    b.Parse(base.data(), base.size());
    p.Parse(patch.data(), patch.size());
    REQUIRE_FALSE(b.HasParseError());
    REQUIRE_FALSE(p.HasParseError());
    mergeInto(b, p, b.GetAllocator());
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    b.Accept(w);
    return {buf.GetString(), buf.GetSize()};
}

// Joins lines into file bytes, each with its '\n'.
inline std::string fileOf(const std::vector<std::string>& lines) {
    std::string out;
    for (const std::string& l : lines) out += l + "\n";
    return out;
}

}  // namespace etld::sources::testing
