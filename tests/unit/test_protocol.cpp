// The control socket's wire format (common/protocol, spec/protocol.md): line
// framing with its size limit, the request and response envelopes, and the
// closed set of error codes. The socket itself is tested in
// tests/component/test_control.cpp and tests/integration/test_protocol.cpp.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "protocol/protocol.h"

using namespace etld::protocol;

namespace {

// Parsed with its length, as the daemon parses lines: the NUL-terminated
// overload scans with SSE2 loads that read past the literal's end.
rapidjson::Document json(std::string_view text) {
    rapidjson::Document d;
    d.Parse(text.data(), text.size());
    REQUIRE_FALSE(d.HasParseError());
    return d;
}

}  // namespace

TEST_CASE("error codes: the closed set of snake_case names, both ways") {
    const char* names[] = {"parse_error", "invalid_request", "unknown_method",    "invalid_params",
                           "request_too_large", "busy",      "unavailable",       "permission_denied",
                           "internal"};
    for (const char* name : names) {
        auto code = errorCodeFromName(name);
        REQUIRE_MESSAGE(code.has_value(), name);
        CHECK(errorCodeName(*code) == name);
    }
    CHECK_FALSE(errorCodeFromName("Busy").has_value());
    CHECK_FALSE(errorCodeFromName("").has_value());
}

TEST_CASE("lines: pipelined requests and lines split across reads come out whole, in order") {
    LineSplitter s(kMaxRequestBytes);
    s.feed("{\"a\":1}\n{\"b\"");
    CHECK(s.next() == "{\"a\":1}");
    CHECK_FALSE(s.next().has_value());  // the second is not complete yet
    s.feed(":2}\n\n{\"c\":3}\n");
    CHECK(s.next() == "{\"b\":2}");
    CHECK(s.next() == "");  // an empty line is a line (the caller answers parse_error)
    CHECK(s.next() == "{\"c\":3}");
    CHECK_FALSE(s.next().has_value());
    CHECK(s.buffered() == 0);
    CHECK_FALSE(s.overflowed());
}

TEST_CASE("lines: exactly the limit is accepted, one byte more overflows, with or without its newline") {
    {
        LineSplitter s(kMaxRequestBytes);
        s.feed(std::string(kMaxRequestBytes, 'x') + "\n");
        auto line = s.next();
        REQUIRE(line.has_value());
        CHECK(line->size() == kMaxRequestBytes);
        CHECK_FALSE(s.overflowed());
    }
    {
        LineSplitter s(kMaxRequestBytes);
        s.feed(std::string(kMaxRequestBytes + 1, 'x') + "\n");
        CHECK_FALSE(s.next().has_value());
        CHECK(s.overflowed());
    }
    {
        // No newline yet: the splitter does not wait for one to refuse the
        // line, and lets go of what it held.
        LineSplitter s(kMaxRequestBytes);
        s.feed(std::string(kMaxRequestBytes, 'x'));
        CHECK_FALSE(s.next().has_value());
        CHECK_FALSE(s.overflowed());
        s.feed("x");
        CHECK_FALSE(s.next().has_value());
        CHECK(s.overflowed());
        CHECK(s.buffered() == 0);
        s.feed("more\n");  // ignored once overflowed
        CHECK_FALSE(s.next().has_value());
    }
}

TEST_CASE("requests: a valid one, with params omitted, null or an object") {
    Request r;
    RequestError e;
    REQUIRE(parseRequest(R"({"v":1,"id":7,"method":"status"})", r, e));
    CHECK(r.method == "status");
    CHECK(r.id.IsInt());
    CHECK(r.id.GetInt() == 7);
    CHECK(r.params.IsObject());
    CHECK(r.params.MemberCount() == 0);

    Request s;
    REQUIRE(parseRequest(R"({"v":1,"id":"x","method":"backfill","params":{"force":true}})", s, e));
    CHECK(std::string(s.id.GetString()) == "x");
    CHECK(s.params["force"].GetBool());

    Request t;
    REQUIRE(parseRequest(R"({"v":1,"method":"ping","params":null})", t, e));
    CHECK(t.id.IsNull());  // no id: null, echoed as such
    CHECK(t.params.IsObject());
}

TEST_CASE("requests: what is refused, with the code to answer and the id when it could be read") {
    struct Case {
        const char* line;
        ErrorCode code;
        bool idRecovered;
    };
    const Case cases[] = {
        {"not json", ErrorCode::ParseError, false},
        {"", ErrorCode::ParseError, false},
        {"[1,2]", ErrorCode::InvalidRequest, false},
        {R"({"id":3,"method":"status"})", ErrorCode::InvalidRequest, true},           // no v
        {R"({"v":2,"id":3,"method":"status"})", ErrorCode::InvalidRequest, true},     // another v
        {R"({"v":"1","id":3,"method":"status"})", ErrorCode::InvalidRequest, true},   // v as text
        {R"({"v":1,"id":[3],"method":"status"})", ErrorCode::InvalidRequest, false},  // id not a scalar
        {R"({"v":1,"id":3})", ErrorCode::InvalidRequest, true},                       // no method
        {R"({"v":1,"id":3,"method":5})", ErrorCode::InvalidRequest, true},
        {R"({"v":1,"id":3,"method":"status","params":[1]})", ErrorCode::InvalidRequest, true},
    };
    for (const Case& c : cases) {
        Request r;
        RequestError e;
        CHECK_MESSAGE(!parseRequest(c.line, r, e), c.line);
        CHECK_MESSAGE(e.code == c.code, c.line);
        CHECK_MESSAGE(!e.message.empty(), c.line);
        if (c.idRecovered) {
            CHECK_MESSAGE((e.id.IsInt() && e.id.GetInt() == 3), c.line);
        } else {
            CHECK_MESSAGE(e.id.IsNull(), c.line);
        }
    }
}

TEST_CASE("responses: the envelopes, byte for byte, each one line") {
    const auto id = json("12");
    const auto result = json(R"({"health":"live"})");
    CHECK(successLine(id, result) == "{\"v\":1,\"id\":12,\"ok\":true,\"result\":{\"health\":\"live\"}}\n");
    const auto data = json(R"({"job_id":4})");
    CHECK(errorLine(id, ErrorCode::Busy, "a job is running", &data) ==
          "{\"v\":1,\"id\":12,\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"a job is "
          "running\",\"data\":{\"job_id\":4}}}\n");
    CHECK(errorLine(json("null"), ErrorCode::ParseError, "line\nbreak") ==
          "{\"v\":1,\"id\":null,\"ok\":false,\"error\":{\"code\":\"parse_error\",\"message\":\"line\\nbreak\"}}\n");
    CHECK(eventLine(json("\"sub\""), "status", result) ==
          "{\"v\":1,\"id\":\"sub\",\"ok\":true,\"event\":\"status\",\"result\":{\"health\":\"live\"}}\n");
    const auto params = json(R"({"force":false})");
    CHECK(requestLine(5, "backfill", &params) ==
          "{\"v\":1,\"id\":5,\"method\":\"backfill\",\"params\":{\"force\":false}}\n");
    CHECK(requestLine(6, "ping") == "{\"v\":1,\"id\":6,\"method\":\"ping\"}\n");
}

TEST_CASE("responses read back: success, error with data, and replies that are not ones") {
    auto ok = parseResponse(successLine(json("1"), json(R"({"n":2})")));
    REQUIRE(ok.ok());
    CHECK(ok->ok);
    CHECK(ok->result["n"].GetInt() == 2);

    const auto data = json(R"({"fault":"disk full"})");
    auto failed = parseResponse(errorLine(json("1"), ErrorCode::Unavailable, "not now", &data));
    REQUIRE(failed.ok());
    CHECK_FALSE(failed->ok);
    CHECK(failed->errorCode == "unavailable");
    CHECK(failed->errorMessage == "not now");
    CHECK(std::string(failed->errorData["fault"].GetString()) == "disk full");

    for (const char* bad : {"", "[]", R"({"v":1})", R"({"ok":"yes"})", R"({"ok":false})",
                            R"({"ok":false,"error":"busy"})"}) {
        auto r = parseResponse(bad);
        CHECK_MESSAGE(!r.ok(), bad);
        if (!r.ok()) CHECK(r.error().code == "bad_response");
    }
}
