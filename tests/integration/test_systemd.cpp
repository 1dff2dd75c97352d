// etld under a service manager, with the test playing systemd's part: a
// datagram socket in NOTIFY_SOCKET (a path, or an abstract '@' name),
// WATCHDOG_USEC, signals. And etlctl finding a user's system instance
// (etld@<user>.service) when nothing answers at the user's default socket.
//
// Every wait is for a datagram, a reply or an exit, under a deadline (poll);
// the only windows are the ones that count watchdog pings, which is the
// behaviour under test.
#include <doctest/doctest.h>
#include <poll.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

using namespace etld::it;
namespace fs = std::filesystem;

namespace {

// The watchdog timeout handed to the daemon: it must ping every 200 ms.
constexpr std::int64_t kWatchdogUsec = 400'000;
constexpr std::int64_t kPingIntervalMs = kWatchdogUsec / 2 / 1000;
// How long the tests wedge the loop or the writer: ten ping intervals, so the
// silence stands far out of any scheduling jitter on a loaded machine.
constexpr std::int64_t kWedgeMs = 2000;

struct Notification {
    std::int64_t atMs = 0;  // monotonic, when the test received it
    std::string text;       // KEY=VALUE lines

    // The value of KEY in this datagram, if it assigns it.
    std::optional<std::string> value(std::string_view key) const {
        std::size_t pos = 0;
        while (pos <= text.size()) {
            const std::size_t end = std::min(text.find('\n', pos), text.size());
            const std::string_view line(text.data() + pos, end - pos);
            if (line.size() > key.size() && line.substr(0, key.size()) == key &&
                line[key.size()] == '=')
                return std::string(line.substr(key.size() + 1));
            pos = end + 1;
        }
        return std::nullopt;
    }
    bool has(std::string_view key, std::string_view v) const {
        return value(key) == std::string(v);
    }
};

// systemd's end of the notify protocol: a bound datagram socket.
class NotifyListener {
  public:
    // A socket at a path in the test's directory.
    static NotifyListener atPath(const std::string& path) {
        NotifyListener l;
        l.address_ = path;
        l.bindTo(path, false);
        return l;
    }
    // An abstract name, unique per process and listener.
    static NotifyListener abstract() {
        static std::atomic<int> counter{0};
        NotifyListener l;
        l.address_ =
            "@etld-it-notify-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
        l.bindTo(l.address_.substr(1), true);
        return l;
    }

    // What goes in NOTIFY_SOCKET.
    const std::string& address() const { return address_; }

    // The next datagram, or nullopt when the deadline passes first.
    std::optional<Notification> next(int timeoutMs) {
        const std::int64_t deadline = monotonicMs() + timeoutMs;
        for (;;) {
            const std::int64_t left = deadline - monotonicMs();
            pollfd p{fd_.get(), POLLIN, 0};
            const int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left)));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            char buf[4096];
            const ssize_t got = ::recv(fd_.get(), buf, sizeof buf, 0);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            REQUIRE_MESSAGE(got >= 0, "recv: " << std::strerror(errno));
            Notification msg{monotonicMs(), std::string(buf, static_cast<std::size_t>(got))};
            seen_.push_back(msg);
            return msg;
        }
    }

    // Waits for a datagram assigning KEY=VALUE (or KEY=anything when value is
    // empty), keeping the others in seen(); fails the test at the deadline.
    Notification waitFor(std::string_view key, std::string_view value = {},
                         int timeoutMs = kDeadlineMs) {
        const std::int64_t deadline = monotonicMs() + timeoutMs;
        for (;;) {
            const std::int64_t left = deadline - monotonicMs();
            auto msg = next(static_cast<int>(std::max<std::int64_t>(0, left)));
            REQUIRE_MESSAGE(msg.has_value(), "no " << key << "=" << value << " within " << timeoutMs
                                                   << " ms; seen: " << describeSeen());
            auto v = msg->value(key);
            if (v && (value.empty() || *v == value)) return *msg;
        }
    }

    // Every datagram that arrives until `untilMs` (monotonic).
    std::vector<Notification> collectUntil(std::int64_t untilMs) {
        std::vector<Notification> out;
        for (;;) {
            const std::int64_t left = untilMs - monotonicMs();
            if (left <= 0) return out;
            if (auto msg = next(static_cast<int>(left))) out.push_back(*msg);
        }
    }

    const std::vector<Notification>& seen() const { return seen_; }
    std::string describeSeen() const {
        std::string s;
        for (const auto& m : seen_) {
            std::string flat = m.text;
            for (char& c : flat)
                if (c == '\n') c = '|';
            s += "\n  [" + std::to_string(m.atMs) + "] " + flat;
        }
        return s.empty() ? " (nothing)" : s;
    }

  private:
    void bindTo(const std::string& name, bool abstractName) {
        fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        REQUIRE(fd_.valid());
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        const std::size_t offset = abstractName ? 1 : 0;
        REQUIRE(name.size() + offset < sizeof addr.sun_path);
        std::memcpy(addr.sun_path + offset, name.data(), name.size());
        const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + offset +
                                                name.size() + (abstractName ? 0 : 1));
        REQUIRE_MESSAGE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0,
                        "bind " << address_ << ": " << std::strerror(errno));
    }

    etld::UniqueFd fd_;
    std::string address_;
    std::vector<Notification> seen_;
};

DaemonConfig notifiedBy(const NotifyListener& l, std::optional<std::int64_t> watchdogUsec = {}) {
    DaemonConfig c;
    c.env.emplace_back("NOTIFY_SOCKET", l.address());
    if (watchdogUsec) c.env.emplace_back("WATCHDOG_USEC", std::to_string(*watchdogUsec));
    return c;
}

std::vector<std::int64_t> pingTimes(const std::vector<Notification>& msgs) {
    std::vector<std::int64_t> t;
    for (const auto& m : msgs)
        if (m.has("WATCHDOG", "1")) t.push_back(m.atMs);
    return t;
}

// The longest silence between consecutive pings, and when it ended.
struct Gap {
    std::int64_t lengthMs = 0;
    std::int64_t endMs = 0;
};
Gap longestGap(const std::vector<std::int64_t>& t) {
    Gap g;
    for (std::size_t i = 1; i < t.size(); ++i)
        if (t[i] - t[i - 1] > g.lengthMs) g = Gap{t[i] - t[i - 1], t[i]};
    return g;
}

// READY=1, then the socket answers at once: READY means listening.
void readyThenAnswers(NotifyListener& l, DaemonProcess& d) {
    const Notification ready = l.waitFor("READY", "1");
    const auto status = ready.value("STATUS");
    REQUIRE_MESSAGE(status.has_value(), "READY=1 came without STATUS=: " << ready.text);
    CHECK_MESSAGE(status->rfind("live: ", 0) == 0, *status);
    RawClient c;
    REQUIRE_MESSAGE(RawClient::tryConnect(d.socket(), c) == 0, "READY=1 before the socket listens");
    const auto reply = c.call("ping");
    CHECK(errorCode(reply).empty());
}

void writeFile(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::trunc);
    f << text;
    REQUIRE(f.good());
}

// Total cost_usd of the store's events, read through SQLite directly.
double totalCost(const std::string& db) {
    sqlite3* conn = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(conn,
                               "SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM usage_events", -1,
                               &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    const double cost = sqlite3_column_double(st, 0);
    const auto count = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(conn);
    REQUIRE_MESSAGE(count > 0, "no events were ingested");
    return cost;
}

std::optional<std::string> fixturesDir() {
    const char* shared = std::getenv("ETLD_SHARED_DIR");
    if (!shared) return std::nullopt;
    const std::string claude = std::string(shared) + "/fixtures/claude";
    if (!fs::is_directory(claude)) return std::nullopt;
    return claude;
}

// A price file giving the fixtures' one model flat rates (USD per token).
std::string priceFile(double perToken) {
    const std::string r = std::to_string(perToken);
    return "{\"claude-sonnet-4-20250514\": {\"input_cost_per_token\": " + r +
           ", \"output_cost_per_token\": " + r + ", \"cache_creation_input_token_cost\": " + r +
           ", \"cache_read_input_token_cost\": " + r + "}}\n";
}

}  // namespace

TEST_CASE(
    "a path NOTIFY_SOCKET hears READY=1 with the health once the socket listens, STOPPING=1 on "
    "SIGTERM") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonProcess d(dir, notifiedBy(l));
    d.start();
    readyThenAnswers(l, d);
    d.stop();  // fails unless exit status 0
    l.waitFor("STOPPING", "1");
}

TEST_CASE("an abstract '@' NOTIFY_SOCKET hears READY=1 and STOPPING=1 too") {
    TempDir dir;
    NotifyListener l = NotifyListener::abstract();
    DaemonProcess d(dir, notifiedBy(l));
    d.start();
    readyThenAnswers(l, d);
    d.stop();
    l.waitFor("STOPPING", "1");
}

TEST_CASE("a new store's migrations extend the start timeout before READY=1") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonProcess d(dir, notifiedBy(l));
    d.start();
    const Notification extend = l.waitFor("EXTEND_TIMEOUT_USEC");
    CHECK(std::stoll(*extend.value("EXTEND_TIMEOUT_USEC")) > 0);
    const Notification ready = l.waitFor("READY", "1");
    CHECK(extend.atMs <= ready.atMs);
    d.stop();
}

TEST_CASE("WATCHDOG=1 comes every WATCHDOG_USEC/2") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonProcess d(dir, notifiedBy(l, kWatchdogUsec));
    d.start();
    l.waitFor("READY", "1");
    // 3 s at one ping per 200 ms is 15. The bounds are generous for a loaded
    // 2-core machine, yet exclude pinging at the full timeout (7.5) or at a
    // quarter of it (30).
    constexpr std::int64_t kWindowMs = 3000;
    const auto pings = pingTimes(l.collectUntil(monotonicMs() + kWindowMs));
    CHECK_MESSAGE(pings.size() >= 9, pings.size() << " pings in " << kWindowMs << " ms");
    CHECK_MESSAGE(pings.size() <= 22, pings.size() << " pings in " << kWindowMs << " ms");
    d.stop();
    // After STOPPING=1 no ping follows.
    const Notification stopping = l.waitFor("STOPPING", "1");
    for (const auto& m : l.seen())
        if (m.atMs > stopping.atMs)
            CHECK_MESSAGE(!m.has("WATCHDOG", "1"), "a ping after STOPPING=1");
}

TEST_CASE("WATCHDOG_PID naming another process turns the pings off") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonConfig c = notifiedBy(l, kWatchdogUsec);
    c.env.emplace_back("WATCHDOG_PID", "1");
    DaemonProcess d(dir, c);
    d.start();
    l.waitFor("READY", "1");
    const auto pings = pingTimes(l.collectUntil(monotonicMs() + 5 * kPingIntervalMs));
    CHECK(pings.empty());
    d.stop();
}

TEST_CASE("a wedged loop stops the watchdog pings until it turns again") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonProcess d(dir, notifiedBy(l, kWatchdogUsec));
    d.start();
    l.waitFor("READY", "1");
    l.waitFor("WATCHDOG", "1");  // pinging before the wedge

    RawClient c = RawClient::connect(d.socket());
    REQUIRE(c.sendAll("{\"v\":1,\"id\":1,\"method\":\"test.wedge_loop\",\"params\":{\"ms\":" +
                      std::to_string(kWedgeMs) + "}}\n"));
    // The reply comes when the loop turns again; pings resume after it.
    std::string line;
    REQUIRE(c.readLine(line) == RawClient::Read::Line);
    const std::int64_t unwedgedMs = monotonicMs();
    CHECK(errorCode(parseJson(line)).empty());
    l.collectUntil(monotonicMs() + 5 * kPingIntervalMs);

    const auto pings = pingTimes(l.seen());
    const Gap gap = longestGap(pings);
    // No ping for the whole wedge (minus receive jitter), ending after it.
    CHECK_MESSAGE(gap.lengthMs >= kWedgeMs - 200,
                  "longest silence " << gap.lengthMs << " ms" << l.describeSeen());
    CHECK(gap.endMs >= unwedgedMs - 100);
    const auto after =
        std::count_if(pings.begin(), pings.end(), [&](auto t) { return t >= gap.endMs; });
    CHECK_MESSAGE(after >= 2, "pings did not resume");
    d.stop();
}

TEST_CASE("a wedged writer stops the pings while the loop still answers") {
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonProcess d(dir, notifiedBy(l, kWatchdogUsec));
    d.start();
    l.waitFor("READY", "1");
    l.waitFor("WATCHDOG", "1");

    RawClient c = RawClient::connect(d.socket());
    const std::int64_t wedgedAt = monotonicMs();
    CHECK(errorCode(c.call("test.wedge_writer", "{\"ms\":" + std::to_string(kWedgeMs) + "}"))
              .empty());
    // Mid-wedge, past the watchdog limit: the loop answers, yet no ping goes.
    l.collectUntil(wedgedAt + kWedgeMs / 2);
    CHECK(errorCode(c.call("ping")).empty());
    l.collectUntil(wedgedAt + kWedgeMs + 5 * kPingIntervalMs);

    const auto pings = pingTimes(l.seen());
    const Gap gap = longestGap(pings);
    // Pings stop once the step is older than WATCHDOG_USEC (400 ms) and come
    // back when it ends: a silence of about kWedgeMs - 400 ms.
    CHECK_MESSAGE(gap.lengthMs >= kWedgeMs - kWatchdogUsec / 1000 - 300,
                  "longest silence " << gap.lengthMs << " ms" << l.describeSeen());
    const auto after =
        std::count_if(pings.begin(), pings.end(), [&](auto t) { return t >= gap.endMs; });
    CHECK_MESSAGE(after >= 2, "pings did not resume");
    d.stop();
}

TEST_CASE("STATUS= follows the store: a sync that ingests events updates it") {
    const auto fixtures = fixturesDir();
    if (!fixtures) {
        MESSAGE("ETLD_SHARED_DIR/fixtures/claude not found, skipping");
        return;
    }
    TempDir dir;
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonConfig c = notifiedBy(l);
    c.extraArgs = {"--claude-config-dir", *fixtures};
    DaemonProcess d(dir, c);
    d.start();
    l.waitFor("READY", "1");

    RawClient client = RawClient::connect(d.socket());
    const auto reply = client.call("sync");
    REQUIRE_MESSAGE(errorCode(reply).empty(), "sync failed");
    const std::int64_t total = at(reply, "result.events.total").GetInt64();
    REQUIRE(total > 0);
    // Sent after the step committed, so before the sync's answer.
    const std::string expected = std::to_string(total) + " events";
    bool found = false;
    for (const auto& m : l.seen()) {
        const auto s = m.value("STATUS");
        if (s && s->find(expected) != std::string::npos) found = true;
    }
    if (!found) {
        const Notification m = l.waitFor("STATUS", {}, 2000);
        found = m.value("STATUS")->find(expected) != std::string::npos;
    }
    CHECK_MESSAGE(found, "no STATUS= with " << expected << l.describeSeen());
    d.stop();
}

TEST_CASE("SIGHUP reloads --pricing between RELOADING=1 and READY=1, and new events use it") {
    const auto fixtures = fixturesDir();
    if (!fixtures) {
        MESSAGE("ETLD_SHARED_DIR/fixtures/claude not found, skipping");
        return;
    }
    TempDir dir;
    const std::string prices = dir / "prices.json";
    writeFile(prices, priceFile(0.0));
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonConfig c = notifiedBy(l);
    c.extraArgs = {"--claude-config-dir", *fixtures, "--pricing", prices};
    DaemonProcess d(dir, c);
    d.start();
    l.waitFor("READY", "1");

    // A dollar per token: nothing else could produce such a total.
    writeFile(prices, priceFile(1.0));
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    const Notification reloading = l.waitFor("RELOADING", "1");
    CHECK(reloading.value("MONOTONIC_USEC").has_value());
    l.waitFor("READY", "1");

    RawClient client = RawClient::connect(d.socket());
    REQUIRE(errorCode(client.call("sync")).empty());
    CHECK(totalCost(d.db()) > 1000.0);
    d.stop();
}

TEST_CASE("a SIGHUP with an unreadable price file keeps the old table and the daemon running") {
    TempDir dir;
    const std::string prices = dir / "prices.json";
    writeFile(prices, priceFile(1.0));
    NotifyListener l = NotifyListener::atPath(dir / "notify");
    DaemonConfig c = notifiedBy(l);
    c.extraArgs = {"--pricing", prices};
    DaemonProcess d(dir, c);
    d.start();
    l.waitFor("READY", "1");

    writeFile(prices, "{ not json");
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    l.waitFor("RELOADING", "1");
    l.waitFor("READY", "1");
    RawClient client = RawClient::connect(d.socket());
    CHECK(errorCode(client.call("ping")).empty());
    CHECK_MESSAGE(d.log().find("keeping the previous price table") != std::string::npos, d.log());
    d.stop();
}

TEST_CASE("a malformed NOTIFY_SOCKET is reported once and the daemon runs without it") {
    TempDir dir;
    DaemonConfig c;
    c.env.emplace_back("NOTIFY_SOCKET", "relative/notify");
    DaemonProcess d(dir, c);
    d.startAndWaitReady();
    CHECK_MESSAGE(d.log().find("NOTIFY_SOCKET") != std::string::npos, d.log());
    d.stop();
}

// ---- etlctl and the system instance ----------------------------------------
//
// etld@<user>.service fixes /run/etld/<user>/etld.sock and
// /var/lib/etld/<user>/etl.db. These tests create those directories for the
// user running them, so they need root (to create them under /run and
// /var/lib) and refuse to touch directories that already exist.

namespace {

std::string currentUserName() {
    passwd* pw = ::getpwuid(::getuid());
    REQUIRE(pw != nullptr);
    return pw->pw_name;
}

// The system instance's two directories for the current user, created for
// the test and removed afterwards (with /run/etld and /var/lib/etld when the
// test created those too).
class SystemInstanceDirs {
  public:
    SystemInstanceDirs() : user_(currentUserName()) {
        for (const std::string base : {"/run/etld", "/var/lib/etld"}) {
            const std::string mine = base + "/" + user_;
            if (fs::exists(mine)) {
                usable_ = false;
                return;
            }
        }
        for (const std::string base : {"/run/etld", "/var/lib/etld"}) {
            if (!fs::exists(base)) {
                REQUIRE(::mkdir(base.c_str(), 0755) == 0);
                createdBases_.push_back(base);
            }
            const std::string mine = base + "/" + user_;
            REQUIRE(::mkdir(mine.c_str(), 0700) == 0);
            created_.push_back(mine);
        }
        usable_ = true;
    }
    ~SystemInstanceDirs() {
        std::error_code ec;
        for (const auto& d : created_) fs::remove_all(d, ec);
        for (const auto& d : createdBases_) fs::remove(d, ec);
    }
    bool usable() const { return usable_; }
    std::string socket() const { return "/run/etld/" + user_ + "/etld.sock"; }
    std::string db() const { return "/var/lib/etld/" + user_ + "/etl.db"; }

  private:
    std::string user_;
    bool usable_ = false;
    std::vector<std::string> created_;
    std::vector<std::string> createdBases_;
};

// etlctl with no location flags, its defaults inside the test's directory:
// nothing answers there, and no store is there.
RunOptions defaultsInside(const TempDir& dir, std::vector<EnvChange> extra = {}) {
    RunOptions o;
    o.env = {{"XDG_RUNTIME_DIR", dir / "xdg-run"}, {"XDG_STATE_HOME", dir / "xdg-state"}};
    o.env.insert(o.env.end(), extra.begin(), extra.end());
    return o;
}

bool systemInstanceTestsRun() {
    if (::geteuid() != 0) {
        MESSAGE("needs root to create /run/etld/<user> and /var/lib/etld/<user>, skipping");
        return false;
    }
    return true;
}

}  // namespace

TEST_CASE(
    "etlctl without flags asks the system instance when nothing answers at the default socket") {
    if (!systemInstanceTestsRun()) return;
    SystemInstanceDirs sys;
    if (!sys.usable()) {
        MESSAGE("a system instance's directories already exist for this user, skipping");
        return;
    }
    TempDir dir;
    DaemonConfig c;
    c.socket = sys.socket();
    c.db = sys.db();
    DaemonProcess d(dir, c);
    d.startAndWaitReady();

    const ProcessResult r = runCtl(dir, {"status", "--format", "json"}, defaultsInside(dir));
    REQUIRE_MESSAGE(r.exitCode == 0, r.describe());
    const auto doc = parseJson(r.out);
    CHECK(std::string(at(doc, "source").GetString()) == "daemon");
    CHECK(at(doc, "daemon.pid").GetInt64() == d.pid());
    const ProcessResult ping = runCtl(dir, {"ping"}, defaultsInside(dir));
    CHECK_MESSAGE(ping.exitCode == 0, ping.describe());
    d.stop();
}

TEST_CASE(
    "etlctl without flags reads the system instance's store when no daemon answers anywhere") {
    if (!systemInstanceTestsRun()) return;
    SystemInstanceDirs sys;
    if (!sys.usable()) {
        MESSAGE("a system instance's directories already exist for this user, skipping");
        return;
    }
    TempDir dir;
    DaemonConfig c;
    c.socket = sys.socket();
    c.db = sys.db();
    DaemonProcess d(dir, c);
    d.startAndWaitReady();
    d.stop();

    const ProcessResult r = runCtl(dir, {"status", "--format", "json"}, defaultsInside(dir));
    REQUIRE_MESSAGE(r.exitCode == 0, r.describe());
    const auto doc = parseJson(r.out);
    CHECK(std::string(at(doc, "source").GetString()) == "database");
    // The daemon recorded its pid in that store and nowhere else.
    CHECK(at(doc, "watcher.running").IsString());
    const ProcessResult check = runCtl(dir, {"status", "--check"}, defaultsInside(dir));
    CHECK_MESSAGE(check.exitCode == 1, check.describe());  // no daemon, the store reads live
}

TEST_CASE("ETLD_SOCKET given: etlctl never tries the system instance") {
    if (!systemInstanceTestsRun()) return;
    SystemInstanceDirs sys;
    if (!sys.usable()) {
        MESSAGE("a system instance's directories already exist for this user, skipping");
        return;
    }
    TempDir dir;
    DaemonConfig c;
    c.socket = sys.socket();
    c.db = sys.db();
    DaemonProcess d(dir, c);
    d.startAndWaitReady();

    const ProcessResult r = runCtl(dir, {"status", "--check"},
                                   defaultsInside(dir, {{"ETLD_SOCKET", dir / "nothing.sock"}}));
    // No daemon at the named socket and no default store: UNKNOWN, never the
    // system instance's daemon.
    CHECK_MESSAGE(r.exitCode == 3, r.describe());
    const ProcessResult ping =
        runCtl(dir, {"ping"}, defaultsInside(dir, {{"ETLD_DB", dir / "none.db"}}));
    CHECK_MESSAGE(ping.exitCode == 1, ping.describe());
    d.stop();
}
