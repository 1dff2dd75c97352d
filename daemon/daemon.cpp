#include "daemon.h"

#include <sys/random.h>
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
// Events a mart absorbs per refresh step: each step is one transaction, so
// status keeps answering and last_refresh_ts keeps moving during a backlog.
constexpr std::int64_t kMartStepEvents = 5000;
// The least backlog a refresh step takes on while the writer waits for a
// read: smaller batches would cost the marts more per event.
constexpr std::int64_t kMartIdleMinEvents = kMartStepEvents / 2;
// Ingest steps per writer task: between tasks, live appends, syncs and job
// steps get their turn on the writer.
constexpr std::int64_t kStepsPerCycleTask = 8;
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
        if (systemd_) systemd_->failed(st.error().message);
        shutdown();
        return 1;
    }
    int exitCode = 0;
    if (options_.backfill) {
        // The same job as the `backfill` method, in the foreground: the loop
        // stops when it ends.
        onJobFinished_ = [this, &exitCode](const status::Job& job) {
            exitCode = job.status == "complete" ? 0 : 1;
            uv_stop(&loop_);
        };
        if (auto job = startBackfill(options_.backfillForce); !job) {
            log::error("cannot start the backfill: " + job.error().message);
            shutdown();
            return 1;
        }
    } else {
        log::info("etld " ETLD_VERSION " serving " + options_.storePath + " on " +
                  options_.socketPath);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    shutdown();
    return exitCode;
}

Status Daemon::start() {
    if (int rc = uv_loop_init(&loop_); rc != 0)
        return Error{"loop", std::string("cannot start the event loop: ") + uv_strerror(rc)};
    loopInitialized_ = true;
    startedAt_ = clock_.now();
    startServiceManager();  // before the store: migrations extend the start timeout

    // The lock comes first: nothing, not even the socket path, is touched by
    // a second daemon.
    if (!makeDirectories(parentDirectory(options_.storePath), 0700))
        return Error{"store_dir", "cannot create the store's directory for " + options_.storePath};
    auto lock = InstanceLock::acquire(lockPathFor(options_.storePath));
    if (!lock) return lock.error();
    lock_.emplace(std::move(lock).value());

    auto prices = sources::PriceTable::load(options_.pricingFile);
    if (!prices) return prices.error();
    prices_ = std::move(prices).value();

    auto db = store::openWriter(options_.storePath, storeOpenOptions());
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
    if (auto recorded = store::readStatusInput(*db, options_.storePath)) state_.lastJob = recorded->lastJob;
    ingest_ = std::make_unique<IngestEngine>(
        resolveRoots(options_.claudeRoots, options_.codexRoots, options_.geminiRoots), prices_, clock_);
    watchDirs_ = ingest_->allScanDirs();  // before the writer thread owns the engine
    if (auto st = ingest_->load(*db); !st) return Error{st.error().code, "cannot load checkpoints: " + st.error().message};
    engineSources_ = ingest_->sourcesState();
    state_.sources = sourcesWithWatchModes();
    if (auto prefetcher = MartPrefetcher::start(options_.storePath, kMartStepEvents))
        martPrefetcher_ = std::move(*prefetcher);
    else
        log::warning("the marts' steps are read on the writer thread: " + prefetcher.error().message);
    writer_ = std::make_unique<Writer>(&loop_, std::move(db).value());
    recordStateSnapshot();

    for (auto* timer : {&retryTimer_, &safetyNetTimer_}) {
        uv_timer_init(&loop_, timer->get());
        timer->markInitialized();
        timer->get()->data = this;
    }

    if (!options_.backfill) {  // a foreground backfill serves no socket
        subscriptions_ = std::make_unique<Subscriptions>(&loop_, clock_, [this] { return state_; });
        control_ = std::make_unique<ControlServer>(&loop_, options_.socketPath);
        registerMethods();
        if (options_.testHooks) registerTestHooks();
        if (auto st = control_->listen(); !st) return st;
    }

    for (auto* sig : {&sigterm_, &sigint_, &sighup_}) {
        uv_signal_init(&loop_, sig->get());
        sig->markInitialized();
        sig->get()->data = this;
    }
    uv_signal_start(sigterm_.get(), &Daemon::onSignal, SIGTERM);
    uv_signal_start(sigint_.get(), &Daemon::onSignal, SIGINT);
    uv_signal_start(sighup_.get(), &Daemon::onReloadSignal, SIGHUP);

    if (options_.watcherEnabled && !options_.backfill) {
        startWatching();
        fullRescanWanted_ = true;  // the start-up reconciliation
        scheduleCycle();
    }
    systemd_->ready();  // store open, socket listening, reconciliation scheduled
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
    for (const auto& dir : watchDirs_) watcher_->addRoot(dir.path);
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
    const auto& dirs = watchDirs_;
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
    // A job's first cycle rescans everything (and, forced, re-reads every file).
    const bool jobStarting = job_ && job_->phase == JobPhase::Scan;
    if (!fullRescanWanted_ && dirtyPaths_.empty() && syncWaiters_.empty() && !engineBusy_ &&
        !jobStarting)
        return;
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(retryTimer_.get()))) return;  // backing off
    CycleRequest request;
    request.fullRescan = fullRescanWanted_ || !syncWaiters_.empty() || jobStarting;
    request.rereadAll = jobStarting && job_->force;
    // A full rescan stats every file after this point, so it covers every
    // path reported so far, delivered or not: at start-up the watcher reports
    // every directory once its watch exists, and stat'ing them too walked the
    // whole tree a second time.
    if (request.fullRescan) {
        if (watcher_) watcher_->dropReported();
    } else {
        request.paths.assign(dirtyPaths_.begin(), dirtyPaths_.end());
    }
    dirtyPaths_.clear();
    fullRescanWanted_ = false;
    // These syncs saw their rescan start: they are answered once the engine
    // has read everything and every mart absorbed it.
    for (auto id : syncWaiters_) drainingSyncs_.push_back(id);
    syncWaiters_.clear();
    if (jobStarting) job_->phase = JobPhase::Reread;
    cycleInFlight_ = true;

    const store::DaemonSnapshot base = snapshotIdentity();
    auto* engine = ingest_.get();
    auto* writer = writer_.get();
    auto report = std::make_shared<CycleReport>();
    writer_->post(
        [=, this](store::Connection& db) -> Status {
            std::int64_t eventsInCycle = 0;
            auto inStep = [&](store::Connection& conn, const StepReport& step) -> Status {
                store::DaemonSnapshot snap = base;
                snap.lastRefresh = step.committedAt;
                snap.eventsInLastCycle = eventsInCycle + step.eventsChanged;
                snap.sources = engine->sourcesState();
                snap.recordedAt = step.committedAt;
                return store::recordDaemonState(conn, snap);
            };
            std::int64_t unabsorbed = 0;  // about how many events the marts have yet to absorb
            auto afterStep = [&](const StepReport& step) {
                writer->heartbeat();
                if (step.eventsChanged > 0 && martPrefetcher_) martPrefetcher_->committed();
                eventsInCycle += step.eventsChanged;
                unabsorbed += step.eventsChanged;
                reportCounters(db, step.committedAt, eventsInCycle);
            };
            // While the engine waits for a step to be read, the marts absorb
            // what is committed: a refresh step the cycle's end would run
            // anyway, taken from time the writer would spend idle (0.1-0.5 s
            // of a 1 GB first ingest).
            auto whileReading = [&](store::Connection& conn) -> Result<bool> {
                if (holdRefresh_.load() || unabsorbed < kMartIdleMinEvents) return false;
                auto stats = refreshMartsStep(conn);
                if (!stats) return stats.error();
                unabsorbed = stats->caughtUp ? 0 : std::max<std::int64_t>(0, unabsorbed - stats->eventsAbsorbed);
                return !stats->caughtUp;
            };
            auto cycle = engine->runCycle(db, request, inStep, afterStep, kStepsPerCycleTask, whileReading);
            if (!cycle) return cycle.error();
            *report = *cycle;
            report->sources = engine->sourcesState();
            if (holdRefresh_.load()) return {};  // test hook: marts held back
            return refreshMartsInSteps(db);
        },
        [this, report](const Status& result) { onCycleDone(result, *report); });
}

// Writer thread: bounded refresh steps until every mart absorbed everything,
// each reported to the loop like an ingest step.
Status Daemon::refreshMartsInSteps(store::Connection& db, std::int64_t maxSteps) {
    for (std::int64_t step = 0; maxSteps < 0 || step < maxSteps; ++step) {
        auto stats = refreshMartsStep(db);
        if (!stats) return stats.error();
        if (stats->caughtUp) break;
    }
    return {};
}

// Writer thread: one bounded refresh step, reported to the loop. The step
// read ahead, when there is one and the marts have not moved since; else
// one of its own.
Result<store::RefreshStats> Daemon::refreshMartsStep(store::Connection& db) {
    const UnixMicros now = clock_.now();
    std::optional<store::PreparedRefresh> ahead;
    if (martPrefetcher_) ahead = martPrefetcher_->take();
    bool tookAhead = false;
    auto step = [&]() -> Result<store::RefreshStats> {
        auto tx = store::Transaction::begin(db);
        if (!tx) return tx.error();
        std::optional<store::RefreshStats> stats;
        if (ahead) {
            auto applied = store::applyPreparedRefreshInTransaction(db, *ahead, now);
            if (!applied) return applied.error();
            stats = *applied;
            tookAhead = stats.has_value();
        }
        if (!stats) {
            auto own = store::refreshMartsInTransaction(db, now, kMartStepEvents);
            if (!own) return own.error();
            stats = *own;
        }
        if (auto st = tx->commit(); !st) return st.error();
        return *stats;
    };
    auto stats = step();
    if (martPrefetcher_) {
        // Committed: what it reads next starts from the store's watermarks,
        // unless they are where the step it handed over left them.
        if (!stats || !tookAhead) martPrefetcher_->restart();
        if (stats && !stats->caughtUp) martPrefetcher_->committed();
    }
    if (!stats) return stats.error();
    writer_->heartbeat();
    reportCounters(db, now);
    return stats;
}

// Writer thread: sends the store's counters and the engine's sources to the
// loop after a commit.
void Daemon::reportCounters(store::Connection& db, UnixMicros committedAt,
                            std::optional<std::int64_t> eventsInCycle) {
    status::StatusInput counters;
    if (auto st = store::readCounters(db, counters); !st) {
        log::warning("cannot read the store's counters: " + st.error().message + ", skipping");
        return;
    }
    writer_->postToLoop([this, counters = std::move(counters), sources = ingest_->sourcesState(),
                         committedAt, eventsInCycle]() mutable {
        onStepCommitted(std::move(counters), std::move(sources), committedAt,
                        eventsInCycle.value_or(state_.eventsInLastCycle.value_or(0)));
    });
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
    systemd_->refreshStatus();
    if (subscriptions_) subscriptions_->publish();
}

void Daemon::onCycleDone(const Status& result, const CycleReport& report) {
    cycleInFlight_ = false;
    if (!result) {
        setFault(result.error());
        // What could not be written is read again: the next cycle rescans.
        fullRescanWanted_ = true;
        retryDelayMs_ = retryDelayMs_ == 0 ? kRetryFirstMs : std::min(retryDelayMs_ * 2, kRetryMaxMs);
        uv_timer_start(retryTimer_.get(), [](uv_timer_t* t) noexcept {
            static_cast<Daemon*>(t->data)->scheduleCycle();
        }, retryDelayMs_, 0);
        return;
    }
    retryDelayMs_ = 0;
    clearFault();
    engineBusy_ = report.morePending;
    engineSources_ = report.sources;
    state_.sources = sourcesWithWatchModes();
    if (job_) onJobCycle(report);
    if (!engineBusy_) {
        for (auto id : drainingSyncs_) {
            auto it = syncs_.find(id);
            if (it == syncs_.end()) continue;  // timed out meanwhile
            answerSync(it->second->call);
            syncs_.erase(it);
        }
        drainingSyncs_.clear();
    }
    scheduleCycle();
}

// 32 lowercase hex characters from the kernel's random source.
static std::string newJobId() {
    unsigned char bytes[16] = {};
    std::size_t got = 0;
    while (got < sizeof bytes) {
        const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (unsigned char b : bytes) {
        id += kHex[b >> 4];
        id += kHex[b & 15];
    }
    return id;
}

Result<status::Job> Daemon::startBackfill(bool force) {
    if (job_) return Error{"busy", job_->record.jobId};
    ActiveJob job;
    job.force = force;
    job.record.jobId = newJobId();
    job.record.startedAt = clock_.now();
    job.record.force = force;
    job.record.status = "running";
    job.record.progress.updatedAt = job.record.startedAt;
    job_ = std::move(job);
    state_.currentJob = job_->record;
    if (subscriptions_) subscriptions_->publish();
    log::info(std::string("backfill ") + job_->record.jobId + (force ? " (forced)" : "") + " started");
    recordJob();
    // Without --force: a full rescan and catch-up. With it: every file again
    // from byte 0 (scheduleCycle sees the Scan phase), then re-pricing, then a rebuild.
    scheduleCycle();
    return job_->record;
}

void Daemon::recordJob() {
    if (!job_ && !state_.lastJob) return;
    status::Job record = job_ ? job_->record : *state_.lastJob;
    writer_->post([record](store::Connection& db) -> Status {
        auto tx = store::Transaction::begin(db);
        if (!tx) return tx.error();
        if (auto st = store::recordJob(db, record); !st) return st;
        return tx->commit();
    }, [](const Status& st) {
        if (!st) log::warning("cannot record the backfill job: " + st.error().message + ", skipping");
    });
}

void Daemon::onJobCycle(const CycleReport& report) {
    ActiveJob& job = *job_;
    if (job.phase == JobPhase::Scan) return;  // a cycle that began before the job
    if (failNextJob_) {  // test hook
        failNextJob_ = false;
        finishJob("injected failure (test.fail_backfill)");
        return;
    }
    auto& progress = job.record.progress;
    if (job.bytesBase < 0) {
        // The job's first cycle: what it had to read is what it found.
        job.bytesBase = report.bytesReadBySteps - std::min(report.bytesReadBySteps, report.bytesToRead);
        progress.bytesTotal = report.bytesToRead;
    }
    progress.bytesDone = std::min(progress.bytesTotal, report.bytesReadBySteps - job.bytesBase);
    progress.eventsDone += report.eventsChanged;
    const UnixMicros now = clock_.now();
    const double seconds = static_cast<double>(now - job.record.startedAt) / kMicrosPerSecond;
    progress.bytesPerSecond = seconds > 0 ? static_cast<double>(progress.bytesDone) / seconds : 0;
    progress.etaSeconds = progress.bytesPerSecond > 0
        ? std::optional<std::int64_t>(static_cast<std::int64_t>(
              static_cast<double>(progress.bytesTotal - progress.bytesDone) / progress.bytesPerSecond))
        : std::nullopt;
    progress.updatedAt = now;
    state_.currentJob = job.record;
    if (report.morePending || job.phase == JobPhase::Reprice || job.phase == JobPhase::Rebuild) {
        recordJob();
        return;
    }
    if (!job.force) {
        finishJob(std::nullopt);
        return;
    }
    if (job.phase == JobPhase::Reread) {
        job.phase = JobPhase::Reprice;
        job.repriceEndId = state_.maxEventId;
        recordJob();
        runRepriceStep();
    }
}

void Daemon::runRepriceStep() {
    constexpr std::int64_t kRepriceBatch = 2000;  // events per transaction
    const std::int64_t after = job_->repriceAfterId, end = job_->repriceEndId;
    auto out = std::make_shared<RepriceReport>();
    auto* engine = ingest_.get();
    writer_->post([=, this](store::Connection& db) -> Status {
        auto r = engine->repriceStep(db, after, end, kRepriceBatch);
        if (!r) return r.error();
        *out = *r;
        writer_->heartbeat();
        reportCounters(db, clock_.now());
        return {};
    }, [this, out](const Status& st) {
        if (!job_) return;
        if (!st) {
            finishJob("re-pricing failed: " + st.error().message);
            return;
        }
        job_->repriceAfterId = out->lastId;
        job_->record.progress.eventsDone += out->revised;
        job_->record.progress.updatedAt = clock_.now();
        state_.currentJob = job_->record;
        if (out->done) {
            runRebuild();
        } else {
            recordJob();
            runRepriceStep();
        }
    });
}

void Daemon::runRebuild() {
    job_->phase = JobPhase::Rebuild;
    recordJob();
    writer_->post([this](store::Connection& db) -> Status {
        const UnixMicros now = clock_.now();
        if (auto st = store::rebuildMarts(db, now); !st) return st;
        reportCounters(db, now);
        return {};
    }, [this](const Status& st) {
        if (!job_) return;
        finishJob(st ? std::nullopt : std::optional<std::string>("rebuilding the marts failed: " + st.error().message));
    });
}

void Daemon::finishJob(const std::optional<std::string>& error) {
    status::Job record = job_->record;
    record.status = error ? "failed" : "complete";
    record.error = error;
    record.completedAt = clock_.now();
    record.progress.updatedAt = *record.completedAt;
    job_.reset();
    state_.currentJob.reset();
    state_.lastJob = record;
    if (subscriptions_) subscriptions_->publish();
    if (error) log::error("backfill " + record.jobId + " failed: " + *error);
    else log::info("backfill " + record.jobId + " complete: " +
                   std::to_string(record.progress.bytesDone) + " bytes, " +
                   std::to_string(record.progress.eventsDone) + " events");
    recordJob();
    if (onJobFinished_) onJobFinished_(record);
}

void Daemon::setFault(const Error& error) {
    if (!state_.fault) {
        state_.fault = status::Fault{error.code, error.message, clock_.now()};
        log::error("store write failed, retrying: " + error.message);
    } else {
        state_.fault->code = error.code;
        state_.fault->message = error.message;
    }
    systemd_->refreshStatus();
    if (subscriptions_) subscriptions_->publish();
}

void Daemon::clearFault() {
    if (state_.fault) log::info("store writes recovered");
    state_.fault.reset();
    systemd_->refreshStatus();
    if (subscriptions_) subscriptions_->publish();
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

// The one shutdown order: tell systemd STOPPING=1, stop accepting and close
// clients, finish and commit what the writer has, stop signals and timers,
// then turn the loop until every handle's close callback ran and the loop
// closes cleanly.
void Daemon::shutdown() {
    if (!loopInitialized_) return;
    if (systemd_) systemd_->stopping();  // STOPPING=1; its timers close
    stopping_ = true;
    if (subscriptions_) subscriptions_->close();
    if (control_) control_->close();
    syncWaiters_.clear();
    drainingSyncs_.clear();
    syncs_.clear();
    if (watcher_) watcher_->close();
    retryTimer_.close();
    safetyNetTimer_.close();
    if (writer_) {
        if (lock_) recordStateSnapshot();
        writer_->stop();
    }
    // Its user, the writer thread, is gone; its connection must close before
    // the writer's, whose close (the last) checkpoints and truncates the WAL.
    martPrefetcher_.reset();
    sigterm_.close();
    sigint_.close();
    sighup_.close();
    uv_run(&loop_, UV_RUN_DEFAULT);  // runs the close callbacks
    control_.reset();
    writer_.reset();
    watcher_.reset();
    subscriptions_.reset();
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

// The part of the recorded snapshot that never changes while we run.
store::DaemonSnapshot Daemon::snapshotIdentity() const {
    store::DaemonSnapshot snap;
    snap.pid = getpid();
    snap.version = ETLD_VERSION;
    snap.startedAt = startedAt_;
    snap.watcherEnabled = options_.watcherEnabled;
    return snap;
}

void Daemon::recordStateSnapshot() {
    store::DaemonSnapshot snap = snapshotIdentity();
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
    control_->addMethod({"backfill", [this](const Call& call) {
        bool force = false;
        if (auto it = call.params().FindMember("force"); it != call.params().MemberEnd()) {
            if (!it->value.IsBool()) {
                call.fail(ErrorCode::InvalidParams, "\"force\" must be a JSON boolean");
                return;
            }
            force = it->value.GetBool();
        }
        auto job = startBackfill(force);
        if (!job) {
            rapidjson::Document data(rapidjson::kObjectType);
            data.AddMember("job_id", rapidjson::Value(job.error().message.c_str(), data.GetAllocator()),
                           data.GetAllocator());
            call.fail(ErrorCode::Busy, "a backfill job is already running", &data);
            return;
        }
        rapidjson::Document r(rapidjson::kObjectType);
        auto& a = r.GetAllocator();
        r.AddMember("job_id", rapidjson::Value(job->jobId.c_str(), a), a);
        r.AddMember("started_at", rapidjson::Value(formatStatusTime(job->startedAt).c_str(), a), a);
        call.reply(r);
    }});
    control_->addMethod({"subscribe", [this](const Call& call) { subscriptions_->add(call); }});
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
        if (subscriptions_) subscriptions_->publish();
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
    control_->addMethod({"test.hold_refresh", [=, this](const Call& call) {
        auto it = call.params().FindMember("hold");
        if (it == call.params().MemberEnd() || !it->value.IsBool()) {
            call.fail(ErrorCode::InvalidParams, "\"hold\" must be a boolean");
            return;
        }
        holdRefresh_ = it->value.GetBool();
        ok(call);
    }, false});
    control_->addMethod({"test.refresh_step", [=, this](const Call& call) {
        std::int64_t maxEvents;
        if (!intParam(call, "max_events", maxEvents)) return;
        if (maxEvents < 1) {
            call.fail(ErrorCode::InvalidParams, "\"max_events\" must be at least 1");
            return;
        }
        writer_->post([this, maxEvents](store::Connection& db) -> Status {
            const UnixMicros now = clock_.now();
            auto stats = store::refreshMarts(db, now, maxEvents);
            if (!stats) return stats.error();
            reportCounters(db, now);
            return {};
        }, [this, call](const Status& st) {
            if (!st) {
                call.fail(ErrorCode::Internal, st.error().message);
                return;
            }
            call.reply(status::assembleStatus(state_, clock_.now()));
        });
    }, false});
    control_->addMethod({"test.fail_backfill", [=, this](const Call& call) {
        failNextJob_ = true;
        ok(call);
    }, false});
    control_->addMethod({"test.clients", [this](const Call& call) {
        rapidjson::Document r(rapidjson::kObjectType);
        r.AddMember("clients", static_cast<std::uint64_t>(control_->clientCount()), r.GetAllocator());
        call.reply(r);
    }, false});
}

}  // namespace etld::daemon
