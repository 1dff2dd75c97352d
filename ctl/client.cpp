#include "client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace etld::ctl {
namespace {

std::int64_t monotonicMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

bool Client::connect(const std::string& socketPath, int timeoutMs, Client& out,
                     ClientError& error) {
    sockaddr_un addr{};
    if (socketPath.size() >= sizeof addr.sun_path) {
        error = {Failure::Other, "socket path too long: " + socketPath};
        return false;
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        error = {Failure::Other, std::string("socket: ") + std::strerror(errno)};
        return false;
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
            error = {Failure::NoDaemon, "no daemon at " + socketPath + " (" + std::strerror(err) + ")"};
        else if (err == EACCES || err == EPERM)
            error = {Failure::PermissionDenied, "permission denied connecting to " + socketPath};
        else
            error = {Failure::Other, "cannot connect to " + socketPath + ": " + std::strerror(err)};
        return false;
    }
    out.fd_ = std::move(fd);
    out.timeoutMs_ = timeoutMs;
    return true;
}

bool Client::call(std::string_view method, const rapidjson::Value* params,
                  protocol::Response& out, ClientError& error) {
    const std::int64_t id = nextId_++;
    const std::string line = protocol::requestLine(id, method, params);
    const std::int64_t deadline = monotonicMs() + timeoutMs_;
    size_t sent = 0;
    std::string sendFailure;
    while (sent < line.size()) {
        const ssize_t n = ::send(fd_.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            // The daemon may have spoken and closed before reading us (a
            // permission_denied or unavailable sent at accept): that line is
            // still in our receive queue, and it is the real answer.
            sendFailure = std::string("the daemon closed the connection: ") + std::strerror(errno);
            break;
        }
        sent += static_cast<size_t>(n);
    }
    for (;;) {
        std::string reply;
        if (!readLine(reply, deadline, error)) {
            if (!sendFailure.empty()) error = {Failure::Closed, sendFailure};
            return false;
        }
        auto parsed = protocol::parseResponse(reply);
        if (!parsed) {
            error = {Failure::Other, parsed.error().message};
            return false;
        }
        rapidjson::Document doc;
        doc.Parse(reply.data(), reply.size());
        auto rid = doc.FindMember("id");
        // A reply to an earlier, unrelated line (e.g. a connection-level
        // error carries id null) still answers us if it is an error.
        if (rid != doc.MemberEnd() && rid->value.IsInt64() && rid->value.GetInt64() != id) continue;
        if (!parsed->ok && parsed->errorCode == "permission_denied") {
            error = {Failure::PermissionDenied, "the daemon refused us: " + parsed->errorMessage};
            return false;
        }
        out = std::move(parsed).value();
        return true;
    }
}

bool Client::readLine(std::string& line, std::int64_t deadlineMs, ClientError& error) {
    for (;;) {
        if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
            line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return true;
        }
        const std::int64_t left = deadlineMs - monotonicMs();
        if (left <= 0) {
            error = {Failure::Timeout, "the daemon did not answer within " + std::to_string(timeoutMs_) + " ms"};
            return false;
        }
        pollfd p{fd_.get(), POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left));
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) continue;  // the deadline check above reports it
        char buf[65536];
        const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            error = {Failure::Closed, n == 0 ? "the daemon closed the connection without a reply"
                                             : std::string("connection reset: ") + std::strerror(errno)};
            return false;
        }
        buffer_.append(buf, static_cast<size_t>(n));
    }
}

}  // namespace etld::ctl
