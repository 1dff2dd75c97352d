// WAL checkpoints off the writer thread.
//
// With SQLite's automatic checkpoints, the commit that takes the WAL past
// its threshold copies the WAL into the database and syncs both files
// before it returns: on a first ingest that was a tenth of the writer
// thread's time (copying and two fdatasyncs per checkpoint), on the path
// that bounds the ingest. A WalCheckpointer instead replaces the writer
// connection's automatic checkpoints with a WAL hook that wakes a thread of
// its own, which runs PASSIVE checkpoints on a second connection to the
// same file while the writer goes on committing. SQLite supports exactly
// that: a checkpoint copies frames already committed and never blocks the
// writer; once everything is copied, the writer's next transaction starts
// the WAL over.
//
// The WAL stays bounded however slow the thread: a commit that finds the
// WAL past `limitPages` checkpoints on the writer connection itself, as
// SQLite's automatic checkpoint would. The second connection copies pages
// and syncs; it never writes a row (store.md's access rules).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/sqlite.h"

namespace etld::daemon {

class WalCheckpointer {
public:
    struct Limits {
        int thresholdPages = 0;  // the thread checkpoints once the WAL holds this many
        int limitPages = 0;      // past this the writer checkpoints itself
    };
    // Pages of WAL from store.h's byte bounds, for `writer`'s page size.
    static Result<Limits> defaultLimits(store::Connection& writer);

    // Opens the second connection and hooks `writer`'s commits. Call it from
    // the thread that owns `writer`, or before any thread uses it.
    static Result<std::unique_ptr<WalCheckpointer>> start(store::Connection& writer, Limits limits);
    // Stops the thread and hands `writer` back to SQLite's automatic
    // checkpoints. No thread may be using `writer` meanwhile.
    ~WalCheckpointer();
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    struct Counts {
        std::uint64_t byThread = 0;  // checkpoints the thread ran
        std::uint64_t byWriter = 0;  // checkpoints a commit ran (WAL past the limit)
        int lastWalFrames = 0;       // frames in the WAL at the thread's last checkpoint
        int lastCopiedFrames = 0;    // of them, copied into the database
    };
    Counts counts() const;

    // Tests: holds the thread before its next checkpoint until released, and
    // waits (bounded by `timeoutMs`) for the thread's checkpoints to reach `n`.
    void holdForTest(bool hold);
    bool waitForCheckpointsForTest(std::uint64_t n, int timeoutMs) const;

private:
    WalCheckpointer(store::Connection& writer, store::Connection own, Limits limits,
                    int autoPagesBefore);
    static int onCommit(void* self, sqlite3* db, const char* schema, int walPages);
    void run();

    sqlite3* writer_;
    store::Connection own_;  // used by the thread only
    const Limits limits_;
    int autoPagesBefore_;  // the writer's automatic checkpoint, restored on destruction
    int writerFailure_ = SQLITE_OK;  // the writer's last checkpoint failure logged
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    bool wanted_ = false;     // guarded by mutex_
    bool stopping_ = false;   // guarded by mutex_
    bool held_ = false;       // guarded by mutex_
    Counts counts_;           // guarded by mutex_
    std::thread thread_;
};

}  // namespace etld::daemon
