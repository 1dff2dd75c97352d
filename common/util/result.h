// Result<T>: the value of an operation that can fail, or the error that says why.
//
// Operations that can fail return this instead of throwing; exceptions are
// caught at three borders only (main, the dispatcher, the libuv trampolines).
// An Error carries a stable snake_case code for programs, a message for
// people, and the SQLite extended result code when one caused it (0 if not).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace etld {

struct Error {
    std::string code;     // closed set per layer, e.g. "store_io", "schema_too_new"
    std::string message;  // one line, for people
    int sqliteCode = 0;   // extended result code, captured at once; 0 if none
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const { return error_; }

private:
    Error error_;
    bool failed_ = false;
};

using Status = Result<void>;

}  // namespace etld
