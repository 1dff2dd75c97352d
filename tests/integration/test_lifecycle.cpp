// The daemon's life as etlctl sees it: running, stopped cleanly, killed,
// refusing a second instance, refusing an unsafe or impossible socket path.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

using namespace etld::it;

namespace {

ProcessResult status(const TempDir& dir, const DaemonProcess& d, std::vector<std::string> extra) {
    std::vector<std::string> args = d.ctlTarget();
    args.push_back("status");
    args.insert(args.end(), extra.begin(), extra.end());
    return runCtl(dir, args);
}

void requireAnsweredByStore(const rapidjson::Document& doc) {
    CHECK(std::string(at(doc, "source").GetString()) == "database");
    REQUIRE(at(doc, "watcher.running").IsString());
    CHECK(std::string(at(doc, "watcher.running").GetString()) == "unknown");
    CHECK(at(doc, "watcher.lock_held_by").IsNull());
    CHECK(at(doc, "daemon").IsNull());
}

}  // namespace

TEST_CASE("status --format json is answered by the running daemon") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();

    const auto doc = statusJson(dir, d);
    CHECK(std::string(at(doc, "source").GetString()) == "daemon");
    // Under --no-watch the watcher is off, and the daemon says so with a
    // boolean (never the store's "unknown"): running mirrors enabled.
    REQUIRE(at(doc, "watcher.enabled").IsBool());
    CHECK_FALSE(at(doc, "watcher.enabled").GetBool());
    REQUIRE(at(doc, "watcher.running").IsBool());
    CHECK(at(doc, "watcher.running").GetBool() == at(doc, "watcher.enabled").GetBool());
    REQUIRE(at(doc, "watcher.lock_held_by").IsInt64());
    CHECK(at(doc, "watcher.lock_held_by").GetInt64() == d.pid());
    CHECK(at(doc, "daemon.pid").GetInt64() == d.pid());
    d.stop();
}

TEST_CASE("status text opens with the original's headline") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();

    const ProcessResult r = status(dir, d, {});
    REQUIRE_MESSAGE(r.exitCode == 0, r.describe());
    const std::string head = firstLine(r.out);
    // An empty store is live; the phrase in brackets depends on whether a
    // cycle has run yet ("no refresh observed" / "last refresh Ns ago").
    CHECK_MESSAGE(head.rfind("ETL pipeline \u2014 live (", 0) == 0, head);
    CHECK_MESSAGE(head.back() == ')', head);
    CHECK(r.out.find("Source:        daemon (pid " + std::to_string(d.pid())) != std::string::npos);
    d.stop();
}

TEST_CASE("status --check exits 0 when the daemon answers live") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();

    const ProcessResult r = status(dir, d, {"--check"});
    CHECK_MESSAGE(r.exitCode == 0, r.describe());
    CHECK_MESSAGE(r.out.rfind("ETLD OK - live |", 0) == 0, r.out);
    d.stop();
}

TEST_CASE("after a clean stop the socket is gone and status reads the store") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.stop();
    CHECK_FALSE(pathExists(d.socket()));
    // The daemon's last connection to close copied the WAL into the store
    // and cut it to nothing: a reader has no frames to read back first.
    CHECK(std::filesystem::file_size(d.db() + "-wal") == 0);

    requireAnsweredByStore(statusJson(dir, d));
}

TEST_CASE("after a clean stop status --check exits 1 (no daemon serving)") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.stop();

    const ProcessResult r = status(dir, d, {"--check"});
    CHECK_MESSAGE(r.exitCode == 1, r.describe());
    CHECK_MESSAGE(r.out.find("(read from the store)") != std::string::npos, r.out);
}

TEST_CASE("with no daemon, --no-fallback exits 1, and 3 under --check") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.stop();

    const ProcessResult plain = status(dir, d, {"--no-fallback"});
    CHECK_MESSAGE(plain.exitCode == 1, plain.describe());
    CHECK(plain.out.empty());
    CHECK_MESSAGE(plain.err.find("no daemon") != std::string::npos, plain.err);

    const ProcessResult check = status(dir, d, {"--no-fallback", "--check"});
    CHECK_MESSAGE(check.exitCode == 3, check.describe());
    CHECK_MESSAGE(check.out.rfind("ETLD UNKNOWN", 0) == 0, check.out);
}

TEST_CASE("after kill -9 the stale socket refuses and status reads the store") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.kill9();
    REQUIRE(pathExists(d.socket()));  // left behind: this is the case under test

    requireAnsweredByStore(statusJson(dir, d));

    const ProcessResult check = status(dir, d, {"--check"});
    CHECK_MESSAGE(check.exitCode == 1, check.describe());
    const ProcessResult plain = status(dir, d, {"--no-fallback"});
    CHECK_MESSAGE(plain.exitCode == 1, plain.describe());
    const ProcessResult strict = status(dir, d, {"--no-fallback", "--check"});
    CHECK_MESSAGE(strict.exitCode == 3, strict.describe());
}

TEST_CASE("a new etld replaces the socket a killed daemon left behind") {
    TempDir dir;
    DaemonProcess first(dir);
    first.startAndWaitReady();
    const pid_t oldPid = first.pid();
    first.kill9();
    REQUIRE(pathExists(first.socket()));

    DaemonProcess second(dir);  // same store, same socket
    second.startAndWaitReady();
    CHECK(second.log().find("removed a stale socket") != std::string::npos);
    const auto doc = statusJson(dir, second);
    CHECK(std::string(at(doc, "source").GetString()) == "daemon");
    CHECK(at(doc, "daemon.pid").GetInt64() == second.pid());
    CHECK(at(doc, "daemon.pid").GetInt64() != oldPid);
    second.stop();
}

TEST_CASE("a second etld on the same store exits non-zero naming the holder's pid") {
    TempDir dir;
    DaemonProcess first(dir);
    first.startAndWaitReady();

    const ProcessResult second =
        runEtld(dir, {"--db", first.db(), "--socket", first.socket(), "--no-watch"});
    CHECK_MESSAGE(second.exitCode != 0, second.describe());
    CHECK_FALSE(second.timedOut);
    CHECK_MESSAGE(second.err.find("pid " + std::to_string(first.pid())) != std::string::npos,
                  second.err);
    // It touched nothing of the first daemon's: the socket still answers.
    RawClient c = RawClient::connect(first.socket());
    CHECK(errorCode(c.call("ping")) == "");
    first.stop();
}

TEST_CASE("the daemon keeps the store's lock while it serves and cycles") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    // A full cycle and a status: whatever the daemon reads or writes on the
    // way must not drop its record lock (closing any descriptor of the lock
    // file would).
    RawClient c = RawClient::connect(d.socket());
    REQUIRE(errorCode(c.call("sync")) == "");
    REQUIRE(errorCode(c.call("status")) == "");

    // Seen from another process, through F_GETLK, without asking the daemon.
    const auto doc = statusJson(dir, d, {"--offline"});
    CHECK(std::string(at(doc, "source").GetString()) == "database");
    REQUIRE(at(doc, "watcher.lock_held_by").IsInt64());
    CHECK(at(doc, "watcher.lock_held_by").GetInt64() == d.pid());
    d.stop();
}

TEST_CASE("a second etld for another store on a socket where a daemon answers exits") {
    TempDir dir;
    DaemonProcess first(dir);
    first.startAndWaitReady();

    const ProcessResult second =
        runEtld(dir, {"--db", dir / "other/etl.db", "--socket", first.socket(), "--no-watch"});
    CHECK_MESSAGE(second.exitCode != 0, second.describe());
    CHECK_FALSE(second.timedOut);
    CHECK_MESSAGE(second.err.find("already answers at " + first.socket()) != std::string::npos,
                  second.err);
    RawClient c = RawClient::connect(first.socket());
    CHECK(errorCode(c.call("ping")) == "");
    first.stop();
}

TEST_CASE("a socket path longer than sun_path is refused at start-up") {
    TempDir dir;
    // sun_path holds 108 bytes on Linux, the terminating NUL included.
    const std::string longPath = dir / (std::string(120, 'a') + "/etld.sock");
    REQUIRE(longPath.size() > 108);

    const ProcessResult r =
        runEtld(dir, {"--db", dir / "state/etl.db", "--socket", longPath, "--no-watch"});
    CHECK_MESSAGE(r.exitCode != 0, r.describe());
    CHECK_FALSE(r.timedOut);
    CHECK_MESSAGE(r.err.find("longer than the platform's limit") != std::string::npos, r.err);
    CHECK_FALSE(pathExists(longPath));
}

TEST_CASE("a socket directory writable by others is refused") {
    TempDir dir;
    const std::string open = dir / "open";
    REQUIRE(::mkdir(open.c_str(), 0700) == 0);
    REQUIRE(::chmod(open.c_str(), 0777) == 0);

    const ProcessResult r =
        runEtld(dir, {"--db", dir / "state/etl.db", "--socket", open + "/etld.sock", "--no-watch"});
    CHECK_MESSAGE(r.exitCode != 0, r.describe());
    CHECK_FALSE(r.timedOut);
    CHECK_MESSAGE(r.err.find("writable by others") != std::string::npos, r.err);
    CHECK_FALSE(pathExists(open + "/etld.sock"));
}

TEST_CASE("a socket directory owned by another user is refused") {
    if (!canDropPrivileges()) {
        MESSAGE("skipped: giving a directory to another user needs root");
        return;
    }
    TempDir dir;
    const std::string theirs = dir / "theirs";
    REQUIRE(::mkdir(theirs.c_str(), 0700) == 0);
    REQUIRE(::chown(theirs.c_str(), kNobodyUid, kNobodyGid) == 0);

    const ProcessResult r = runEtld(
        dir, {"--db", dir / "state/etl.db", "--socket", theirs + "/etld.sock", "--no-watch"});
    CHECK_MESSAGE(r.exitCode != 0, r.describe());
    CHECK_FALSE(r.timedOut);
    CHECK_MESSAGE(r.err.find("belongs to another user") != std::string::npos, r.err);
    CHECK_FALSE(pathExists(theirs + "/etld.sock"));
}
