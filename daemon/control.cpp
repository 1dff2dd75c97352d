#include "control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "log.h"
#include "util/paths.h"
#include "util/unique_fd.h"

namespace etld::daemon {

using protocol::ErrorCode;

// One connection. Owned by the server's map; calls hold weak references.
class Client : public std::enable_shared_from_this<Client> {
public:
    Client(ControlServer& server, std::uint64_t idleTimeoutMs)
        : server_(server), splitter_(protocol::kMaxRequestBytes), idleTimeoutMs_(idleTimeoutMs) {}

    Status init(uv_loop_t* loop) {
        if (int rc = uv_pipe_init(loop, pipe_.get(), 0); rc != 0)
            return Error{"socket", uv_strerror(rc)};
        pipe_.markInitialized();
        pipe_.get()->data = this;
        uv_timer_init(loop, idle_.get());
        idle_.markInitialized();
        idle_.get()->data = this;
        return {};
    }

    uv_stream_t* stream() { return pipe_.stream(); }

    void start() {
        armIdle();
        uv_read_start(pipe_.stream(), &Client::onAlloc, &Client::onRead);
    }

    // Writes a line; a client that lets replies pile up unread is closed.
    void send(std::string line) {
        if (closing_) return;
        auto* w = new WriteRequest;
        w->bytes = std::move(line);
        uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
        if (uv_write(&w->req, pipe_.stream(), &buf, 1, &Client::onWrite) != 0) {
            delete w;
            close();
            return;
        }
        if (uv_stream_get_write_queue_size(pipe_.stream()) > kMaxUnreadReplyBytes) {
            log::warning("a client is not reading its replies, disconnecting it");
            close();
        }
    }

    // Sends a final error and closes once it is written.
    void sendAndClose(std::string line) {
        send(std::move(line));
        if (closing_) return;
        closeAfterWrites_ = true;
        uv_read_stop(pipe_.stream());
        if (uv_stream_get_write_queue_size(pipe_.stream()) == 0) close();
    }

    // The current call answered: reply, then dispatch what waits behind it.
    void finishCall(std::string line) {
        busy_ = false;
        send(std::move(line));
        armIdle();
        pump();
    }

    void keepCallOpen() { subscribed_ = true; }

    void close() {
        if (closing_) return;
        closing_ = true;
        pipe_.get()->data = nullptr;  // pending write callbacks must not find us
        uv_read_stop(pipe_.stream());
        pipe_.close();
        idle_.close();
        server_.remove(this);  // may destroy *this: nothing after it
    }

private:
    void armIdle() {
        if (closing_) return;
        uv_timer_start(idle_.get(), &Client::onIdle, idleTimeoutMs_, 0);
    }

    void pump() {
        while (!busy_ && !closing_ && !subscribed_ && !lines_.empty()) {
            std::string line = std::move(lines_.front());
            lines_.pop_front();
            busy_ = true;
            auto self = shared_from_this();
            server_.dispatch(self, line);
        }
    }

    void onBytes(const char* data, std::size_t n) {
        splitter_.feed(std::string_view(data, n));
        while (auto line = splitter_.next()) lines_.push_back(std::move(*line));
        if (splitter_.overflowed()) {
            lines_.clear();
            rapidjson::Value nullId;
            sendAndClose(protocol::errorLine(
                nullId, ErrorCode::RequestTooLarge,
                "a request line may hold at most " + std::to_string(protocol::kMaxRequestBytes) +
                    " bytes"));
            return;
        }
        armIdle();
        pump();
    }

    static void onAlloc(uv_handle_t*, size_t suggested, uv_buf_t* buf) noexcept {
        buf->base = new (std::nothrow) char[suggested];
        buf->len = buf->base ? suggested : 0;
    }

    static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
        auto* self = static_cast<Client*>(stream->data);
        // Keeps the client alive until this callback returns, even if it closes.
        std::shared_ptr<Client> keep = self ? self->shared_from_this() : nullptr;
        try {
            if (self && nread > 0) self->onBytes(buf->base, static_cast<std::size_t>(nread));
            else if (self && nread < 0) self->close();  // EOF or reset: its own loss
        } catch (const std::exception& e) {
            log::error(std::string("client read failed: ") + e.what());
            if (stream->data) self->close();
        }
        keep.reset();
        delete[] buf->base;
    }

    static void onWrite(uv_write_t* req, int status) noexcept {
        auto* w = reinterpret_cast<WriteRequest*>(req);
        auto* self = static_cast<Client*>(req->handle->data);
        delete w;
        if (!self) return;  // closing, or UV_ECANCELED after close
        if (status < 0) {
            self->close();
        } else if (self->closeAfterWrites_ &&
                   uv_stream_get_write_queue_size(self->pipe_.stream()) == 0) {
            self->close();
        }
    }

    static void onIdle(uv_timer_t* timer) noexcept {
        auto* self = static_cast<Client*>(timer->data);
        if (!self || self->busy_ || self->subscribed_) return;
        log::debug("closing an idle client");
        self->close();
    }

    ControlServer& server_;
    UvHandle<uv_pipe_t> pipe_;
    UvHandle<uv_timer_t> idle_;
    protocol::LineSplitter splitter_;
    std::deque<std::string> lines_;  // complete requests waiting their turn
    std::uint64_t idleTimeoutMs_;
    bool busy_ = false;        // a call is being answered
    bool subscribed_ = false;  // the connection takes no other requests
    bool closing_ = false;
    bool closeAfterWrites_ = false;
};

Call::Call(std::weak_ptr<Client> client, protocol::Request request)
    : state_(std::make_shared<State>(State{std::move(client), std::move(request), false})) {}

bool Call::clientGone() const { return state_->client.expired(); }

void Call::finish(std::string line) const {
    if (state_->answered) return;
    state_->answered = true;
    if (auto client = state_->client.lock()) client->finishCall(std::move(line));
}

void Call::reply(const rapidjson::Value& result) const {
    finish(protocol::successLine(id(), result));
}

void Call::fail(ErrorCode code, std::string_view message, const rapidjson::Value* data) const {
    finish(protocol::errorLine(id(), code, message, data));
}

void Call::keepOpen() const {
    if (auto client = state_->client.lock()) client->keepCallOpen();
}

void Call::sendEvent(std::string_view event, const rapidjson::Value& result) const {
    if (auto client = state_->client.lock()) client->send(protocol::eventLine(id(), event, result));
}

ControlServer::ControlServer(uv_loop_t* loop, std::string socketPath)
    : loop_(loop), path_(std::move(socketPath)), ownUid_(geteuid()) {}

ControlServer::~ControlServer() { close(); }

void ControlServer::addMethod(MethodSpec spec) {
    if (spec.advertised) methodOrder_.push_back(spec.name);
    methods_[spec.name] = std::move(spec);
}

std::vector<std::string> ControlServer::advertisedMethods() const { return methodOrder_; }

namespace {

// A socket file left by a killed daemon refuses connections; a live one answers.
bool socketAnswers(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

constexpr unsigned kSocketDirMode = 0700;

}  // namespace

Status ControlServer::listen() {
    if (path_.size() >= sizeof(sockaddr_un::sun_path)) {
        return Error{"socket_path", "socket path is " + std::to_string(path_.size()) +
                                        " bytes, longer than the platform's limit of " +
                                        std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ": " +
                                        path_};
    }
    const std::string dir = parentDirectory(path_);
    if (!makeDirectories(dir, kSocketDirMode))
        return Error{"socket_dir", "cannot create socket directory " + dir + ": " + std::strerror(errno)};
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return Error{"socket_dir", dir + " is not a directory"};
    if (st.st_uid != ownUid_)
        return Error{"socket_dir", "socket directory " + dir + " belongs to another user (uid " +
                                       std::to_string(st.st_uid) + "), refusing to use it"};
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return Error{"socket_dir", "socket directory " + dir +
                                       " is writable by others, refusing to use it"};

    struct stat sst {};
    if (lstat(path_.c_str(), &sst) == 0) {
        if (socketAnswers(path_))
            return Error{"socket_in_use", "a daemon already answers at " + path_ +
                                              " (another etld, perhaps serving another store)"};
        if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
            return Error{"socket", "cannot remove the stale socket " + path_ + ": " + std::strerror(errno)};
        log::info("removed a stale socket left by a daemon that is gone: " + path_);
    }

    if (int rc = uv_pipe_init(loop_, server_.get(), 0); rc != 0)
        return Error{"socket", std::string("pipe init: ") + uv_strerror(rc)};
    server_.markInitialized();
    server_.get()->data = this;
    const mode_t oldMask = ::umask(0177);  // the socket is born 0600
    const int bound = uv_pipe_bind(server_.get(), path_.c_str());
    ::umask(oldMask);
    if (bound != 0) return Error{"socket", "cannot bind " + path_ + ": " + uv_strerror(bound)};
    ::chmod(path_.c_str(), 0600);
    if (int rc = uv_listen(server_.stream(), 128, &ControlServer::onConnection); rc != 0)
        return Error{"socket", "cannot listen on " + path_ + ": " + uv_strerror(rc)};
    listening_ = true;
    return {};
}

void ControlServer::close() {
    if (listening_) {
        server_.close();
        ::unlink(path_.c_str());
        listening_ = false;
    } else {
        server_.close();
    }
    while (!clients_.empty()) clients_.begin()->first->close();
}

void ControlServer::onConnection(uv_stream_t* server, int status) noexcept {
    auto* self = static_cast<ControlServer*>(server->data);
    if (status < 0) {
        log::warning(std::string("accept failed: ") + uv_strerror(status) + ", skipping");
        return;
    }
    try {
        self->accept();
    } catch (const std::exception& e) {
        log::error(std::string("accept failed: ") + e.what());
    }
}

void ControlServer::accept() {
    auto client = std::make_shared<Client>(*this, idleTimeoutMs_);
    if (auto st = client->init(loop_); !st) {
        log::warning("cannot set up a client: " + st.error().message + ", skipping");
        return;
    }
    clients_.emplace(client.get(), client);
    if (uv_accept(server_.stream(), client->stream()) != 0) {
        client->close();
        return;
    }
    rapidjson::Value nullId;
    uv_os_fd_t fd = -1;
    uv_fileno(reinterpret_cast<uv_handle_t*>(client->stream()), &fd);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != ownUid_ && cred.uid != 0)) {
        log::warning("refused a client of uid " + std::to_string(cred.uid));
        client->sendAndClose(protocol::errorLine(nullId, ErrorCode::PermissionDenied,
                                                 "this daemon serves only its own user"));
        return;
    }
    if (clients_.size() > maxClients_) {
        client->sendAndClose(protocol::errorLine(nullId, ErrorCode::Unavailable,
                                                 "too many clients, try again later"));
        return;
    }
    client->start();
}

void ControlServer::dispatch(const std::shared_ptr<Client>& client, const std::string& line) {
    protocol::Request request;
    protocol::RequestError error;
    if (!protocol::parseRequest(line, request, error)) {
        client->finishCall(protocol::errorLine(error.id, error.code, error.message));
        return;
    }
    auto it = methods_.find(request.method);
    if (it == methods_.end()) {
        client->finishCall(protocol::errorLine(request.id, ErrorCode::UnknownMethod,
                                               "unknown method '" + request.method + "'"));
        return;
    }
    Call call(client, std::move(request));
    try {
        it->second.handler(call);
    } catch (const std::exception& e) {
        log::error("method " + call.method() + " failed: " + e.what());
        call.fail(ErrorCode::Internal, std::string("internal error: ") + e.what());
    }
}

void ControlServer::remove(Client* client) { clients_.erase(client); }

}  // namespace etld::daemon
