// WAL checkpoints off the writer thread (daemon/wal_checkpointer.h), on a
// real store: commits past the threshold leave the checkpoint to the
// checkpointer's thread, a WAL past the limit is checkpointed by the commit
// itself, and stopping hands the writer back to SQLite's automatic
// checkpoints with the WAL files kept. The thread is held and awaited
// through its test hooks, never by sleeping.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "store/store.h"
#include "support.h"
#include "wal_checkpointer.h"

using namespace etld;
using namespace etld::daemon;
using etld::test::TempDir;

namespace {

constexpr int kWaitMs = 30000;

store::Connection openStore(const std::string& path) {
    auto db = store::openWriter(path);
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE filler (blob BLOB)"));
    // The migrations' frames go: each test's WAL starts empty.
    REQUIRE(db->exec("PRAGMA wal_checkpoint(TRUNCATE)"));
    return std::move(db).value();
}

std::unique_ptr<WalCheckpointer> startOn(store::Connection& db, int thresholdPages, int limitPages) {
    auto started = WalCheckpointer::start(db, {.thresholdPages = thresholdPages, .limitPages = limitPages});
    REQUIRE(started);
    return std::move(started).value();
}

// One transaction of `pages` pages of new rows (a row of three quarters of a
// page: one per page, whatever the store's page size).
void commitPages(store::Connection& db, int pages) {
    const std::string insert = "INSERT INTO filler VALUES (randomblob(" +
                               std::to_string(*db.queryInt("PRAGMA page_size") * 3 / 4) + "))";
    auto tx = store::Transaction::begin(db);
    REQUIRE(tx);
    for (int i = 0; i < pages; ++i) REQUIRE(db.exec(insert));
    REQUIRE(tx->commit());
}

// Frames the WAL file holds from its start (a restarted WAL is overwritten
// in place: the file does not shrink, so this only ever grows).
std::int64_t walFileFrames(const std::string& path, store::Connection& db) {
    const auto pageBytes = *db.queryInt("PRAGMA page_size");
    const auto bytes = static_cast<std::int64_t>(std::filesystem::file_size(path + "-wal"));
    return bytes <= 32 ? 0 : (bytes - 32) / (pageBytes + 24);
}

}  // namespace

TEST_CASE("past the threshold, the checkpointer's thread checkpoints, not the commit") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    store::Connection db = openStore(path);
    // An automatic checkpoint this small would have run in the commits below.
    REQUIRE(db.exec("PRAGMA wal_autocheckpoint = 10"));
    {
        auto started = startOn(db, 20, 100000);
        WalCheckpointer& checkpointer = *started;
        checkpointer.holdForTest(true);
        for (int i = 0; i < 8; ++i) commitPages(db, 10);
        // Nothing checkpointed in the commits: the WAL only grew.
        CHECK(walFileFrames(path, db) >= 80);
        CHECK(checkpointer.counts().byThread == 0);
        CHECK(checkpointer.counts().byWriter == 0);

        checkpointer.holdForTest(false);
        REQUIRE(checkpointer.waitForCheckpointsForTest(1, kWaitMs));
        const auto counts = checkpointer.counts();
        CHECK(counts.lastWalFrames >= 80);
        CHECK(counts.lastCopiedFrames == counts.lastWalFrames);  // no reader held a frame back
        CHECK(counts.byWriter == 0);

        // Everything copied: the next transaction starts the WAL over, so the
        // file grows no further for a transaction that fits in it.
        const std::int64_t framesBefore = walFileFrames(path, db);
        commitPages(db, 10);
        CHECK(walFileFrames(path, db) == framesBefore);
    }
    CHECK(*db.queryInt("PRAGMA wal_autocheckpoint") == 10);  // handed back
}

TEST_CASE("a WAL past the limit is checkpointed by the commit that finds it there") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    store::Connection db = openStore(path);
    auto started = startOn(db, 10, 40);
    WalCheckpointer& checkpointer = *started;
    checkpointer.holdForTest(true);  // a thread that does not keep up
    for (int i = 0; i < 6; ++i) commitPages(db, 15);
    CHECK(checkpointer.counts().byWriter >= 1);
    CHECK(checkpointer.counts().byThread == 0);
    // Each commit past the limit copied the WAL, so it started over instead
    // of growing by the 90 pages written.
    CHECK(walFileFrames(path, db) < 70);
    checkpointer.holdForTest(false);
}

TEST_CASE("stopping keeps the WAL files, and the data is in the store") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    {
        store::Connection db = openStore(path);
        auto started = startOn(db, 10, 100000);
        commitPages(db, 20);
        REQUIRE(started->waitForCheckpointsForTest(1, kWaitMs));
        started.reset();  // the checkpointer's connection closes first
        commitPages(db, 1);
    }
    // Read-only users need -wal and -shm (store.cpp): neither connection's
    // close removed them.
    CHECK(std::filesystem::exists(path + "-wal"));
    CHECK(std::filesystem::exists(path + "-shm"));
    auto reader = store::openReader(path);
    REQUIRE(reader);
    CHECK(*reader->queryInt("SELECT COUNT(*) FROM filler") == 21);
}

TEST_CASE("a store without a file has nothing to checkpoint: start says so") {
    auto db = store::Connection::open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    REQUIRE(db);
    auto started = WalCheckpointer::start(*db, {.thresholdPages = 10, .limitPages = 100});
    REQUIRE_FALSE(started);
    CHECK(started.error().message.find("no file") != std::string::npos);
}
