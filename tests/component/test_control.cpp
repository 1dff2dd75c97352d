// The control server (daemon/control.h) on its own loop, with clients that
// are libuv pipes on the same loop: the method table, the dispatcher's error
// replies, replies in request order behind a deferred call, the client limit
// and a clean close.
//
// libuv-style: callbacks record what they see, the test asserts after
// uv_run() returns, and every test ends with uv_loop_close() == 0 — a handle
// the server leaks fails the test. Deferred replies come from zero-delay
// timers (the next loop turn), never from sleeping.
#include <doctest/doctest.h>
#include <uv.h>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "control.h"
#include "protocol/protocol.h"
#include "support.h"

using namespace etld;
using namespace etld::daemon;
using etld::test::TempDir;

namespace {

// One response line, parsed.
struct Reply {
    bool ok = false;
    std::string id;  // the id as compact JSON ("1", "null")
    std::string errorCode;
    std::string errorMessage;
    rapidjson::Document result;
};

Reply parseReply(const std::string& line) {
    Reply r;
    rapidjson::Document doc;
    doc.Parse(line.data(), line.size());
    REQUIRE_MESSAGE(doc.IsObject(), line);
    auto id = doc.FindMember("id");
    r.id = id == doc.MemberEnd() ? "absent"
           : id->value.IsInt64() ? std::to_string(id->value.GetInt64())
           : id->value.IsNull()  ? "null"
                                 : "other";
    auto parsed = protocol::parseResponse(line);
    REQUIRE(parsed);
    r.ok = parsed->ok;
    r.errorCode = parsed->errorCode;
    r.errorMessage = parsed->errorMessage;
    r.result.CopyFrom(parsed->result, r.result.GetAllocator());
    return r;
}

std::string request(std::int64_t id, const std::string& method) {
    return protocol::requestLine(id, method);
}

// A client on the test's loop. Lines arrive through onLine; the server
// closing the connection through onEof (which closes the client by default).
class TestClient {
  public:
    std::function<void(TestClient&, const std::string&)> onLine;
    std::function<void(TestClient&)> onConnect;
    std::function<void(TestClient&)> onEof;
    std::vector<std::string> lines;
    bool eof = false;
    int connectStatus = 1;  // 1: not yet

    TestClient() = default;
    TestClient(const TestClient&) = delete;
    TestClient& operator=(const TestClient&) = delete;

    void connect(uv_loop_t* loop, const std::string& path) {
        REQUIRE(uv_pipe_init(loop, &pipe_, 0) == 0);
        pipe_.data = this;
        open_ = true;
        uv_pipe_connect(&connect_, &pipe_, path.c_str(), &TestClient::onConnected);
    }

    void send(const std::string& bytes) {
        auto* w = new WriteRequest;
        w->bytes = bytes;
        uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
        if (uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int) {
                delete reinterpret_cast<WriteRequest*>(req);
            }) != 0)
            delete w;
    }

    void close() {
        if (!open_) return;
        open_ = false;
        uv_close(reinterpret_cast<uv_handle_t*>(&pipe_), nullptr);
    }

  private:
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&pipe_); }

    static void onConnected(uv_connect_t* req, int status) {
        auto* self = static_cast<TestClient*>(req->handle->data);
        self->connectStatus = status;
        if (status != 0) {
            self->close();
            return;
        }
        uv_read_start(
            self->stream(),
            [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
                buf->base = new char[suggested];
                buf->len = suggested;
            },
            &TestClient::onRead);
        if (self->onConnect) self->onConnect(*self);
    }

    static void onRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<TestClient*>(stream->data);
        if (n > 0) {
            self->buffer_.append(buf->base, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = self->buffer_.find('\n')) != std::string::npos) {
                std::string line = self->buffer_.substr(0, nl);
                self->buffer_.erase(0, nl + 1);
                self->lines.push_back(line);
                if (self->onLine) self->onLine(*self, line);
            }
        } else if (n < 0) {
            self->eof = true;
            uv_read_stop(stream);
            if (self->onEof)
                self->onEof(*self);
            else
                self->close();
        }
        delete[] buf->base;
    }

    uv_pipe_t pipe_{};
    uv_connect_t connect_{};
    std::string buffer_;
    bool open_ = false;
};

// A timer owned by a test, with one fixed action; start() arms it (zero
// delay: the next loop turn), also from inside its own action.
class SoonTimer {
  public:
    SoonTimer(uv_loop_t* loop, std::function<void()> action) : action_(std::move(action)) {
        uv_timer_init(loop, &timer_);
        timer_.data = this;
    }
    void start(std::uint64_t repeatMs = 0) {
        uv_timer_start(
            &timer_, [](uv_timer_t* t) { static_cast<SoonTimer*>(t->data)->action_(); }, repeatMs,
            repeatMs);
    }
    void close() {
        if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_)))
            uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
    }

  private:
    uv_timer_t timer_{};
    std::function<void()> action_;
};

// A loop and a listening server in a fresh directory.
struct Fixture {
    TempDir dir;
    uv_loop_t loop{};
    std::string socketPath;
    std::optional<ControlServer> server;

    Fixture() {
        REQUIRE(uv_loop_init(&loop) == 0);
        socketPath = dir.file("s.sock");
        server.emplace(&loop, socketPath);
        server->addMethod({"echo", [](const Call& call) {
                               rapidjson::Document copy;
                               copy.CopyFrom(call.params(), copy.GetAllocator());
                               call.reply(copy);
                           }});
    }
    void listen() {
        auto st = server->listen();
        REQUIRE_MESSAGE(st.ok(), (st ? "" : st.error().message));
    }
    // Runs the loop to its end; the loop must close cleanly.
    void runToEnd() { CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0); }
    ~Fixture() {
        server.reset();
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&loop) == 0);
    }
};

}  // namespace

TEST_CASE("the dispatcher finds methods in the table and refuses unknown ones") {
    Fixture f;
    f.server->addMethod({"test.hidden",
                         [](const Call& call) {
                             rapidjson::Value v(true);
                             call.reply(v);
                         },
                         /*advertised=*/false});
    f.listen();
    CHECK(f.server->advertisedMethods() == std::vector<std::string>{"echo"});

    TestClient client;
    client.onConnect = [](TestClient& c) {
        rapidjson::Document params;
        const std::string_view x = R"({"x":42})";
        params.Parse(x.data(), x.size());
        c.send(protocol::requestLine(1, "echo", &params) + request(2, "no.such.method") +
               request(3, "test.hidden") + "{not json\n");
    };
    client.onLine = [&](TestClient& c, const std::string&) {
        if (c.lines.size() < 4) return;
        c.close();
        f.server->close();
    };
    client.connect(&f.loop, f.socketPath);
    f.runToEnd();

    REQUIRE(client.lines.size() == 4);
    const Reply echo = parseReply(client.lines[0]);
    CHECK(echo.ok);
    CHECK(echo.id == "1");
    CHECK(echo.result["x"].GetInt() == 42);
    const Reply unknown = parseReply(client.lines[1]);
    CHECK_FALSE(unknown.ok);
    CHECK(unknown.id == "2");
    CHECK(unknown.errorCode == "unknown_method");
    CHECK(unknown.errorMessage.find("no.such.method") != std::string::npos);
    const Reply hidden = parseReply(client.lines[2]);
    CHECK(hidden.ok);
    CHECK(hidden.id == "3");
    const Reply garbage = parseReply(client.lines[3]);
    CHECK_FALSE(garbage.ok);
    CHECK(garbage.errorCode == "parse_error");
}

TEST_CASE("a handler that throws gets an internal error reply and the connection goes on") {
    Fixture f;
    f.server->addMethod({"explode", [](const Call&) { throw std::runtime_error("boom"); }});
    f.listen();

    TestClient client;
    client.onConnect = [](TestClient& c) { c.send(request(7, "explode") + request(8, "echo")); };
    client.onLine = [&](TestClient& c, const std::string&) {
        if (c.lines.size() < 2) return;
        c.close();
        f.server->close();
    };
    client.connect(&f.loop, f.socketPath);
    f.runToEnd();

    REQUIRE(client.lines.size() == 2);
    const Reply failed = parseReply(client.lines[0]);
    CHECK_FALSE(failed.ok);
    CHECK(failed.id == "7");
    CHECK(failed.errorCode == "internal");
    CHECK(failed.errorMessage.find("boom") != std::string::npos);
    const Reply next = parseReply(client.lines[1]);
    CHECK(next.ok);
    CHECK(next.id == "8");
}

TEST_CASE("a deferred reply keeps later pipelined requests waiting, and replies stay in order") {
    Fixture f;
    std::vector<Call> pending;  // deferred calls, answered by the timer
    SoonTimer timer(&f.loop, [&] {
        // Answering one call dispatches the next requests at once, which may
        // add to `pending`: walk a copy.
        const std::vector<Call> calls = pending;
        for (const Call& c : calls) {
            rapidjson::Value v("slow");
            if (!c.answered()) c.reply(v);
        }
    });
    std::vector<std::string> dispatched;
    int dispatchedWhileBusy = 0;
    auto busy = [&] {
        for (const Call& c : pending)
            if (!c.answered()) return true;
        return false;
    };
    f.server->addMethod({"slow", [&](const Call& call) {
                             if (busy()) ++dispatchedWhileBusy;
                             dispatched.push_back("slow");
                             pending.push_back(call);
                             timer.start();
                         }});
    f.server->addMethod({"fast", [&](const Call& call) {
                             if (busy()) ++dispatchedWhileBusy;
                             dispatched.push_back("fast");
                             rapidjson::Value v("fast");
                             call.reply(v);
                         }});
    f.listen();

    TestClient client;
    client.onConnect = [](TestClient& c) {
        // One write: all five requests are in the server's buffer at once.
        c.send(request(1, "slow") + request(2, "fast") + request(3, "fast") + request(4, "slow") +
               request(5, "fast"));
    };
    client.onLine = [&](TestClient& c, const std::string&) {
        if (c.lines.size() < 5) return;
        c.close();
        f.server->close();
        timer.close();
    };
    client.connect(&f.loop, f.socketPath);
    f.runToEnd();

    CHECK(dispatchedWhileBusy == 0);
    CHECK(dispatched == std::vector<std::string>{"slow", "fast", "fast", "slow", "fast"});
    REQUIRE(client.lines.size() == 5);
    const std::vector<std::string> kinds = {"slow", "fast", "fast", "slow", "fast"};
    for (std::size_t i = 0; i < 5; ++i) {
        const Reply r = parseReply(client.lines[i]);
        CHECK(r.ok);
        CHECK(r.id == std::to_string(i + 1));
        CHECK(std::string(r.result.GetString()) == kinds[i]);
    }
}

TEST_CASE("a deferred reply to a client that went away is dropped quietly") {
    Fixture f;
    std::optional<Call> pending;
    bool goneWhenAnswered = false;
    f.server->addMethod({"slow", [&](const Call& call) { pending = call; }});
    f.listen();

    TestClient client;
    // Once the call is pending, the client leaves; once the server has seen
    // it leave, the call is answered.
    SoonTimer poll(&f.loop, [&] {
        if (!pending) return;
        client.close();
        if (f.server->clientCount() != 0) return;
        goneWhenAnswered = pending->clientGone();
        rapidjson::Value v(1);
        pending->reply(v);
        poll.close();
        f.server->close();
    });
    client.onConnect = [](TestClient& c) { c.send(request(1, "slow")); };
    client.connect(&f.loop, f.socketPath);
    poll.start(/*repeatMs=*/1);
    f.runToEnd();

    CHECK(goneWhenAnswered);
    REQUIRE(pending.has_value());
    CHECK(pending->answered());
    CHECK(client.lines.empty());
}

TEST_CASE("a client over the limit gets unavailable and the others keep working") {
    Fixture f;
    f.server->setMaxClients(2);
    f.listen();

    TestClient a, b, extra;
    std::size_t clientsAtEnd = 0;
    a.onConnect = [](TestClient& c) { c.send(request(1, "echo")); };
    a.onLine = [&](TestClient& c, const std::string&) {
        if (c.lines.size() == 1) {
            b.connect(&f.loop, f.socketPath);  // a is surely accepted by now
        } else {
            clientsAtEnd = f.server->clientCount();
            a.close();
            b.close();
            f.server->close();
        }
    };
    b.onConnect = [](TestClient& c) { c.send(request(2, "echo")); };
    b.onLine = [&](TestClient&, const std::string&) { extra.connect(&f.loop, f.socketPath); };
    extra.onEof = [&](TestClient& c) {
        c.close();
        a.send(request(3, "echo"));  // the first client is untouched
    };
    a.connect(&f.loop, f.socketPath);
    f.runToEnd();

    REQUIRE(extra.lines.size() == 1);
    const Reply refused = parseReply(extra.lines[0]);
    CHECK_FALSE(refused.ok);
    CHECK(refused.errorCode == "unavailable");
    CHECK(refused.id == "null");
    CHECK(extra.eof);
    REQUIRE(a.lines.size() == 2);
    CHECK(parseReply(a.lines[1]).ok);
    CHECK(parseReply(a.lines[1]).id == "3");
    REQUIRE(b.lines.size() == 1);
    CHECK(parseReply(b.lines[0]).ok);
    CHECK(clientsAtEnd == 2);
}

TEST_CASE("an idle client is closed after the idle timeout") {
    Fixture f;
    f.server->setIdleTimeoutMs(1);
    f.listen();
    TestClient client;
    client.onEof = [&](TestClient& c) {
        c.close();
        f.server->close();
    };
    client.connect(&f.loop, f.socketPath);
    f.runToEnd();
    CHECK(client.connectStatus == 0);
    CHECK(client.eof);
    CHECK(client.lines.empty());
}

TEST_CASE("close() with clients connected and a call pending leaves nothing open") {
    Fixture f;
    SoonTimer soon(&f.loop, [&] {
        f.server->close();
        soon.close();
    });
    std::optional<Call> pending;
    f.server->addMethod({"slow", [&](const Call& call) {
                             pending = call;
                             soon.start();
                         }});
    f.listen();
    REQUIRE(test::exists(f.socketPath));

    TestClient idle, waiting;
    idle.onConnect = [&](TestClient&) { waiting.connect(&f.loop, f.socketPath); };
    waiting.onConnect = [](TestClient& c) { c.send(request(1, "slow")); };
    idle.connect(&f.loop, f.socketPath);
    f.runToEnd();  // returns only once every handle, the server's included, is closed

    CHECK(idle.eof);
    CHECK(waiting.eof);
    CHECK(waiting.lines.empty());
    CHECK(f.server->clientCount() == 0);
    CHECK_FALSE(test::exists(f.socketPath));
    REQUIRE(pending.has_value());
    CHECK(pending->clientGone());
    rapidjson::Value v(1);
    pending->reply(v);  // after close: does nothing, crashes nothing
}
