// The daemon: the one object that owns the loop and every event source.
//
// main() only parses options and calls run(). run() starts everything in a
// fixed order (lock, store, writer, socket, signals, timers), turns the loop
// until SIGTERM/SIGINT, and shuts down in the reverse fixed order (see
// shutdown()). All state here is touched by the loop thread only; the writer
// thread reaches it through completions that run on the loop.
#pragma once

#include <uv.h>

#include <memory>
#include <optional>

#include "control.h"
#include "options.h"
#include "status/status.h"
#include "util/instance_lock.h"
#include "util/time.h"
#include "uv_handle.h"
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

    static void onSignal(uv_signal_t* handle, int signum) noexcept;

    Options options_;
    OffsetClock clock_;  // tests move it through a hook; production never does
    uv_loop_t loop_{};
    bool loopInitialized_ = false;
    std::optional<InstanceLock> lock_;
    std::unique_ptr<Writer> writer_;
    std::unique_ptr<ControlServer> control_;
    UvHandle<uv_signal_t> sigterm_;
    UvHandle<uv_signal_t> sigint_;
    bool stopping_ = false;

    // Live state served by `status` (loop thread).
    status::StatusInput state_;
    UnixMicros startedAt_ = 0;
};

}  // namespace etld::daemon
