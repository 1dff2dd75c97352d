// The control socket's framing, limits and robustness, spoken raw: what a
// script with socat, a buggy client or a crowd of impatient ones can send.
#include <doctest/doctest.h>
#include <poll.h>

#include <string>
#include <vector>

#include "harness.h"

using namespace etld::it;

namespace {

// The request line limit of protocol.md: 1 MiB before the newline.
constexpr std::size_t kMaxRequestBytes = 1024 * 1024;

// A valid ping request padded with spaces (JSON allows trailing whitespace)
// to exactly `bytes` bytes, then the newline.
std::string paddedPing(const std::string& idJson, std::size_t bytes) {
    std::string line = "{\"v\":1,\"id\":" + idJson + ",\"method\":\"ping\"}";
    REQUIRE(line.size() <= bytes);
    line.resize(bytes, ' ');
    return line + "\n";
}

std::int64_t clientCount(RawClient& c) {
    const auto reply = c.call("test.clients");
    REQUIRE(errorCode(reply) == "");
    return at(reply, "result.clients").GetInt64();
}

void requirePong(RawClient& c) {
    const auto reply = c.call("ping");
    REQUIRE(errorCode(reply) == "");
    CHECK(at(reply, "result.pong").GetBool());
}

}  // namespace

TEST_CASE("a request one byte past 1 MiB gets request_too_large and its connection closes") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient before = RawClient::connect(d.socket());
    requirePong(before);

    RawClient big = RawClient::connect(d.socket());
    // The daemon may close before it has read everything: a failed send is
    // expected here, and the reply is still there to read.
    (void)big.sendAll(paddedPing("\"big\"", kMaxRequestBytes + 1));
    const auto reply = parseJson(big.expectLine());
    CHECK(errorCode(reply) == "request_too_large");
    CHECK(at(reply, "id").IsNull());
    std::string extra;
    CHECK(big.waitClosed(kDeadlineMs, &extra));
    CHECK_MESSAGE(extra.empty(), extra);

    // Nobody else noticed.
    requirePong(before);
    RawClient after = RawClient::connect(d.socket());
    requirePong(after);
    d.stop();
}

TEST_CASE("a request of exactly 1 MiB is accepted") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    REQUIRE(c.sendAll(paddedPing("\"exact\"", kMaxRequestBytes)));
    const auto reply = parseJson(c.expectLine());
    CHECK(errorCode(reply) == "");
    CHECK(std::string(at(reply, "id").GetString()) == "exact");
    CHECK(at(reply, "result.pong").GetBool());
    requirePong(c);  // and the connection carries on
    d.stop();
}

TEST_CASE("a malformed line gets parse_error and the connection carries on") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    REQUIRE(c.sendAll("{\"v\":1,\"id\":3,\"method\":\n"));
    const auto reply = parseJson(c.expectLine());
    CHECK(errorCode(reply) == "parse_error");
    CHECK(at(reply, "id").IsNull());  // unreadable, so not echoed
    CHECK(at(reply, "v").GetInt() == 1);
    requirePong(c);
    d.stop();
}

TEST_CASE("an unknown method gets unknown_method with the request's id") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    const auto reply = c.call("no.such.method", "", "17");
    CHECK(errorCode(reply) == "unknown_method");
    CHECK(at(reply, "id").GetInt64() == 17);
    CHECK_FALSE(at(reply, "ok").GetBool());
    d.stop();
}

TEST_CASE("a request of protocol version 2 gets invalid_request with its id") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    REQUIRE(c.sendAll("{\"v\":2,\"id\":\"future\",\"method\":\"ping\"}\n"));
    const auto reply = parseJson(c.expectLine());
    CHECK(errorCode(reply) == "invalid_request");
    CHECK(std::string(at(reply, "id").GetString()) == "future");
    requirePong(c);
    d.stop();
}

TEST_CASE("string and number ids are echoed unchanged") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    const auto s = c.call("ping", "", "\"req-\\u00e9-1\"");
    CHECK(std::string(at(s, "id").GetString()) == "req-\u00e9-1");
    const auto n = c.call("ping", "", "9007199254740993");
    REQUIRE(at(n, "id").IsUint64());
    CHECK(at(n, "id").GetUint64() == 9007199254740993ULL);
    const auto neg = c.call("ping", "", "-4");
    CHECK(at(neg, "id").GetInt64() == -4);
    const auto f = c.call("ping", "", "2.5");
    REQUIRE(at(f, "id").IsDouble());
    CHECK(at(f, "id").GetDouble() == 2.5);
    d.stop();
}

TEST_CASE("pipelined requests are answered in order") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient c = RawClient::connect(d.socket());

    // Five requests in one write, mixing methods, an error and a slow-ish one.
    const std::vector<std::string> methods = {"ping", "status", "hello", "nope", "ping"};
    std::string batch;
    for (std::size_t i = 0; i < methods.size(); ++i)
        batch +=
            "{\"v\":1,\"id\":" + std::to_string(i + 1) + ",\"method\":\"" + methods[i] + "\"}\n";
    REQUIRE(c.sendAll(batch));
    for (std::size_t i = 0; i < methods.size(); ++i) {
        const auto reply = parseJson(c.expectLine());
        CHECK(at(reply, "id").GetInt64() == static_cast<std::int64_t>(i + 1));
        CHECK(errorCode(reply) == (methods[i] == "nope" ? "unknown_method" : ""));
    }
    d.stop();
}

TEST_CASE("a thousand clients hanging up before their reply cost the daemon nothing") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    RawClient steady = RawClient::connect(d.socket());
    requirePong(steady);

    const std::string request = "{\"v\":1,\"id\":1,\"method\":\"status\"}\n";
    constexpr int kClients = 1000;
    // Open at once per batch: well under the client limit, so the daemon
    // really serves them instead of turning them away.
    constexpr int kBatch = 50;
    for (int base = 0; base < kClients; base += kBatch) {
        std::vector<RawClient> batch;
        for (int i = 0; i < kBatch; ++i) batch.push_back(RawClient::connect(d.socket()));
        for (int i = 0; i < kBatch; ++i) {
            RawClient& c = batch[static_cast<std::size_t>(i)];
            switch ((base + i) % 4) {
                case 0:  // a request, then an orderly close before the reply
                    (void)c.sendAll(request);
                    break;
                case 1:  // SO_LINGER 0: an abortive close where the transport has one
                    c.setLingerZero();
                    (void)c.sendAll(request);
                    break;
                case 2:  // half a request, then gone
                    (void)c.sendAll(request.substr(0, 12));
                    break;
                case 3: {  // the reply arrives and is never read: the close resets
                    (void)c.sendAll(request);
                    pollfd p{c.fd(), POLLIN, 0};
                    ::poll(&p, 1, kDeadlineMs);
                    break;
                }
            }
        }
        batch.clear();  // every one of them hangs up now
    }

    requirePong(steady);
    // The daemon sees the hang-ups as events of its own; each call below is
    // a round trip, so it has had its turn to process them. Only `steady`
    // may remain.
    const std::int64_t deadline = monotonicMs() + kDeadlineMs;
    std::int64_t clients = clientCount(steady);
    while (clients != 1 && monotonicMs() < deadline) clients = clientCount(steady);
    CHECK(clients == 1);
    RawClient fresh = RawClient::connect(d.socket());
    requirePong(fresh);
    d.stop();  // and it still exits cleanly
}

TEST_CASE("an idle client is disconnected while another client's calls go on") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    // Connected before the timeout is shortened: keeps the default.
    RawClient busy = RawClient::connect(d.socket());
    REQUIRE(errorCode(busy.call("test.set_idle_timeout", "{\"ms\":200}")) == "");

    RawClient idle = RawClient::connect(d.socket());
    const std::int64_t deadline = monotonicMs() + kDeadlineMs;
    bool closed = false;
    int calls = 0;
    std::string extra;
    while (!closed && monotonicMs() < deadline) {
        requirePong(busy);
        ++calls;
        // Wait (bounded) for the event under test: the daemon closing `idle`.
        closed = idle.waitClosed(50, &extra);
    }
    CHECK(closed);
    CHECK_MESSAGE(extra.empty(), "an idle client got unrequested bytes: " << extra);
    CHECK(calls > 0);
    CHECK(clientCount(busy) == 1);
    requirePong(busy);
    d.stop();
}
