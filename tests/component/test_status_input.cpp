// The store path of the status (status.md, "Where each field comes from
// without the daemon"): what the daemon recorded comes back unchanged, and a
// job recorded as running shows as interrupted once no daemon holds the lock
// — the same way the next daemon will record it.
//
// The lock holder is a forked child: a POSIX record lock held by the test's
// own process is invisible to it (F_GETLK reports other processes only).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "store/schema.h"
#include "store/store.h"
#include "support.h"

using namespace etld;
using namespace etld::store;
using etld::test::Child;
using etld::test::TempDir;

namespace {

constexpr UnixMicros kT0 = 1778055851123456;  // 2026-05-06T08:24:11.123456Z
constexpr UnixMicros kSec = kMicrosPerSecond;

Connection freshStore(const std::string& path) {
    auto db = openWriter(path);
    REQUIRE(db);
    return std::move(db).value();
}

status::Job job(const std::string& hexDigit, const std::string& state, UnixMicros startedAt,
                std::optional<UnixMicros> completedAt, UnixMicros progressAt) {
    status::Job j;
    j.jobId = std::string(32, hexDigit[0]);
    j.startedAt = startedAt;
    j.force = hexDigit == "f";
    j.status = state;
    j.completedAt = completedAt;
    if (state == "failed") j.error = "disk full";
    j.progress.bytesDone = 10;
    j.progress.bytesTotal = 100;
    j.progress.eventsDone = 3;
    j.progress.updatedAt = progressAt;
    return j;
}

status::StatusInput read(Connection& db, const std::string& path) {
    auto in = readStatusInput(db, path);
    REQUIRE(in);
    return std::move(in).value();
}

}  // namespace

TEST_CASE("the daemon's recorded state comes back from the store unchanged") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);

    DaemonSnapshot snap;
    snap.pid = 4242;
    snap.version = "0.1.0";
    snap.startedAt = kT0 - 60 * kSec;
    snap.watcherEnabled = false;
    snap.lastRefresh = kT0 - 3 * kSec;
    snap.eventsInLastCycle = 12;
    status::SourceState claude;
    claude.provider = "claude";
    claude.roots = {"/home/u/.claude", "/srv/other \"quoted\""};
    claude.watching = "events";
    claude.files = 7;
    claude.bytesIngested = 123456789012;
    claude.bytesPending = 5;
    claude.bytesReadSinceStart = 999;
    claude.linesSkipped = 2;
    claude.lastError = "a line is not JSON, skipping";
    status::SourceState codex;
    codex.provider = "codex";
    codex.watching = "stat_scan";
    snap.sources = {claude, codex};
    snap.fault = status::Fault{"store_full", "database or disk is full", kT0 - 20 * kSec};
    snap.recordedAt = kT0;
    REQUIRE(recordDaemonState(db, snap));

    const auto in = read(db, path);
    CHECK(in.origin == status::Origin::Database);
    CHECK_FALSE(in.watcherRunning.has_value());  // "unknown" from the store
    CHECK(in.watcherEnabled == false);
    CHECK(in.lastRefresh == snap.lastRefresh);
    CHECK(in.eventsInLastCycle == snap.eventsInLastCycle);
    CHECK(in.asOf == kT0);
    CHECK(in.schemaVersion == latestSchemaVersion());
    CHECK(in.storePath == canonicalPath(path));
    REQUIRE(in.fault.has_value());
    CHECK(in.fault->code == "store_full");
    CHECK(in.fault->message == "database or disk is full");
    CHECK(in.fault->since == kT0 - 20 * kSec);
    REQUIRE(in.sources.size() == 2);
    const auto& c = in.sources[0].provider == "claude" ? in.sources[0] : in.sources[1];
    const auto& x = in.sources[0].provider == "claude" ? in.sources[1] : in.sources[0];
    CHECK(c.provider == "claude");
    CHECK(c.roots == claude.roots);
    CHECK(c.watching == "events");
    CHECK(c.files == 7);
    CHECK(c.bytesIngested == 123456789012);
    CHECK(c.bytesPending == 5);
    CHECK(c.bytesReadSinceStart == 999);
    CHECK(c.linesSkipped == 2);
    CHECK(c.lastError == claude.lastError);
    CHECK(x.provider == "codex");
    CHECK(x.roots.empty());
    CHECK(x.watching == "stat_scan");
    CHECK_FALSE(x.lastError.has_value());
}

TEST_CASE("a later snapshot replaces the earlier one, clearing a fault") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    DaemonSnapshot snap;
    snap.fault = status::Fault{"store_full", "full", kT0};
    snap.recordedAt = kT0;
    REQUIRE(recordDaemonState(db, snap));
    snap.fault.reset();
    snap.lastRefresh.reset();
    snap.eventsInLastCycle = 0;
    snap.recordedAt = kT0 + kSec;
    REQUIRE(recordDaemonState(db, snap));

    const auto in = read(db, path);
    CHECK_FALSE(in.fault.has_value());
    CHECK_FALSE(in.lastRefresh.has_value());
    CHECK(in.eventsInLastCycle == 0);
    CHECK(in.asOf == kT0 + kSec);
    CHECK(*db.queryInt("SELECT COUNT(*) FROM daemon_state") == 1);
}

TEST_CASE("a store the daemon never recorded state in reads with nothing recorded") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    const auto in = read(db, path);
    CHECK_FALSE(in.asOf.has_value());
    CHECK_FALSE(in.fault.has_value());
    CHECK_FALSE(in.lastRefresh.has_value());
    CHECK(in.sources.empty());
    CHECK_FALSE(in.currentJob.has_value());
    CHECK_FALSE(in.lastJob.has_value());
    CHECK_FALSE(in.lockHeldBy.has_value());
}

TEST_CASE("a running job shows as current while another process holds the lock") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    REQUIRE(recordJob(db, job("a", "complete", kT0, kT0 + 10 * kSec, kT0 + 10 * kSec)));
    REQUIRE(recordJob(db, job("f", "running", kT0 + 20 * kSec, std::nullopt, kT0 + 25 * kSec)));

    Child daemon(etld::test::holdLock(path));
    REQUIRE(daemon.ready() == 'L');
    const auto in = read(db, path);
    CHECK(in.lockHeldBy == daemon.pid());
    REQUIRE(in.currentJob.has_value());
    CHECK(in.currentJob->jobId == std::string(32, 'f'));
    CHECK(in.currentJob->status == "running");
    CHECK(in.currentJob->force);
    CHECK_FALSE(in.currentJob->completedAt.has_value());
    CHECK(in.currentJob->progress.updatedAt == kT0 + 25 * kSec);
    CHECK(in.currentJob->progress.bytesDone == 10);
    REQUIRE(in.lastJob.has_value());
    CHECK(in.lastJob->jobId == std::string(32, 'a'));
    daemon.release();
    CHECK(daemon.wait() == 0);
}

TEST_CASE("once the lock holder is gone, the running job shows as interrupted") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    REQUIRE(recordJob(db, job("a", "failed", kT0, kT0 + 10 * kSec, kT0 + 10 * kSec)));
    REQUIRE(recordJob(db, job("b", "running", kT0 + 20 * kSec, std::nullopt, kT0 + 25 * kSec)));
    {
        Child daemon(etld::test::holdLock(path));
        REQUIRE(daemon.ready() == 'L');
        REQUIRE(read(db, path).currentJob.has_value());
        daemon.release();
        REQUIRE(daemon.wait() == 0);
    }
    // The same connection, the lock now free.
    const auto in = read(db, path);
    CHECK_FALSE(in.lockHeldBy.has_value());
    CHECK_FALSE(in.currentJob.has_value());
    REQUIRE(in.lastJob.has_value());
    CHECK(in.lastJob->jobId == std::string(32, 'b'));
    CHECK(in.lastJob->status == "failed");
    CHECK(in.lastJob->error == std::string("interrupted"));
    CHECK(in.lastJob->completedAt == kT0 + 25 * kSec);  // its last recorded progress
    // The store itself is unchanged: readers never write.
    CHECK(*db.queryInt("SELECT COUNT(*) FROM backfill_jobs WHERE status = 'running'") == 1);
}

TEST_CASE("failInterruptedJobs records what the store path already showed") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    REQUIRE(recordJob(db, job("a", "complete", kT0, kT0 + 10 * kSec, kT0 + 10 * kSec)));
    REQUIRE(recordJob(db, job("b", "running", kT0 + 20 * kSec, std::nullopt, kT0 + 25 * kSec)));
    const auto shown = read(db, path);  // no lock holder: shown as interrupted

    auto marked = failInterruptedJobs(db);
    REQUIRE(marked);
    CHECK(*marked == 1);
    CHECK(*db.queryInt("SELECT COUNT(*) FROM backfill_jobs WHERE status = 'running'") == 0);
    const auto recorded = read(db, path);
    REQUIRE(shown.lastJob.has_value());
    REQUIRE(recorded.lastJob.has_value());
    CHECK(recorded.lastJob->jobId == shown.lastJob->jobId);
    CHECK(recorded.lastJob->status == "failed");
    CHECK(recorded.lastJob->status == shown.lastJob->status);
    CHECK(recorded.lastJob->error == shown.lastJob->error);
    CHECK(recorded.lastJob->completedAt == kT0 + 25 * kSec);
    CHECK(recorded.lastJob->completedAt == shown.lastJob->completedAt);
    CHECK(*failInterruptedJobs(db) == 0);  // nothing left to mark
}

TEST_CASE("last_job is the most recently completed job, whatever the insertion order") {
    TempDir dir;
    const std::string path = dir.file("etl.db");
    Connection db = freshStore(path);
    REQUIRE(recordJob(db, job("c", "complete", kT0 + 30 * kSec, kT0 + 90 * kSec, kT0 + 90 * kSec)));
    REQUIRE(recordJob(db, job("a", "failed", kT0 + 40 * kSec, kT0 + 50 * kSec, kT0 + 50 * kSec)));
    REQUIRE(recordJob(db, job("b", "complete", kT0, kT0 + 60 * kSec, kT0 + 60 * kSec)));
    const auto in = read(db, path);
    REQUIRE(in.lastJob.has_value());
    CHECK(in.lastJob->jobId == std::string(32, 'c'));
    CHECK(in.lastJob->completedAt == kT0 + 90 * kSec);
    CHECK_FALSE(in.currentJob.has_value());

    // A job updated to complete later becomes the last one.
    REQUIRE(recordJob(db, job("a", "complete", kT0 + 40 * kSec, kT0 + 95 * kSec, kT0 + 95 * kSec)));
    CHECK(read(db, path).lastJob->jobId == std::string(32, 'a'));
}
