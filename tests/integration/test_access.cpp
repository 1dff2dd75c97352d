// Who may read what: the store read by an unprivileged user after the daemon
// stopped, the socket refusing other users twice over (file modes, then the
// daemon's own SO_PEERCRED check), and etlctl refusing to report on a store
// other than the one it was asked about. Privileges are really dropped
// (setpriv), never simulated.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include "harness.h"

using namespace etld::it;

namespace {

const RunAs kNobody{};
const RunAs kNobodyWithDacOverride{kNobodyUid, kNobodyGid, {"dac_override"}};

// Lets others traverse the temporary directory and read the store: the
// store's directory stays writable only by its owner.
void shareStoreReadOnly(const TempDir& dir, const DaemonProcess& d) {
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
    const std::string storeDir = std::filesystem::path(d.db()).parent_path().string();
    REQUIRE(::chmod(storeDir.c_str(), 0755) == 0);
    for (const auto& name : listDirectory(storeDir))
        REQUIRE(::chmod((storeDir + "/" + name).c_str(), 0644) == 0);
}

// Proves the precondition: the reader really cannot write there.
void requireCannotCreateIn(const TempDir& dir, const std::string& storeDir) {
    const ProcessResult r = runProbe(dir, {"create", storeDir + "/probe"}, asUser(kNobody));
    REQUIRE_MESSAGE(r.exitCode == 1, r.describe());
    REQUIRE(firstLine(r.out) == "EACCES");
}

ProcessResult offlineStatusAsNobody(const TempDir& dir, const DaemonProcess& d) {
    std::vector<std::string> args = d.ctlTarget();
    args.insert(args.end(), {"status", "--offline", "--format", "json"});
    return runCtl(dir, args, asUser(kNobody));
}

void requireStoreDocument(const ProcessResult& r) {
    REQUIRE_MESSAGE(r.exitCode == 0, r.describe());
    const auto doc = parseJson(r.out);
    CHECK(std::string(at(doc, "source").GetString()) == "database");
    REQUIRE(at(doc, "watcher.running").IsString());
    CHECK(std::string(at(doc, "watcher.running").GetString()) == "unknown");
}

}  // namespace

TEST_CASE("a user who cannot write the store's directory reads it after a clean stop") {
    if (!canDropPrivileges()) {
        MESSAGE("skipped: dropping privileges with setpriv needs root");
        return;
    }
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.stop();
    shareStoreReadOnly(dir, d);
    const std::string storeDir = std::filesystem::path(d.db()).parent_path().string();
    requireCannotCreateIn(dir, storeDir);

    const auto before = listDirectory(storeDir);
    requireStoreDocument(offlineStatusAsNobody(dir, d));
    CHECK(listDirectory(storeDir) == before);  // read-only: nothing created
}

TEST_CASE("that user still reads the store once -wal and -shm are gone") {
    if (!canDropPrivileges()) {
        MESSAGE("skipped: dropping privileges with setpriv needs root");
        return;
    }
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    d.stop();
    REQUIRE(std::filesystem::remove(d.db() + "-wal"));
    REQUIRE(std::filesystem::remove(d.db() + "-shm"));
    shareStoreReadOnly(dir, d);
    const std::string storeDir = std::filesystem::path(d.db()).parent_path().string();
    requireCannotCreateIn(dir, storeDir);

    const auto before = listDirectory(storeDir);
    requireStoreDocument(offlineStatusAsNobody(dir, d));
    CHECK(listDirectory(storeDir) == before);
    CHECK_FALSE(pathExists(d.db() + "-wal"));
    CHECK_FALSE(pathExists(d.db() + "-shm"));
}

TEST_CASE("a peer of another uid that reaches the socket is refused by the daemon") {
    if (!canDropPrivileges()) {
        MESSAGE("skipped: dropping privileges with setpriv needs root");
        return;
    }
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    // Only the daemon's own 0700 directory and 0600 socket stand in the way,
    // and CAP_DAC_OVERRIDE walks through those: the refusal below can only
    // be the daemon's SO_PEERCRED check.
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);

    const ProcessResult raw =
        runProbe(dir, {"connect", d.socket()}, asUser(kNobodyWithDacOverride));
    REQUIRE_MESSAGE(raw.exitCode == 0, raw.describe());
    CHECK(firstLine(raw.out) == "connected");
    CHECK_MESSAGE(raw.out.find("\"code\":\"permission_denied\"") != std::string::npos, raw.out);

    std::vector<std::string> args = d.ctlTarget();
    args.insert(args.end(), {"status", "--check"});
    const ProcessResult ctl = runCtl(dir, args, asUser(kNobodyWithDacOverride));
    CHECK_MESSAGE(ctl.exitCode == 3, ctl.describe());
    CHECK_MESSAGE(ctl.out.find("refused us") != std::string::npos, ctl.out);

    // Its own user is still served.
    RawClient own = RawClient::connect(d.socket());
    CHECK(errorCode(own.call("ping")) == "");
    d.stop();
}

TEST_CASE("without the capability, the socket's file modes already stop another uid") {
    if (!canDropPrivileges()) {
        MESSAGE("skipped: dropping privileges with setpriv needs root");
        return;
    }
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);

    const ProcessResult raw = runProbe(dir, {"connect", d.socket()}, asUser(kNobody));
    CHECK_MESSAGE(raw.exitCode == 1, raw.describe());
    CHECK(firstLine(raw.out) == "EACCES");

    std::vector<std::string> args = d.ctlTarget();
    args.insert(args.end(), {"status", "--check"});
    const ProcessResult ctl = runCtl(dir, args, asUser(kNobody));
    CHECK_MESSAGE(ctl.exitCode == 3, ctl.describe());
    CHECK_MESSAGE(ctl.out.find("permission denied") != std::string::npos, ctl.out);
    d.stop();
}

TEST_CASE("etlctl --db naming another store than the daemon's exits 3 with a clear message") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    const std::string other = dir / "other/etl.db";

    const ProcessResult check =
        runCtl(dir, {"--socket", d.socket(), "--db", other, "status", "--check"});
    CHECK_MESSAGE(check.exitCode == 3, check.describe());
    CHECK_MESSAGE(check.out.find("serves " + d.db() + ", not " + other) != std::string::npos,
                  check.out);

    const ProcessResult plain =
        runCtl(dir, {"--socket", d.socket(), "--db", other, "status", "--format", "json"});
    CHECK_MESSAGE(plain.exitCode == 1, plain.describe());
    CHECK(plain.out.empty());  // no document, and none read from elsewhere
    CHECK_MESSAGE(plain.err.find("serves " + d.db()) != std::string::npos, plain.err);
    d.stop();
}

TEST_CASE("etlctl --db naming the daemon's store another way is accepted") {
    TempDir dir;
    DaemonProcess d(dir);
    d.startAndWaitReady();
    const std::string sameStore = dir / "state/../state//etl.db";

    const ProcessResult r =
        runCtl(dir, {"--socket", d.socket(), "--db", sameStore, "status", "--check"});
    CHECK_MESSAGE(r.exitCode == 0, r.describe());
    d.stop();
}
