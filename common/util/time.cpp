#include "util/time.h"

#include <chrono>
#include <cstdio>

namespace etld {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
    std::int64_t year;
    unsigned month, day, hour, minute, second;
    std::int64_t micros;
};

Civil civilFromMicros(UnixMicros t) {
    std::int64_t secs = t / kMicrosPerSecond;
    std::int64_t micros = t % kMicrosPerSecond;
    if (micros < 0) {
        micros += kMicrosPerSecond;
        --secs;
    }
    std::int64_t days = secs / 86400;
    std::int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        --days;
    }
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
    return {y,
            m,
            d,
            static_cast<unsigned>(sod / 3600),
            static_cast<unsigned>(sod % 3600 / 60),
            static_cast<unsigned>(sod % 60),
            micros};
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

unsigned daysInMonth(int y, int m) {
    static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : kDays[m - 1];
}

}  // namespace

UnixMicros SystemClock::now() const {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

UnixMicros OffsetClock::now() const { return SystemClock().now() + offset_; }

std::string formatStatusTime(UnixMicros t) {
    const Civil c = civilFromMicros(t);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%06lld+00:00",
                  static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second,
                  static_cast<long long>(c.micros));
    return buf;
}

std::string formatEventTime(UnixMicros t) {
    const Civil c = civilFromMicros(t);
    if (c.year >= 0 && c.year <= 9999) {
        // Every event's timestamp passes here: written out by hand, as
        // snprintf's format parsing was 3% of a first ingest's parsing.
        std::string out = "0000-00-00T00:00:00.000Z";
        auto put = [&out](std::size_t at, std::size_t width, std::uint64_t v) {
            for (std::size_t i = width; i-- > 0; v /= 10) out[at + i] = static_cast<char>('0' + v % 10);
        };
        put(0, 4, static_cast<std::uint64_t>(c.year));
        put(5, 2, c.month);
        put(8, 2, c.day);
        put(11, 2, c.hour);
        put(14, 2, c.minute);
        put(17, 2, c.second);
        put(20, 3, static_cast<std::uint64_t>(c.micros / 1000));
        return out;
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u.%03lldZ",
                  static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second,
                  static_cast<long long>(c.micros / 1000));
    return buf;
}

std::optional<UnixMicros> parseIsoTimestamp(std::string_view s) {
    int y, mo, d, h, mi, se;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, se))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || static_cast<unsigned>(d) > daysInMonth(y, mo) || h > 23 ||
        mi > 59 || se > 60)
        return std::nullopt;
    size_t pos = 19;
    std::int64_t micros = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t n = 0;
        std::int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (n < 6) {  // finer than microseconds: truncated
                micros += (s[pos] - '0') * scale;
                scale /= 10;
            }
            ++pos;
            ++n;
        }
        if (n == 0) return std::nullopt;
    }
    std::int64_t offsetSecs = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        const int sign = s[pos] == '-' ? -1 : 1;
        int oh, om;
        if (!digits(s, pos + 1, 2, oh)) return std::nullopt;
        size_t mpos = pos + 3;
        if (mpos < s.size() && s[mpos] == ':') ++mpos;
        if (!digits(s, mpos, 2, om) || oh > 23 || om > 59) return std::nullopt;
        offsetSecs = sign * (oh * 3600 + om * 60);
        pos = mpos + 2;
    } else {
        return std::nullopt;  // no zone: ambiguous, not accepted
    }
    if (pos != s.size()) return std::nullopt;
    const std::int64_t secs = daysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
                              h * 3600 + mi * 60 + se - offsetSecs;
    return secs * kMicrosPerSecond + micros;
}

std::optional<UnixMicros> parseStatusTime(std::string_view text) { return parseIsoTimestamp(text); }

std::int64_t wholeSecondsSince(UnixMicros then, UnixMicros now) {
    if (now <= then) return 0;
    return (now - then) / kMicrosPerSecond;
}

}  // namespace etld
