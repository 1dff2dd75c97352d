// The control socket: listening, clients, and the one dispatcher.
//
// Methods are data: a table of {name, handler, advertised}. The dispatcher
// parses each request line, finds the method and runs its handler inside a
// try/catch, so every failure becomes an error reply and no exception
// crosses libuv. Replies go out in request order: a client's next request is
// dispatched only once the current call has answered (a `sync` waits for its
// barrier; later requests on that connection wait behind it).
//
// Every connection's peer uid is checked (SO_PEERCRED): neither ours nor root
// gets permission_denied and is closed. A client over the limit gets
// unavailable and is closed; a line over kMaxRequestBytes gets
// request_too_large and is closed; a client idle with nothing pending, or one
// that lets unread replies pile up, is closed. None of this touches other
// clients. All of it runs on the loop thread.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/protocol.h"
#include "uv_handle.h"

namespace etld::daemon {

// Clients at once; past it, new connections get `unavailable` and are closed.
constexpr std::size_t kMaxClients = 256;
// A client with nothing pending that sends nothing this long is closed.
constexpr std::uint64_t kClientIdleTimeoutMs = 5 * 60 * 1000;
// Unread replies a client may leave queued before it is closed.
constexpr std::size_t kMaxUnreadReplyBytes = 8 * 1024 * 1024;

class Client;

// One request being answered. Copyable; answering twice, or after the client
// went away, does nothing.
class Call {
public:
    Call(std::weak_ptr<Client> client, protocol::Request request);
    const std::string& method() const { return state_->request.method; }
    const rapidjson::Value& params() const { return state_->request.params; }
    const rapidjson::Value& id() const { return state_->request.id; }
    bool answered() const { return state_->answered; }
    bool clientGone() const;

    void reply(const rapidjson::Value& result) const;
    void fail(protocol::ErrorCode code, std::string_view message,
              const rapidjson::Value* data = nullptr) const;
    // Subscriptions: the connection takes no other requests from now on and
    // is never closed as idle (call before reply()).
    void keepOpen() const;
    // Subscriptions: an extra line after the reply.
    void sendEvent(std::string_view event, const rapidjson::Value& result) const;

private:
    struct State {
        std::weak_ptr<Client> client;
        protocol::Request request;
        bool answered = false;
    };
    void finish(std::string line) const;
    std::shared_ptr<State> state_;
};

struct MethodSpec {
    std::string name;
    std::function<void(const Call&)> handler;
    bool advertised = true;  // listed by hello; test hooks are not
};

class ControlServer {
public:
    ControlServer(uv_loop_t* loop, std::string socketPath);
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    void addMethod(MethodSpec spec);
    std::vector<std::string> advertisedMethods() const;

    // Checks the directory, clears a dead daemon's socket, binds (0600) and
    // listens. Errors are start-up errors: one clear line, fatal.
    Status listen();
    // Stops accepting and closes every client; removes the socket file.
    void close();

    std::size_t clientCount() const { return clients_.size(); }
    void setIdleTimeoutMs(std::uint64_t ms) { idleTimeoutMs_ = ms; }
    std::uint64_t idleTimeoutMs() const { return idleTimeoutMs_; }
    // Lowers the client limit (tests; kMaxClients otherwise).
    void setMaxClients(std::size_t n) { maxClients_ = n; }

private:
    friend class Client;
    static void onConnection(uv_stream_t* server, int status) noexcept;
    void accept();
    void dispatch(const std::shared_ptr<Client>& client, const std::string& line);
    void remove(Client* client);

    uv_loop_t* loop_;
    std::string path_;
    UvHandle<uv_pipe_t> server_;
    bool listening_ = false;
    uid_t ownUid_;
    std::uint64_t idleTimeoutMs_ = kClientIdleTimeoutMs;
    std::size_t maxClients_ = kMaxClients;
    std::unordered_map<std::string, MethodSpec> methods_;
    std::vector<std::string> methodOrder_;
    std::unordered_map<Client*, std::shared_ptr<Client>> clients_;
};

}  // namespace etld::daemon
