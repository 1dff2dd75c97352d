// The marts' next refresh step, read ahead off the writer thread.
//
// A refresh step reads the events above the marts' watermarks, folds them
// into deltas in memory, then writes the deltas. Only the writing needs the
// write connection; the reading (a sixth of the writer's time in a first
// ingest) can run on a read connection of its own, in a snapshot, while the
// writer goes on writing events. The writer then applies the step it finds
// ready, and store::applyPreparedRefreshInTransaction drops it if the marts
// moved meanwhile (the writer ran a step of its own): correctness never
// depends on this class, only the writer's time does.
//
// One step is kept ready at a time (a few MB of deltas at most); once the
// writer takes it, the next is read on from where it ends. The thread sleeps
// on a condition variable until told that events were committed: no work
// and no wake-ups while nothing changes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "store/marts.h"
#include "store/sqlite.h"

namespace etld::daemon {

class MartPrefetcher {
public:
    // Opens its read connection on `storePath` and starts the thread.
    static Result<std::unique_ptr<MartPrefetcher>> start(const std::string& storePath,
                                                         std::int64_t stepEvents);
    ~MartPrefetcher();  // stops and joins the thread
    MartPrefetcher(const MartPrefetcher&) = delete;
    MartPrefetcher& operator=(const MartPrefetcher&) = delete;

    // Writer thread: events were committed; read a step if none is ready.
    void committed();
    // Writer thread: the step that is ready, or the one being read (waited
    // for: it is partly done); nullopt when there is none.
    std::optional<store::PreparedRefresh> take();
    // Writer thread: the marts moved by a step not taken from here; the next
    // step is read from the store's watermarks, and one read before is
    // dropped.
    void restart();

    // Tests: waits until the thread has nothing left to do (what it was told
    // of is read, or the ready step is full).
    void settleForTest();

    struct Counts {
        std::uint64_t prepared = 0;  // steps read and kept
        std::uint64_t taken = 0;     // of them, handed to the writer
        std::uint64_t failed = 0;    // reads that failed (logged once)
    };
    Counts counts() const;

private:
    MartPrefetcher(store::Connection db, std::int64_t stepEvents);
    void run();
    bool hasWork() const;  // mutex_ held

    store::Connection db_;  // touched by the thread only
    const std::int64_t stepEvents_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    // All guarded by mutex_.
    bool wanted_ = false;     // committed() since the last read, or more left
    bool reading_ = false;    // the thread is reading a step
    bool stopping_ = false;
    std::uint64_t generation_ = 0;  // restart() drops what was read before it
    std::optional<store::MartWatermarks> next_;  // where the next step starts; unset: the store's
    std::optional<store::PreparedRefresh> ready_;
    Counts counts_;
    bool failureLogged_ = false;
    std::thread thread_;
};

}  // namespace etld::daemon
