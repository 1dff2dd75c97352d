#include "writer.h"

#include "log.h"

namespace etld::daemon {
namespace {

std::int64_t monotonicMicros() { return static_cast<std::int64_t>(uv_hrtime() / 1000); }

}  // namespace

Writer::Writer(uv_loop_t* loop, store::Connection db) : db_(std::move(db)) {
    auto limits = WalCheckpointer::defaultLimits(db_);
    auto checkpointer = limits ? WalCheckpointer::start(db_, *limits)
                               : Result<std::unique_ptr<WalCheckpointer>>(limits.error());
    if (checkpointer) checkpointer_ = std::move(*checkpointer);
    else log::warning("WAL checkpoints stay in the writer's commits: " + checkpointer.error().message);
    uv_async_init(loop, async_.get(), &Writer::onAsync);
    async_.markInitialized();
    async_.get()->data = this;
    thread_ = std::thread([this] { run(); });
}

Writer::~Writer() { stop(); }

void Writer::post(Task task, Done done) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(Item{std::move(task), std::move(done), {}});
    }
    wake_.notify_one();
}

void Writer::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    checkpointer_.reset();
    drainCompletions();
    async_.close();
}

void Writer::postToLoop(std::function<void()> fn) {
    {
        std::lock_guard lock(mutex_);
        done_.push_back(Item{{}, [fn = std::move(fn)](const Status&) { fn(); }, {}});
    }
    uv_async_send(async_.get());
}

void Writer::heartbeat() {
    if (busySinceMicros_.load() != 0) busySinceMicros_ = monotonicMicros();
}

bool Writer::healthy(std::int64_t maxTaskMicros) const {
    const std::int64_t since = busySinceMicros_.load();
    return since == 0 || monotonicMicros() - since < maxTaskMicros;
}

void Writer::run() {
    for (;;) {
        Item item;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything queued has run
            item = std::move(queue_.front());
            queue_.pop_front();
        }
        busySinceMicros_ = monotonicMicros();
        try {
            item.result = item.task(db_);
        } catch (const std::exception& e) {
            item.result = Error{"internal", std::string("writer task failed: ") + e.what()};
        }
        busySinceMicros_ = 0;
        ++completed_;
        {
            std::lock_guard lock(mutex_);
            done_.push_back(std::move(item));
        }
        uv_async_send(async_.get());
    }
}

void Writer::drainCompletions() {
    std::deque<Item> ready;
    {
        std::lock_guard lock(mutex_);
        ready.swap(done_);
    }
    for (auto& item : ready) {
        if (!item.done) continue;
        try {
            item.done(item.result);
        } catch (const std::exception& e) {
            log::error(std::string("writer completion failed: ") + e.what());
        }
    }
}

void Writer::onAsync(uv_async_t* async) noexcept {
    static_cast<Writer*>(async->data)->drainCompletions();
}

}  // namespace etld::daemon
