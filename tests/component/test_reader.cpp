// How a reader opens the store (store.md Access rules, status.md Fallback):
// read-only, after the daemon's last connection closed, after its -wal/-shm
// files are gone, from a user who cannot write the store's directory — and
// never through `immutable=1` when that could miss commits: while a daemon
// holds the lock, or while the WAL still holds transactions.
//
// "Cannot write the directory" is real here: readAsUnprivileged() runs the
// reader in a child whose privileges are dropped. Writers that must stay open
// (or die without closing) are children too, since SQLite connections must
// not cross fork().
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::store;
using etld::test::Child;
using etld::test::TempDir;

namespace {

// Creates the store with `n` events and closes the writer (as a daemon that
// stopped cleanly).
void createStore(const std::string& path, int n) {
    auto db = openWriter(path);
    REQUIRE(db);
    auto tx = Transaction::begin(*db);
    REQUIRE(tx);
    for (int i = 0; i < n; ++i) {
        NewEvent e;
        e.eventKey = "base" + std::to_string(i);
        REQUIRE(insertEvent(*db, e));
    }
    REQUIRE(tx->commit());
}

// A child writer that keeps its WAL: autocheckpoint off, `n` events committed,
// then 'W'. With `takeLock` it first takes the instance lock, as a daemon does.
// It leaves with _exit(), never closing or checkpointing its connection.
Child::Body uncheckpointedWriter(const std::string& path, int n, bool takeLock) {
    return [=](int fromParent, int toParent) {
        std::optional<InstanceLock> lock;
        if (takeLock) {
            auto l = InstanceLock::acquire(lockPathFor(path));
            if (!l) return 1;
            lock.emplace(std::move(l).value());
        }
        auto db = openWriter(path);
        if (!db || !db->exec("PRAGMA wal_autocheckpoint = 0")) return 2;
        auto tx = Transaction::begin(*db);
        if (!tx) return 3;
        for (int i = 0; i < n; ++i) {
            NewEvent e;
            e.eventKey = "wal" + std::to_string(i);
            if (!insertEvent(*db, e)) return 4;
        }
        if (!tx->commit()) return 5;
        etld::test::writeAll(toParent, "W");
        Child::waitForParent(fromParent);
        return 0;
    };
}

std::int64_t eventsSeenBy(const std::string& path) {
    auto db = openReader(path);
    REQUIRE(db);
    auto in = readStatusInput(*db, path);
    REQUIRE(in);
    return in->eventsTotal;
}

}  // namespace

TEST_CASE("after the writer closes, its -wal and -shm remain and readers open the store") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    createStore(path, 5);
    CHECK(test::exists(path + "-wal"));
    CHECK(test::exists(path + "-shm"));
    CHECK(test::fileSize(path + "-wal") == 0);  // checkpointed and truncated on close

    CHECK(eventsSeenBy(path) == 5);
    const auto unprivileged = test::readAsUnprivileged(dir, path);
    INFO(unprivileged.code << ": " << unprivileged.message);
    CHECK(unprivileged.ok);
    CHECK(unprivileged.eventsTotal == 5);
    CHECK(unprivileged.maxEventId == 5);
}

TEST_CASE("a helper's connection closing after the writer's leaves the WAL empty too") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    auto writer = openWriter(path);
    REQUIRE(writer);
    auto helper = openWriterCompanion(path);
    REQUIRE(helper);
    CHECK(helper->exec("INSERT INTO projects (provider, slug, display_name, first_seen, "
                       "last_modified) VALUES ('claude', '-x', 'x', 0, 0)")
              .error()
              .message.find("readonly") != std::string::npos);  // query_only
    {
        auto tx = Transaction::begin(*writer);
        REQUIRE(tx);
        NewEvent e;
        e.eventKey = "k";
        REQUIRE(insertEvent(*writer, e));
        REQUIRE(tx->commit());
    }
    REQUIRE(test::fileSize(path + "-wal") > 0);
    *writer = Connection();  // not the last: nothing checkpointed yet
    CHECK(test::fileSize(path + "-wal") > 0);
    *helper = Connection();  // the last: checkpoints and cuts the WAL
    CHECK(test::exists(path + "-wal"));
    CHECK(test::exists(path + "-shm"));
    CHECK(test::fileSize(path + "-wal") == 0);
    CHECK(eventsSeenBy(path) == 1);
}

TEST_CASE(
    "with -wal and -shm gone and no daemon, a reader who cannot write the directory opens the "
    "store") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    createStore(path, 5);
    REQUIRE(std::remove((path + "-wal").c_str()) == 0);
    REQUIRE(std::remove((path + "-shm").c_str()) == 0);

    const auto unprivileged = test::readAsUnprivileged(dir, path);
    INFO(unprivileged.code << ": " << unprivileged.message);
    CHECK(unprivileged.ok);
    CHECK(unprivileged.eventsTotal == 5);
    // And the owner, who can write the directory, reads it too.
    CHECK(eventsSeenBy(path) == 5);
}

TEST_CASE(
    "with a daemon holding the lock and -shm gone, a reader refuses instead of reading immutably") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    createStore(path, 5);
    REQUIRE(std::remove((path + "-shm").c_str()) == 0);
    REQUIRE(test::fileSize(path + "-wal") == 0);  // only the lock forbids immutable here

    {
        Child daemon(test::holdLock(path));
        REQUIRE(daemon.ready() == 'L');
        const auto refused = test::readAsUnprivileged(dir, path);
        INFO(refused.code << ": " << refused.message);
        CHECK_FALSE(refused.ok);
        CHECK(refused.code != "setup");
        CHECK(refused.code != "no_output");
        CHECK(refused.code.rfind("store_", 0) == 0);  // SQLite's own refusal, passed on
        CHECK(refused.message.find("pid " + std::to_string(daemon.pid())) != std::string::npos);
        daemon.release();
        REQUIRE(daemon.wait() == 0);
    }
    // The same reader, once the lock is free: the immutable fallback is safe.
    const auto after = test::readAsUnprivileged(dir, path);
    INFO(after.code << ": " << after.message);
    CHECK(after.ok);
    CHECK(after.eventsTotal == 5);
}

TEST_CASE("a reader sees what a live writer committed but has not checkpointed") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    createStore(path, 2);
    Child writer(uncheckpointedWriter(path, 4, /*takeLock=*/true));
    REQUIRE(writer.ready() == 'W');
    CHECK(test::fileSize(path + "-wal") > 0);

    {
        auto db = openReader(path);
        REQUIRE(db);
        auto in = readStatusInput(*db, path);
        REQUIRE(in);
        CHECK(in->eventsTotal == 6);
        CHECK(in->maxEventId == 6);
        CHECK(in->lockHeldBy == writer.pid());
    }
    // Another user, who can only read the daemon's -shm, sees the same.
    const auto unprivileged = test::readAsUnprivileged(dir, path);
    INFO(unprivileged.code << ": " << unprivileged.message);
    CHECK(unprivileged.ok);
    CHECK(unprivileged.eventsTotal == 6);
    writer.release();
    CHECK(writer.wait() == 0);
}

TEST_CASE("a killed writer's non-empty WAL is never skipped by an immutable read") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    createStore(path, 2);
    {
        Child writer(uncheckpointedWriter(path, 3, /*takeLock=*/true));
        REQUIRE(writer.ready() == 'W');
        writer.killHard();  // kill -9: the lock goes, the WAL stays
        writer.wait();
    }
    REQUIRE(test::fileSize(path + "-wal") > 0);
    REQUIRE(std::remove((path + "-shm").c_str()) == 0);

    // No lock, but an immutable read would report 2 events instead of 5.
    const auto refused = test::readAsUnprivileged(dir, path);
    INFO(refused.code << ": " << refused.message << " (events " << refused.eventsTotal << ")");
    CHECK_FALSE(refused.ok);
    CHECK(refused.code.rfind("store_", 0) == 0);
    CHECK(refused.message.find("-wal") != std::string::npos);
    // The owner reads the WAL's commits.
    CHECK(eventsSeenBy(path) == 5);
}
