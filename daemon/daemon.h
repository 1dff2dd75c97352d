// The daemon: the one object that owns the loop and every event source.
//
// main() only parses options and calls run(). run() starts everything in a
// fixed order (lock, store, writer, socket, signals, timers), turns the loop
// until SIGTERM/SIGINT, and shuts down in the reverse fixed order (see
// shutdown()). All state here is touched by the loop thread only; the writer
// thread reaches it through completions that run on the loop.
#pragma once

#include <uv.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <vector>
#include <optional>

#include "control.h"
#include "ingest.h"
#include "mart_prefetcher.h"
#include "notify.h"
#include "options.h"
#include "sources/pricing.h"
#include "subscriptions.h"
#include "status/status.h"
#include "store/marts.h"
#include "store/store.h"
#include "util/instance_lock.h"
#include "util/time.h"
#include "uv_handle.h"
#include "watch.h"
#include "writer.h"

namespace etld::daemon {

class Daemon {
public:
    explicit Daemon(Options options);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Runs until a termination signal; returns the process exit code.
    int run();

    // The live status input (loop thread).
    status::StatusInput statusInput() const;
    const Clock& clock() const { return clock_; }

private:
    Status start();
    void shutdown();
    void registerMethods();
    void registerTestHooks();
    void recordStateSnapshot();
    store::DaemonSnapshot snapshotIdentity() const;

    static void onSignal(uv_signal_t* handle, int signum) noexcept;

    // systemd (service.cpp): the notify link, migrations extending the start
    // timeout, and the SIGHUP reload of the price table as a writer task.
    void startServiceManager();
    store::WriterOptions storeOpenOptions();
    void reloadPricing();
    static void onReloadSignal(uv_signal_t* handle, int signum) noexcept;

    // Ingest cycles (loop thread). At most one cycle is in flight on the
    // writer; what arrives meanwhile waits for the next one.
    // A `sync` waiting for a cycle that starts after it arrived; owned by
    // syncs_, its timer fails it with `unavailable` at its timeout.
    struct PendingSync {
        Daemon* self;
        std::uint64_t id;
        Call call;
        UvHandle<uv_timer_t> timeout;
    };
    void scheduleCycle();
    void onCycleDone(const Status& result, const CycleReport& report);

    // Backfill jobs (loop thread): phases run as writer tasks between ingest
    // cycles, so live ingest goes on; progress is recorded after each.
    enum class JobPhase { Scan, Reread, Reprice, Rebuild };
    struct ActiveJob {
        status::Job record;
        bool force = false;
        JobPhase phase = JobPhase::Scan;
        std::int64_t bytesBase = -1;  // engine bytes read when the job's first cycle began
        std::int64_t repriceAfterId = 0;
        std::int64_t repriceEndId = 0;
    };
    Result<status::Job> startBackfill(bool force);
    void onJobCycle(const CycleReport& report);
    void runRepriceStep();
    void runRebuild();
    void finishJob(const std::optional<std::string>& error);
    void recordJob();
    void onStepCommitted(status::StatusInput counters, std::vector<status::SourceState> sources,
                         UnixMicros committedAt, std::int64_t eventsInCycle);
    Status refreshMartsInSteps(store::Connection& db, std::int64_t maxSteps = -1);
    Result<store::RefreshStats> refreshMartsStep(store::Connection& db);
    void reportCounters(store::Connection& db, UnixMicros committedAt,
                        std::optional<std::int64_t> eventsInCycle = std::nullopt);
    void answerSync(const Call& call);
    void failSync(const Call& call);
    void startWatching();
    void setFault(const Error& error);
    void clearFault();
    std::vector<status::SourceState> sourcesWithWatchModes() const;

    Options options_;
    OffsetClock clock_;  // tests move it through a hook; production never does
    uv_loop_t loop_{};
    bool loopInitialized_ = false;
    std::optional<InstanceLock> lock_;
    std::unique_ptr<Writer> writer_;
    std::unique_ptr<ControlServer> control_;
    UvHandle<uv_signal_t> sigterm_;
    UvHandle<uv_signal_t> sigint_;
    UvHandle<uv_signal_t> sighup_;  // reload the price table
    std::unique_ptr<ServiceManager> systemd_;  // a no-op without NOTIFY_SOCKET
    bool stopping_ = false;

    // Read by the ingest engine on the writer thread; after start() only a
    // writer task replaces it (the SIGHUP reload, service.cpp).
    sources::PriceTable prices_;
    std::unique_ptr<IngestEngine> ingest_;  // used on the writer thread only
    std::unique_ptr<MartPrefetcher> martPrefetcher_;  // used on the writer thread only; may be null
    std::vector<ScanDir> watchDirs_;        // the loop's copy: what is watched, for which provider
    std::unique_ptr<Watcher> watcher_;
    std::set<std::string> dirtyPaths_;
    bool fullRescanWanted_ = false;
    std::atomic<bool> holdRefresh_{false};  // test hook; read on the writer thread
    bool cycleInFlight_ = false;
    std::map<std::uint64_t, std::unique_ptr<PendingSync>> syncs_;
    std::vector<std::uint64_t> syncWaiters_;    // ids waiting for the next cycle to start
    std::vector<std::uint64_t> drainingSyncs_;  // ids whose rescan ran; answered when drained
    bool engineBusy_ = false;                   // the engine has bytes left to read
    std::optional<ActiveJob> job_;
    std::unique_ptr<Subscriptions> subscriptions_;
    bool failNextJob_ = false;  // test hook: the running job's next cycle fails it
    std::function<void(const status::Job&)> onJobFinished_;  // etld --backfill
    std::uint64_t nextSyncId_ = 1;
    UvHandle<uv_timer_t> retryTimer_;      // a failed cycle is retried with backoff
    UvHandle<uv_timer_t> safetyNetTimer_;  // a rare full rescan, in case events were missed
    std::uint64_t retryDelayMs_ = 0;
    std::vector<status::SourceState> engineSources_;

    // Live state served by `status` (loop thread).
    status::StatusInput state_;
    UnixMicros startedAt_ = 0;
};

}  // namespace etld::daemon
