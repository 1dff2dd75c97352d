#include "wal_checkpointer.h"

#include <algorithm>
#include <chrono>

#include "log.h"
#include "store/store.h"

namespace etld::daemon {

Result<WalCheckpointer::Limits> WalCheckpointer::defaultLimits(store::Connection& writer) {
    auto pageBytes = writer.queryInt("PRAGMA page_size");
    if (!pageBytes) return pageBytes.error();
    const std::int64_t page = std::max<std::int64_t>(*pageBytes, 512);
    return Limits{static_cast<int>(store::kWalCheckpointBytes / page),
                  static_cast<int>(store::kWalLimitBytes / page)};
}

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::start(store::Connection& writer,
                                                                Limits limits) {
    const char* file = sqlite3_db_filename(writer.handle(), "main");
    if (file == nullptr || *file == '\0') return Error{"internal", "the store has no file to checkpoint"};
    auto own = store::openWriterCompanion(file);
    if (!own) return own.error();
    // A checkpoint syncs as its connection's setting says: the writer's.
    if (auto st = own->exec("PRAGMA synchronous = NORMAL"); !st) return st.error();
    auto autoPages = writer.queryInt("PRAGMA wal_autocheckpoint");
    if (!autoPages) return autoPages.error();
    return std::unique_ptr<WalCheckpointer>(
        new WalCheckpointer(writer, std::move(*own), limits, static_cast<int>(*autoPages)));
}

WalCheckpointer::WalCheckpointer(store::Connection& writer, store::Connection own, Limits limits,
                                 int autoPagesBefore)
    : writer_(writer.handle()), own_(std::move(own)), limits_(limits), autoPagesBefore_(autoPagesBefore) {
    thread_ = std::thread([this] { run(); });
    // Replaces SQLite's automatic checkpoint, itself a WAL hook.
    sqlite3_wal_hook(writer_, &WalCheckpointer::onCommit, this);
}

WalCheckpointer::~WalCheckpointer() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
    sqlite3_wal_autocheckpoint(writer_, autoPagesBefore_);  // removes our hook
}

// Writer thread, after each commit, with the pages the WAL now holds.
int WalCheckpointer::onCommit(void* self, sqlite3* db, const char* schema, int walPages) {
    auto& c = *static_cast<WalCheckpointer*>(self);
    if (walPages >= c.limits_.limitPages) {
        const int rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        // Logged once until one succeeds: every commit comes here meanwhile.
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != c.writerFailure_)
            log::warning(std::string("WAL checkpoint on the writer failed: ") + sqlite3_errstr(rc) +
                         "; tried again at the next commit");
        if (rc != SQLITE_BUSY) c.writerFailure_ = rc;
        std::lock_guard lock(c.mutex_);
        ++c.counts_.byWriter;
    } else if (walPages >= c.limits_.thresholdPages) {
        {
            std::lock_guard lock(c.mutex_);
            c.wanted_ = true;
        }
        c.changed_.notify_all();
    }
    // The commit has happened whatever this returns; an error would only
    // make its statement report one.
    return SQLITE_OK;
}

void WalCheckpointer::run() {
    int lastFailure = SQLITE_OK;  // logged once until a checkpoint succeeds
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [this] { return stopping_ || (wanted_ && !held_); });
            if (stopping_) return;
            wanted_ = false;
        }
        int walFrames = 0, copiedFrames = 0;
        const int rc = sqlite3_wal_checkpoint_v2(own_.handle(), "main", SQLITE_CHECKPOINT_PASSIVE,
                                                 &walFrames, &copiedFrames);
        // BUSY: another checkpoint was running (the writer's, past the limit).
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != lastFailure) {
            log::warning(std::string("WAL checkpoint failed: ") + sqlite3_errmsg(own_.handle()) +
                         "; tried again at the next commit past the threshold");
        } else if (rc == SQLITE_OK && lastFailure != SQLITE_OK) {
            log::info("WAL checkpoints work again");
        }
        if (rc != SQLITE_BUSY) lastFailure = rc;
        {
            std::lock_guard lock(mutex_);
            ++counts_.byThread;
            counts_.lastWalFrames = walFrames;
            counts_.lastCopiedFrames = copiedFrames;
        }
        changed_.notify_all();
    }
}

WalCheckpointer::Counts WalCheckpointer::counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
}

void WalCheckpointer::holdForTest(bool hold) {
    {
        std::lock_guard lock(mutex_);
        held_ = hold;
    }
    changed_.notify_all();
}

bool WalCheckpointer::waitForCheckpointsForTest(std::uint64_t n, int timeoutMs) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                             [&] { return counts_.byThread >= n; });
}

}  // namespace etld::daemon
