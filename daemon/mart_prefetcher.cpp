#include "mart_prefetcher.h"

#include "log.h"
#include "store/store.h"

namespace etld::daemon {
namespace {

constexpr int kBusyTimeoutMs = 100;

}  // namespace

Result<std::unique_ptr<MartPrefetcher>> MartPrefetcher::start(const std::string& storePath,
                                                              std::int64_t stepEvents) {
    auto db = store::openWriterCompanion(storePath);
    if (!db) return db.error();
    // It reads what the writer has just committed: mostly WAL frames the OS
    // caches anyway. A small cache keeps it off the RSS budget.
    if (auto st = db->exec("PRAGMA cache_size = -1024"); !st) return st.error();
    // Its reads are optional: one that would wait long fails, and the writer
    // reads that step itself.
    sqlite3_busy_timeout(db->handle(), kBusyTimeoutMs);
    return std::unique_ptr<MartPrefetcher>(new MartPrefetcher(std::move(*db), stepEvents));
}

MartPrefetcher::MartPrefetcher(store::Connection db, std::int64_t stepEvents)
    : db_(std::move(db)), stepEvents_(stepEvents) {
    thread_ = std::thread([this] { run(); });
}

MartPrefetcher::~MartPrefetcher() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void MartPrefetcher::committed() {
    {
        std::lock_guard lock(mutex_);
        wanted_ = true;
    }
    changed_.notify_all();
}

std::optional<store::PreparedRefresh> MartPrefetcher::take() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !reading_; });
    if (!ready_) return std::nullopt;
    std::optional<store::PreparedRefresh> step = std::move(ready_);
    ready_.reset();
    next_ = step->to();  // the next step starts where this one ends
    ++counts_.taken;
    lock.unlock();
    changed_.notify_all();  // free to read the next one
    return step;
}

void MartPrefetcher::restart() {
    std::lock_guard lock(mutex_);
    ++generation_;
    next_.reset();
    ready_.reset();
}

void MartPrefetcher::settleForTest() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !reading_ && !hasWork(); });
}

MartPrefetcher::Counts MartPrefetcher::counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
}

// Something was committed (or left over), and the ready step, if any, has
// room for more.
bool MartPrefetcher::hasWork() const {
    return wanted_ && (!ready_ || ready_->rows() < stepEvents_);
}

void MartPrefetcher::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] { return stopping_ || hasWork(); });
        if (stopping_) return;
        wanted_ = false;
        reading_ = true;
        const std::uint64_t generation = generation_;
        std::optional<store::PreparedRefresh> step = std::move(ready_);
        ready_.reset();
        const std::optional<store::MartWatermarks> from = next_;
        lock.unlock();

        // One snapshot: the watermarks and the rows above them agree.
        Status read = [&]() -> Status {
            auto tx = store::Transaction::begin(db_, store::Transaction::Kind::Deferred);
            if (!tx) return tx.error();
            if (step) {
                if (auto st = store::extendRefresh(db_, *step, stepEvents_); !st) return st;
            } else {
                auto prepared = store::prepareRefresh(db_, stepEvents_, from);
                if (!prepared) return prepared.error();
                step = std::move(*prepared);
            }
            return tx->commit();
        }();

        lock.lock();
        reading_ = false;
        bool logFailure = false;
        if (!read) {
            // The writer reads the step itself; nothing is lost.
            ++counts_.failed;
            logFailure = !failureLogged_;
            failureLogged_ = true;
        } else if (generation == generation_ && step->rows() > 0) {
            if (!step->caughtUp()) wanted_ = true;  // more once there is room
            ready_ = std::move(step);
            ++counts_.prepared;
            failureLogged_ = false;
        }
        lock.unlock();
        changed_.notify_all();
        if (logFailure)
            log::warning("cannot read the marts' next step ahead: " + read.error().message +
                         "; the writer reads it");
        lock.lock();
    }
}

}  // namespace etld::daemon
