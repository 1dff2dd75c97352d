// A blocking client of the control socket, with one deadline per call.
// etlctl is a short-lived process: blocking I/O with poll() is the simplest
// correct shape here; it never includes <uv.h>.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/protocol.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace etld::ctl {

// Why a connection or call failed; decides fallback and exit codes.
enum class Failure {
    NoDaemon,          // the socket does not exist, or connecting was refused: fall back
    PermissionDenied,  // the socket, or the daemon, refused us
    Timeout,           // accepted but did not answer in time
    Closed,            // accepted, then closed or reset without a reply
    Other,
};

struct ClientError {
    Failure kind;
    std::string message;
};

class Client {
public:
    // Connects; the deadline covers each later call separately.
    static bool connect(const std::string& socketPath, int timeoutMs, Client& out,
                        ClientError& error);

    // Sends one request and waits for its response line.
    bool call(std::string_view method, const rapidjson::Value* params, protocol::Response& out,
              ClientError& error);

private:
    bool readLine(std::string& line, std::int64_t deadlineMs, ClientError& error);

    UniqueFd fd_;
    int timeoutMs_ = 2000;
    std::int64_t nextId_ = 1;
    std::string buffer_;
};

}  // namespace etld::ctl
