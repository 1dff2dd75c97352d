// The command lines themselves: --timeout against a wedged daemon, --help,
// --version, bad arguments and their exit codes, and the watcher switches.
#include <doctest/doctest.h>

#include "harness.h"

using namespace etld::it;

namespace {

bool watcherEnabled(const rapidjson::Document& doc) {
    REQUIRE(at(doc, "watcher.enabled").IsBool());
    return at(doc, "watcher.enabled").GetBool();
}

// A daemon that watches (no --no-watch), with extra environment.
DaemonConfig watching(std::vector<EnvChange> env = {}) {
    DaemonConfig c;
    c.noWatch = false;
    c.env = std::move(env);
    return c;
}

// Global flags that point etlctl at nothing real.
std::vector<std::string> nowhere(const TempDir& dir, std::vector<std::string> rest) {
    std::vector<std::string> args{"--socket", dir / "none.sock", "--db", dir / "none.db"};
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
}

}  // namespace

TEST_CASE("--timeout: a daemon that accepts but does not answer is CRITICAL, never the store") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();

    // A ping and the wedge in one write: the daemon answers the ping and
    // enters the wedge in the same turn of its loop, so once the ping's reply
    // is here the loop is certainly blocked for the next 3 s.
    RawClient wedger = RawClient::connect(d.socket());
    REQUIRE(wedger.sendAll(
        "{\"v\":1,\"id\":\"before\",\"method\":\"ping\"}\n"
        "{\"v\":1,\"id\":\"wedge\",\"method\":\"test.wedge_loop\",\"params\":{\"ms\":3000}}\n"));
    const auto before = parseJson(wedger.expectLine());
    REQUIRE(std::string(at(before, "id").GetString()) == "before");

    std::vector<std::string> args = d.ctlTarget();
    args.insert(args.end(), {"status", "--check", "--timeout", "300"});
    const ProcessResult r = runCtl(dir, args);
    CHECK_MESSAGE(r.exitCode == 2, r.describe());
    CHECK_MESSAGE(r.out.rfind("ETLD CRITICAL", 0) == 0, r.out);
    CHECK_MESSAGE(r.out.find("did not answer within 300 ms") != std::string::npos, r.out);
    CHECK_MESSAGE(r.out.find("read from the store") == std::string::npos, r.out);

    // The wedge ends, and the daemon is itself again.
    const auto wedge = parseJson(wedger.expectLine());
    CHECK(std::string(at(wedge, "id").GetString()) == "wedge");
    CHECK(errorCode(wedge) == "");
    std::vector<std::string> again = d.ctlTarget();
    again.insert(again.end(), {"status", "--check"});
    const ProcessResult ok = runCtl(dir, again);
    CHECK_MESSAGE(ok.exitCode == 0, ok.describe());
    d.stop();
}

TEST_CASE("etld --version and --help exit 0") {
    TempDir dir;
    const ProcessResult version = runEtld(dir, {"--version"});
    CHECK_MESSAGE(version.exitCode == 0, version.describe());
    CHECK_MESSAGE(version.out.rfind("etld ", 0) == 0, version.out);
    const ProcessResult help = runEtld(dir, {"--help"});
    CHECK_MESSAGE(help.exitCode == 0, help.describe());
    CHECK(help.out.find("--db") != std::string::npos);
    CHECK(help.out.find("--socket") != std::string::npos);
    CHECK(help.out.find("--no-watch") != std::string::npos);
}

TEST_CASE("etlctl --version and --help exit 0") {
    TempDir dir;
    const ProcessResult version = runCtl(dir, {"--version"});
    CHECK_MESSAGE(version.exitCode == 0, version.describe());
    CHECK_MESSAGE(version.out.rfind("etlctl ", 0) == 0, version.out);
    const ProcessResult help = runCtl(dir, {"--help"});
    CHECK_MESSAGE(help.exitCode == 0, help.describe());
    CHECK(help.out.find("status") != std::string::npos);
    const ProcessResult statusHelp = runCtl(dir, nowhere(dir, {"status", "--help"}));
    CHECK_MESSAGE(statusHelp.exitCode == 0, statusHelp.describe());
    CHECK(statusHelp.out.find("--check") != std::string::npos);
}

TEST_CASE("bad arguments exit 2") {
    TempDir dir;
    const std::vector<std::vector<std::string>> etldCases = {
        {"--bogus"},
        {"--log-level", "loud"},
        {"stray-argument"},
    };
    for (const auto& args : etldCases) {
        const ProcessResult r = runEtld(dir, args);
        CHECK_MESSAGE(r.exitCode == 2, args[0] << ": " << r.describe());
        CHECK_FALSE(r.err.empty());
    }
    const std::vector<std::vector<std::string>> ctlCases = {
        {},  // no verb
        {"--bogus"},
        {"frobnicate"},
        {"status", "--bogus"},
        {"status", "--format", "xml"},
        {"status", "--timeout", "0"},
        {"status", "--offline", "--no-fallback"},
        {"ping", "--bogus"},
    };
    for (const auto& rest : ctlCases) {
        const ProcessResult r = runCtl(dir, nowhere(dir, rest));
        CHECK_MESSAGE(r.exitCode == 2, (rest.empty() ? "(none)" : rest.back())
                                           << ": " << r.describe());
        CHECK_FALSE(r.err.empty());
    }
}

TEST_CASE("status --check with bad arguments exits 3 (UNKNOWN)") {
    TempDir dir;
    const std::vector<std::vector<std::string>> cases = {
        {"status", "--check", "--bogus"},         {"status", "--check", "--format", "xml"},
        {"status", "--check", "--timeout", "0"},  {"status", "--check", "--timeout", "soon"},
        {"status", "--format", "xml", "--check"},
    };
    for (const auto& rest : cases) {
        const ProcessResult r = runCtl(dir, nowhere(dir, rest));
        CHECK_MESSAGE(r.exitCode == 3, rest.back() << ": " << r.describe());
    }
}

TEST_CASE("the watcher is enabled by default") {
    TempDir dir;
    DaemonProcess d(dir, watching());
    d.startAndWaitReady();
    const auto doc = statusJson(dir, d);
    CHECK(watcherEnabled(doc));
    REQUIRE(at(doc, "watcher.running").IsBool());
    CHECK(at(doc, "watcher.running").GetBool());
    d.stop();
}

TEST_CASE("--no-watch turns the watcher off") {
    TempDir dir;
    DaemonProcess d(dir);  // the harness passes --no-watch by default
    d.startAndWaitReady();
    CHECK_FALSE(watcherEnabled(statusJson(dir, d)));
    d.stop();
}

TEST_CASE("ETLD_DISABLE_WATCHER=\" Yes \" turns the watcher off (trimmed, any case)") {
    TempDir dir;
    DaemonProcess d(dir, watching({{"ETLD_DISABLE_WATCHER", " Yes "}}));
    d.startAndWaitReady();
    CHECK_FALSE(watcherEnabled(statusJson(dir, d)));
    d.stop();
}

TEST_CASE("ETLD_DISABLE_WATCHER=0 leaves the watcher on") {
    TempDir dir;
    DaemonProcess d(dir, watching({{"ETLD_DISABLE_WATCHER", "0"}}));
    d.startAndWaitReady();
    CHECK(watcherEnabled(statusJson(dir, d)));
    d.stop();
}

TEST_CASE("the store keeps the watcher setting after the daemon stops") {
    TempDir dir;
    DaemonProcess d(dir, watching({{"ETLD_DISABLE_WATCHER", "on"}}));
    d.startAndWaitReady();
    d.stop();
    const auto doc = statusJson(dir, d, {"--offline"});
    CHECK(std::string(at(doc, "source").GetString()) == "database");
    CHECK_FALSE(watcherEnabled(doc));
}
