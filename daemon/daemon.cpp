#include "daemon.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "etld_config.h"
#include "log.h"
#include "store/schema.h"
#include "store/store.h"
#include "util/paths.h"

namespace etld::daemon {

using protocol::ErrorCode;

namespace {

// A full rescan now and then, in case an event was missed in a way the
// kernel did not report. Stats only; reads nothing unchanged.
constexpr std::uint64_t kSafetyNetRescanMs = 15 * 60 * 1000;
// Backoff of a failing cycle (a store fault): first retry, and the cap.
constexpr std::uint64_t kRetryFirstMs = 250;
constexpr std::uint64_t kRetryMaxMs = 30 * 1000;
// How long `sync` waits by default (protocol spec).
constexpr std::int64_t kDefaultSyncTimeoutMs = 30000;

}  // namespace

Daemon::Daemon(Options options) : options_(std::move(options)) {}

Daemon::~Daemon() {
    if (loopInitialized_) {
        shutdown();
    }
}

int Daemon::run() {
    if (auto st = start(); !st) {
        log::error(st.error().message);
        shutdown();
        return 1;
    }
    log::info("etld " ETLD_VERSION " serving " + options_.storePath + " on " +
              options_.socketPath);
    uv_run(&loop_, UV_RUN_DEFAULT);
    shutdown();
    return 0;
}

Status Daemon::start() {
    if (int rc = uv_loop_init(&loop_); rc != 0)
        return Error{"loop", std::string("cannot start the event loop: ") + uv_strerror(rc)};
    loopInitialized_ = true;
    startedAt_ = clock_.now();

    // The lock comes first: nothing, not even the socket path, is touched by
    // a second daemon.
    if (!makeDirectories(parentDirectory(options_.storePath), 0700))
        return Error{"store_dir", "cannot create the store's directory for " + options_.storePath};
    auto lock = InstanceLock::acquire(lockPathFor(options_.storePath));
    if (!lock) return lock.error();
    lock_.emplace(std::move(lock).value());

    auto prices = sources::PriceTable::fromEmbedded();
    if (!prices) return Error{"pricing", "the embedded price table is broken: " + prices.error().message};
    prices_ = std::move(prices).value();
    if (!options_.pricingFile.empty()) {
        auto extra = sources::PriceTable::fromFile(options_.pricingFile);
        if (!extra)
            return Error{"pricing", "cannot read --pricing " + options_.pricingFile + ": " + extra.error().message};
        prices_.merge(*extra);
    }

    auto db = store::openWriter(options_.storePath);
    if (!db) return Error{db.error().code, "cannot open the store: " + db.error().message};
    if (auto n = store::failInterruptedJobs(*db); !n) {
        return n.error();
    } else if (*n > 0) {
        log::warning("marked " + std::to_string(*n) + " interrupted backfill job(s) failed");
    }
    state_.origin = status::Origin::Daemon;
    state_.storePath = canonicalPath(options_.storePath);
    state_.schemaVersion = store::latestSchemaVersion();
    state_.watcherEnabled = options_.watcherEnabled;
    state_.watcherRunning = options_.watcherEnabled;
    state_.lockHeldBy = getpid();
    state_.daemon = status::DaemonInfo{getpid(), ETLD_VERSION, startedAt_};
    if (auto st = store::readCounters(*db, state_); !st) return st;
    ingest_ = std::make_unique<IngestEngine>(
        resolveRoots(options_.claudeRoots, options_.codexRoots, options_.geminiRoots), prices_, clock_);
    if (auto st = ingest_->load(*db); !st) return Error{st.error().code, "cannot load checkpoints: " + st.error().message};
    engineSources_ = ingest_->sourcesState();
    state_.sources = sourcesWithWatchModes();
    writer_ = std::make_unique<Writer>(&loop_, std::move(db).value());
    recordStateSnapshot();

    for (auto* timer : {&retryTimer_, &safetyNetTimer_}) {
        uv_timer_init(&loop_, timer->get());
        timer->markInitialized();
        timer->get()->data = this;
    }

    control_ = std::make_unique<ControlServer>(&loop_, options_.socketPath);
    registerMethods();
    if (options_.testHooks) registerTestHooks();
    if (auto st = control_->listen(); !st) return st;

    for (auto* sig : {&sigterm_, &sigint_}) {
        uv_signal_init(&loop_, sig->get());
        sig->markInitialized();
        sig->get()->data = this;
    }
    uv_signal_start(sigterm_.get(), &Daemon::onSignal, SIGTERM);
    uv_signal_start(sigint_.get(), &Daemon::onSignal, SIGINT);

    if (options_.watcherEnabled) {
        startWatching();
        fullRescanWanted_ = true;  // the start-up reconciliation
        scheduleCycle();
    }
    return {};
}

void Daemon::startWatching() {
    watcher_ = std::make_unique<Watcher>(&loop_, Watcher::Callbacks{
        [this](std::vector<std::string> changed) {
            for (auto& p : changed) dirtyPaths_.insert(std::move(p));
            scheduleCycle();
        },
        [this] {
            log::warning("the kernel dropped file events; rescanning every root");
            fullRescanWanted_ = true;
            scheduleCycle();
        }});
    for (const auto& dir : ingest_->allScanDirs()) watcher_->addRoot(dir.path);
    uv_timer_start(safetyNetTimer_.get(), [](uv_timer_t* t) noexcept {
        auto* self = static_cast<Daemon*>(t->data);
        self->fullRescanWanted_ = true;
        self->scheduleCycle();
    }, kSafetyNetRescanMs, kSafetyNetRescanMs);
}

std::vector<status::SourceState> Daemon::sourcesWithWatchModes() const {
    std::vector<status::SourceState> out = engineSources_;
    if (!watcher_) {
        for (auto& s : out) s.watching = options_.watcherEnabled ? "starting" : "disabled";
        return out;
    }
    const auto roots = watcher_->roots();
    const auto dirs = ingest_->allScanDirs();
    for (auto& s : out) {
        std::string mode = "events";
        bool any = false, allWaiting = true;
        for (const auto& d : dirs) {
            if (sources::providerName(d.provider) != s.provider) continue;
            for (const auto& r : roots) {
                if (r.path != d.path) continue;
                any = true;
                if (r.mode == "stat_scan") mode = "stat_scan";
                if (r.mode != "waiting") allWaiting = false;
                if (r.lastError && !s.lastError) s.lastError = r.lastError;
            }
        }
        s.watching = !any ? "none" : allWaiting ? "waiting" : mode;
    }
    return out;
}

void Daemon::scheduleCycle() {
    if (cycleInFlight_ || stopping_ || !writer_) return;
    if (!fullRescanWanted_ && dirtyPaths_.empty() && syncWaiters_.empty()) return;
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(retryTimer_.get()))) return;  // backing off
    CycleRequest request;
    request.fullRescan = fullRescanWanted_ || !syncWaiters_.empty();
    request.paths.assign(dirtyPaths_.begin(), dirtyPaths_.end());
    dirtyPaths_.clear();
    fullRescanWanted_ = false;
    std::vector<std::uint64_t> syncIds = std::move(syncWaiters_);
    syncWaiters_.clear();
    cycleInFlight_ = true;

    store::DaemonSnapshot base;
    base.pid = getpid();
    base.version = ETLD_VERSION;
    base.startedAt = startedAt_;
    base.watcherEnabled = options_.watcherEnabled;
    auto* engine = ingest_.get();
    auto* writer = writer_.get();
    auto eventsInCycle = std::make_shared<std::int64_t>(0);
    writer_->post(
        [=, this](store::Connection& db) -> Status {
            auto inStep = [&](store::Connection& conn, const StepReport& step) -> Status {
                store::DaemonSnapshot snap = base;
                snap.lastRefresh = step.committedAt;
                snap.eventsInLastCycle = *eventsInCycle + step.eventsChanged;
                snap.sources = engine->sourcesState();
                snap.recordedAt = step.committedAt;
                return store::recordDaemonState(conn, snap);
            };
            auto afterStep = [&](const StepReport& step) {
                writer->heartbeat();
                *eventsInCycle += step.eventsChanged;
                status::StatusInput counters;
                if (!store::readCounters(db, counters)) return;
                writer->postToLoop([this, counters = std::move(counters),
                                    sources = engine->sourcesState(), at = step.committedAt,
                                    n = *eventsInCycle]() mutable {
                    onStepCommitted(std::move(counters), std::move(sources), at, n);
                });
            };
            auto cycle = engine->runCycle(db, request, inStep, afterStep);
            if (!cycle) return cycle.error();
            return {};
        },
        [this, syncIds](const Status& result) { onCycleDone(result, syncIds); });
}

void Daemon::onStepCommitted(status::StatusInput counters, std::vector<status::SourceState> sources,
                             UnixMicros committedAt, std::int64_t eventsInCycle) {
    state_.eventsTotal = counters.eventsTotal;
    state_.maxEventId = counters.maxEventId;
    state_.eventsByProvider = std::move(counters.eventsByProvider);
    state_.eventsByCostSource = std::move(counters.eventsByCostSource);
    state_.marts = counters.marts;
    state_.lastRefresh = committedAt;
    state_.eventsInLastCycle = eventsInCycle;
    engineSources_ = std::move(sources);
    state_.sources = sourcesWithWatchModes();
}

void Daemon::onCycleDone(const Status& result, const std::vector<std::uint64_t>& syncIds) {
    cycleInFlight_ = false;
    if (!result) {
        setFault(result.error());
        // What could not be written is read again: the next cycle rescans.
        fullRescanWanted_ = true;
        for (auto id : syncIds)
            if (syncs_.count(id)) syncWaiters_.push_back(id);
        retryDelayMs_ = retryDelayMs_ == 0 ? kRetryFirstMs : std::min(retryDelayMs_ * 2, kRetryMaxMs);
        uv_timer_start(retryTimer_.get(), [](uv_timer_t* t) noexcept {
            static_cast<Daemon*>(t->data)->scheduleCycle();
        }, retryDelayMs_, 0);
        return;
    }
    retryDelayMs_ = 0;
    clearFault();
    state_.sources = sourcesWithWatchModes();
    for (auto id : syncIds) {
        auto it = syncs_.find(id);
        if (it == syncs_.end()) continue;  // timed out meanwhile
        answerSync(it->second->call);
        syncs_.erase(it);
    }
    scheduleCycle();
}

void Daemon::setFault(const Error& error) {
    if (!state_.fault) {
        state_.fault = status::Fault{error.code, error.message, clock_.now()};
        log::error("store write failed, retrying: " + error.message);
    } else {
        state_.fault->code = error.code;
        state_.fault->message = error.message;
    }
}

void Daemon::clearFault() {
    if (state_.fault) log::info("store writes recovered");
    state_.fault.reset();
}

void Daemon::answerSync(const Call& call) {
    call.reply(status::assembleStatus(state_, clock_.now()));
}

void Daemon::failSync(const Call& call) {
    rapidjson::Document data(rapidjson::kObjectType);
    auto& a = data.GetAllocator();
    if (state_.fault) {
        rapidjson::Value fault(rapidjson::kObjectType);
        fault.AddMember("code", rapidjson::Value(state_.fault->code.c_str(), a), a);
        fault.AddMember("message", rapidjson::Value(state_.fault->message.c_str(), a), a);
        fault.AddMember("since", rapidjson::Value(formatStatusTime(state_.fault->since).c_str(), a), a);
        data.AddMember("fault", fault, a);
    } else {
        data.AddMember("fault", rapidjson::Value(), a);
    }
    call.fail(ErrorCode::Unavailable, "sync did not complete within its timeout", &data);
}

// The one shutdown order: stop accepting and close clients, finish and commit
// what the writer has, stop signals and timers, then turn the loop until every
// handle's close callback ran and the loop closes cleanly.
void Daemon::shutdown() {
    if (!loopInitialized_) return;
    stopping_ = true;
    if (control_) control_->close();
    syncWaiters_.clear();
    syncs_.clear();
    if (watcher_) watcher_->close();
    retryTimer_.close();
    safetyNetTimer_.close();
    if (writer_) {
        if (lock_) recordStateSnapshot();
        writer_->stop();
    }
    sigterm_.close();
    sigint_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);  // runs the close callbacks
    control_.reset();
    writer_.reset();
    watcher_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop_) != 0) log::error("event loop closed with handles still open");
    loopInitialized_ = false;
    lock_.reset();
}

void Daemon::onSignal(uv_signal_t* handle, int signum) noexcept {
    auto* self = static_cast<Daemon*>(handle->data);
    log::info(signum == SIGTERM ? "SIGTERM: shutting down" : "SIGINT: shutting down");
    self->stopping_ = true;
    uv_stop(&self->loop_);
}

status::StatusInput Daemon::statusInput() const { return state_; }

void Daemon::recordStateSnapshot() {
    store::DaemonSnapshot snap;
    snap.pid = getpid();
    snap.version = ETLD_VERSION;
    snap.startedAt = startedAt_;
    snap.watcherEnabled = state_.watcherEnabled;
    snap.lastRefresh = state_.lastRefresh;
    snap.eventsInLastCycle = state_.eventsInLastCycle;
    snap.sources = state_.sources;
    snap.fault = state_.fault;
    snap.recordedAt = clock_.now();
    writer_->post([snap](store::Connection& db) -> Status {
        auto tx = store::Transaction::begin(db);
        if (!tx) return tx.error();
        if (auto st = store::recordDaemonState(db, snap); !st) return st;
        return tx->commit();
    }, [](const Status& st) {
        if (!st) log::warning("cannot record the daemon's state: " + st.error().message + ", skipping");
    });
}

void Daemon::registerMethods() {
    control_->addMethod({"hello", [this](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        auto& a = r.GetAllocator();
        r.AddMember("protocol", protocol::kProtocolVersion, a);
        r.AddMember("version", rapidjson::Value(ETLD_VERSION, a), a);
        r.AddMember("pid", static_cast<std::int64_t>(getpid()), a);
        r.AddMember("store", rapidjson::Value(state_.storePath.c_str(), a), a);
        rapidjson::Value methods(rapidjson::kArrayType);
        for (const auto& m : control_->advertisedMethods()) methods.PushBack(rapidjson::Value(m.c_str(), a), a);
        r.AddMember("methods", methods, a);
        call.reply(r);
    }});
    control_->addMethod({"ping", [](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("pong", true, r.GetAllocator());
        call.reply(r);
    }});
    control_->addMethod({"status", [this](const Call& call) {
        call.reply(status::assembleStatus(state_, clock_.now()));
    }});
    control_->addMethod({"sync", [this](const Call& call) {
        std::int64_t timeoutMs = kDefaultSyncTimeoutMs;
        if (auto it = call.params().FindMember("timeout_ms"); it != call.params().MemberEnd()) {
            if (!it->value.IsInt64() || it->value.GetInt64() <= 0) {
                call.fail(ErrorCode::InvalidParams, "\"timeout_ms\" must be a positive integer");
                return;
            }
            timeoutMs = it->value.GetInt64();
        }
        auto pending = std::make_unique<PendingSync>(PendingSync{this, nextSyncId_++, call, {}});
        PendingSync* p = pending.get();
        uv_timer_init(&loop_, p->timeout.get());
        p->timeout.markInitialized();
        p->timeout.get()->data = p;
        uv_timer_start(p->timeout.get(), [](uv_timer_t* t) noexcept {
            auto* ps = static_cast<PendingSync*>(t->data);
            ps->self->failSync(ps->call);
            ps->self->syncs_.erase(ps->id);  // closes this timer
        }, static_cast<std::uint64_t>(timeoutMs), 0);
        syncWaiters_.push_back(p->id);
        syncs_.emplace(p->id, std::move(pending));
        scheduleCycle();
    }});
    control_->addMethod({"refresh", [this](const Call& call) {
        fullRescanWanted_ = true;
        scheduleCycle();
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("scheduled", true, r.GetAllocator());
        call.reply(r);
    }});
}

// Test hooks: methods that exist only when ETLD_TEST_HOOKS was set at
// start-up, never listed by hello. They move the injected clock, wedge the
// loop or the writer, and shorten timeouts, so tests never sleep.
void Daemon::registerTestHooks() {
    log::warning("test hooks are enabled (ETLD_TEST_HOOKS); never run production like this");
    auto intParam = [](const Call& call, const char* name, std::int64_t& out) {
        auto it = call.params().FindMember(name);
        if (it == call.params().MemberEnd() || !it->value.IsInt64()) {
            call.fail(ErrorCode::InvalidParams, std::string("\"") + name + "\" must be an integer");
            return false;
        }
        out = it->value.GetInt64();
        return true;
    };
    auto ok = [](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("ok", true, r.GetAllocator());
        call.reply(r);
    };
    control_->addMethod({"test.advance_clock", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        clock_.advance(ms * 1000);
        ok(call);
    }, false});
    control_->addMethod({"test.wedge_loop", [=](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the point: block the loop
        ok(call);
    }, false});
    control_->addMethod({"test.wedge_writer", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        writer_->post([ms](store::Connection&) -> Status {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return {};
        });
        ok(call);
    }, false});
    control_->addMethod({"test.set_idle_timeout", [=, this](const Call& call) {
        std::int64_t ms;
        if (!intParam(call, "ms", ms)) return;
        control_->setIdleTimeoutMs(static_cast<std::uint64_t>(ms));
        ok(call);
    }, false});
    control_->addMethod({"test.clients", [this](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("clients", static_cast<std::uint64_t>(control_->clientCount()), r.GetAllocator());
        call.reply(r);
    }, false});
}

}  // namespace etld::daemon
