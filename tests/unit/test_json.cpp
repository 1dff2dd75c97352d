// json::parseInPlace against json::parse: the same inputs accepted, the same
// values produced (json_util.h).
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "sources/json_util.h"

namespace etld::sources {
namespace {

using namespace std::string_view_literals;

TEST_CASE("parseInPlace accepts what parse accepts and gives the same document") {
    const std::string_view inputs[] = {
        R"({"a":"x\ny\u00e9\"","b":[1,2.5,-3e2,{"c":null}],"d":true})"sv,
        R"({"big":12345678901234567890123,"f":0.1000000000000000055511151231257827})"sv,
        "\xEF\xBB\xBF{\"a\":1}"sv,   // a byte-order mark
        "\xEF{\"a\":1}"sv,           // the first byte of one
        "\xEF\xBB{\"a\":1}"sv,       // the first two
        "{\"a\":\"\xFF\xFE\"}"sv,    // not UTF-8: accepted by both, as is
        "{\"a\":1}  \t"sv,
        "{\"a\":1}\0trailing"sv,     // a NUL ends the input for both
        "{\"a\":\"x\0y\"}"sv,        // a NUL inside a string
        "{\"a\":1}x"sv,
        "{\"a\":"sv,
        ""sv,
        "\"\\ud800\""sv,             // a lone surrogate escape
        "{\"a\":\"0123456789abcdef0123456789abcdef\\n0123456789abcdef\"}"sv,  // runs past 16 bytes
        "{\"a\":\"0123456789abcdef0123456789abcdef\x01\"}"sv,  // a control byte after a long run
        "{\"a\":\"0123456789abcdef0123456789abcdef"sv,  // unterminated after a long run
        "[1,2"sv,
        "{\"a\":tru}"sv,
    };
    for (const std::string_view text : inputs) {
        CAPTURE(std::string(text));
        rapidjson::Document copied, inPlace;
        std::string buffer;
        const bool okCopied = json::parse(copied, text);
        const bool okInPlace = json::parseInPlace(inPlace, buffer, text);
        CHECK(okCopied == okInPlace);
        if (okCopied && okInPlace) CHECK(copied == inPlace);
    }
}

TEST_CASE("parseInPlace leaves strings with embedded escapes whole") {
    rapidjson::Document d;
    std::string buffer;
    REQUIRE(json::parseInPlace(d, buffer, R"({"t":"a\u0000b\tc"})"));
    const auto s = json::view(d["t"]);
    CHECK(s == std::string_view("a\0b\tc", 5));
}

}  // namespace
}  // namespace etld::sources
