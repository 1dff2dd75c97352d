// The control socket's wire format (shared/spec/protocol.md).
//
// One request per line: a compact JSON object and "\n". One response line per
// request, in order. Requests may be pipelined, so the reader splits a byte
// stream into lines and refuses a line longer than kMaxRequestBytes without
// holding more than that in memory. Error codes are a closed set (ErrorCode);
// their snake_case spellings are the contract, messages are for people.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace etld::protocol {

constexpr int kProtocolVersion = 1;
// A request line may hold this many bytes before its newline.
constexpr std::size_t kMaxRequestBytes = 1024 * 1024;

enum class ErrorCode {
    ParseError,
    InvalidRequest,
    UnknownMethod,
    InvalidParams,
    RequestTooLarge,
    Busy,
    Unavailable,
    PermissionDenied,
    Internal,
};
std::string_view errorCodeName(ErrorCode code);
std::optional<ErrorCode> errorCodeFromName(std::string_view name);

// Splits a byte stream into lines. feed() appends bytes; next() yields each
// complete line (without "\n"). A line that grows past the limit before its
// newline turns the splitter into the overflowed state: the caller answers
// request_too_large and closes.
class LineSplitter {
public:
    explicit LineSplitter(std::size_t maxLineBytes) : maxLineBytes_(maxLineBytes) {}
    void feed(std::string_view bytes);
    std::optional<std::string> next();
    bool overflowed() const { return overflowed_; }
    std::size_t buffered() const { return buffer_.size() - consumed_; }

private:
    std::size_t maxLineBytes_;
    std::string buffer_;
    std::size_t consumed_ = 0;  // bytes of buffer_ already handed out
    std::size_t scanned_ = 0;   // bytes after consumed_ known to hold no "\n"
    bool overflowed_ = false;
};

struct Request {
    rapidjson::Document id;  // any JSON scalar; Null when absent
    std::string method;
    rapidjson::Document params;  // an object (empty when omitted)
};

// A failure to understand a request, with the id when it could be read.
struct RequestError {
    ErrorCode code;
    std::string message;
    rapidjson::Document id;
};

// Parses one request line. On failure the error carries the code to answer
// with (parse_error or invalid_request) and whatever id could be recovered.
bool parseRequest(std::string_view line, Request& out, RequestError& error);

// Response lines, each ending in "\n".
std::string successLine(const rapidjson::Value& id, const rapidjson::Value& result);
std::string errorLine(const rapidjson::Value& id, ErrorCode code, std::string_view message,
                      const rapidjson::Value* data = nullptr);
// A subscription update: the subscribe request's id, "event":"status".
std::string eventLine(const rapidjson::Value& id, std::string_view event,
                      const rapidjson::Value& result);

// A request line (client side), ending in "\n".
std::string requestLine(std::int64_t id, std::string_view method,
                        const rapidjson::Value* params = nullptr);

// A response as the client sees it.
struct Response {
    bool ok = false;
    rapidjson::Document result;  // when ok
    std::string errorCode;       // when !ok
    std::string errorMessage;
    rapidjson::Document errorData;
};
Result<Response> parseResponse(std::string_view line);

}  // namespace etld::protocol
