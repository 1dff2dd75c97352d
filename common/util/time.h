// Time: Unix microseconds (UTC) everywhere inside; text only at the edges.
//
// Status timestamps use the `2026-05-06T08:24:11.123456+00:00` form of the
// status spec; event timestamps the `YYYY-MM-DDTHH:MM:SS.mmmZ` form of the
// store spec. The Clock is injectable so that time rules are tested without
// sleeping: the daemon reads time only through it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace etld {

using UnixMicros = std::int64_t;

constexpr UnixMicros kMicrosPerSecond = 1'000'000;

class Clock {
public:
    virtual ~Clock() = default;
    virtual UnixMicros now() const = 0;
};

class SystemClock final : public Clock {
public:
    UnixMicros now() const override;
};

// A clock that reads the system clock plus an offset the tests move.
class OffsetClock final : public Clock {
public:
    UnixMicros now() const override;
    void advance(UnixMicros delta) { offset_ += delta; }
    UnixMicros offset() const { return offset_; }

private:
    UnixMicros offset_ = 0;
};

// A clock that stands still until told otherwise (unit tests).
class ManualClock final : public Clock {
public:
    explicit ManualClock(UnixMicros t) : t_(t) {}
    UnixMicros now() const override { return t_; }
    void set(UnixMicros t) { t_ = t; }
    void advance(UnixMicros delta) { t_ += delta; }

private:
    UnixMicros t_;
};

// `2026-05-06T08:24:11.123456+00:00`
std::string formatStatusTime(UnixMicros t);
// Parses the status form back (as the store path reads what the daemon recorded).
std::optional<UnixMicros> parseStatusTime(std::string_view text);

// Parses an ISO-8601 timestamp with `Z` or a `±HH:MM` offset (fractions of
// any length) into Unix microseconds; nullopt if it is not one.
std::optional<UnixMicros> parseIsoTimestamp(std::string_view text);
// `YYYY-MM-DDTHH:MM:SS.mmmZ`, finer fractions truncated, never rounded.
std::string formatEventTime(UnixMicros t);

// Whole seconds from `then` to `now`, floored at 0.
std::int64_t wholeSecondsSince(UnixMicros then, UnixMicros now);

}  // namespace etld
