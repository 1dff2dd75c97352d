// Time at the edges (common/util/time.h): the event and status text forms,
// the ISO-8601 parser the sources read timestamps with, and whole seconds.
#include <doctest/doctest.h>

#include <cstdio>
#include <random>
#include <string>

#include "util/time.h"

using namespace etld;

namespace {

constexpr UnixMicros kDay = 86400 * kMicrosPerSecond;
constexpr UnixMicros kYear0 = -719528 * kDay;          // 0000-01-01T00:00:00Z
constexpr UnixMicros kYear10000 = 2932897 * kDay;      // 10000-01-01T00:00:00Z

}  // namespace

TEST_CASE("event times: YYYY-MM-DDTHH:MM:SS.mmmZ in UTC, finer fractions truncated") {
    CHECK(formatEventTime(0) == "1970-01-01T00:00:00.000Z");
    CHECK(formatEventTime(1'764'217'460'123'999) == "2025-11-27T04:24:20.123Z");
    CHECK(formatEventTime(-1) == "1969-12-31T23:59:59.999Z");
    CHECK(formatEventTime(1'709'164'800'000'000) == "2024-02-29T00:00:00.000Z");  // leap day
    CHECK(formatEventTime(951'782'400'000'000) == "2000-02-29T00:00:00.000Z");    // leap century
    CHECK(formatEventTime(kYear0) == "0000-01-01T00:00:00.000Z");
    CHECK(formatEventTime(kYear10000 - 1) == "9999-12-31T23:59:59.999Z");
    // Outside four-digit years the same fields, as printf would write them.
    CHECK(formatEventTime(kYear10000) == "10000-01-01T00:00:00.000Z");
    CHECK(formatEventTime(kYear0 - 1) == "-001-12-31T23:59:59.999Z");
}

TEST_CASE("event times read back to the millisecond, across the four-digit years") {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<UnixMicros> any(kYear0, kYear10000 - 1);
    for (int i = 0; i < 100000; ++i) {
        const UnixMicros t = any(rng);
        const std::string text = formatEventTime(t);
        REQUIRE(text.size() == 24);
        const auto back = parseIsoTimestamp(text);
        REQUIRE(back.has_value());
        const UnixMicros floorMs = t - ((t % 1000) + 1000) % 1000;
        CHECK_MESSAGE(*back == floorMs, text);
    }
}

TEST_CASE("ISO-8601 timestamps: zones, fractions, and what is refused") {
    CHECK(parseIsoTimestamp("2026-01-01T10:00:00Z") == 1'767'261'600 * kMicrosPerSecond);
    CHECK(parseIsoTimestamp("2026-01-01t10:00:00z") == 1'767'261'600 * kMicrosPerSecond);
    CHECK(parseIsoTimestamp("2026-01-01 10:00:00Z") == 1'767'261'600 * kMicrosPerSecond);
    CHECK(parseIsoTimestamp("2026-01-01T12:30:00+02:30") == 1'767'261'600 * kMicrosPerSecond);
    CHECK(parseIsoTimestamp("2026-01-01T08:00:00-0200") == 1'767'261'600 * kMicrosPerSecond);
    CHECK(parseIsoTimestamp("2026-01-01T10:00:00.5Z") == 1'767'261'600 * kMicrosPerSecond + 500'000);
    CHECK(parseIsoTimestamp("2026-01-01T10:00:00.123456789Z") ==
          1'767'261'600 * kMicrosPerSecond + 123'456);  // past microseconds: truncated
    CHECK(parseIsoTimestamp("2024-02-29T00:00:00Z").has_value());
    for (const char* bad : {"2026-01-01T10:00:00", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
                            "2026-01-01T24:00:00Z", "2026-01-01T10:00:00.Z", "2026-01-01T10:00:00Zx",
                            "2026-01-01T10:00:00+24:00", "2026-1-01T10:00:00Z", ""})
        CHECK_MESSAGE(!parseIsoTimestamp(bad).has_value(), bad);
}

TEST_CASE("status times keep microseconds and read back exactly") {
    const UnixMicros t = 1'778'055'851'123'456;
    CHECK(formatStatusTime(t) == "2026-05-06T08:24:11.123456+00:00");
    CHECK(parseStatusTime(formatStatusTime(t)) == t);
    CHECK(parseStatusTime(formatStatusTime(-1)) == -1);
}

TEST_CASE("whole seconds since: floored, and 0 when the clock went back") {
    CHECK(wholeSecondsSince(0, 1'999'999) == 1);
    CHECK(wholeSecondsSince(5 * kMicrosPerSecond, 5 * kMicrosPerSecond) == 0);
    CHECK(wholeSecondsSince(5 * kMicrosPerSecond, 0) == 0);
}
