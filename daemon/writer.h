// The writer thread: the one owner of the store's only write connection.
//
// The loop thread posts tasks; each runs on the writer thread with the
// connection, and its completion runs back on the loop thread (woken through
// a uv_async_t). The loop never waits on the disk. Tasks run one at a time,
// in the order posted. The watchdog asks healthy(): idle, or the current
// task started recently enough (test hooks can wedge it to prove the check).
// WAL checkpoints run on a thread of their own (wal_checkpointer.h), not in
// the writer's commits.
#pragma once

#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "store/sqlite.h"
#include "uv_handle.h"
#include "wal_checkpointer.h"

namespace etld::daemon {

class Writer {
public:
    using Task = std::function<Status(store::Connection&)>;
    using Done = std::function<void(const Status&)>;

    // Takes the open write connection; the thread starts at once.
    Writer(uv_loop_t* loop, store::Connection db);
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // Loop thread only. `done` runs on the loop thread after the task.
    void post(Task task, Done done = {});
    // Writer thread: runs `fn` on the loop thread soon (progress reports of
    // a long task).
    void postToLoop(std::function<void()> fn);
    // Writer thread: a long task made progress (a step committed); the
    // watchdog measures the current step, not the whole task.
    void heartbeat();

    // Loop thread: runs what was queued, then joins the thread and closes
    // the async handle. Completions still pending run before it returns.
    void stop();

    // True when idle, or when the running task started less than
    // `maxTaskMicros` ago by the monotonic clock.
    bool healthy(std::int64_t maxTaskMicros) const;
    std::uint64_t completedTasks() const { return completed_.load(); }

private:
    struct Item {
        Task task;
        Done done;
        Status result;
    };
    void run();
    void drainCompletions();
    static void onAsync(uv_async_t* async) noexcept;

    store::Connection db_;  // touched by the writer thread only
    // Hooked into db_'s commits: gone before db_ (stop(), or member order).
    std::unique_ptr<WalCheckpointer> checkpointer_;
    UvHandle<uv_async_t> async_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Item> queue_;  // guarded by mutex_
    std::deque<Item> done_;   // guarded by mutex_
    bool stopping_ = false;   // guarded by mutex_
    std::atomic<std::int64_t> busySinceMicros_{0};  // 0 when idle
    std::atomic<std::uint64_t> completed_{0};
    std::thread thread_;
};

}  // namespace etld::daemon
