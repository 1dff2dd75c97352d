// The service manager's notification protocol, spoken directly (no libsystemd).
//
// systemd passes a datagram socket's address in $NOTIFY_SOCKET: a filesystem
// path ("/run/systemd/notify") or an abstract name written with a leading '@'
// that stands for the NUL byte the kernel expects in sun_path[0]. A message
// is one datagram of newline-separated KEY=VALUE assignments, sent from the
// main process (the manager reads our pid from the kernel's credentials, so
// NotifyAccess=main is enough). What etld says, and when:
//
//   READY=1              once the store is open, the socket listens and the
//                        start-up reconciliation is scheduled;
//   STATUS=<one line>    health, events, lag, pending bytes: sent when that
//                        line changes (after a step or a fault, or because
//                        time alone moved the health), never per request;
//   WATCHDOG=1           every WATCHDOG_USEC/2 from a loop timer, and only
//                        while the writer is idle or its current step is
//                        younger than WATCHDOG_USEC: a wedged loop never runs
//                        the timer, a wedged writer fails the check, and
//                        either way the pings stop and systemd restarts us;
//   EXTEND_TIMEOUT_USEC  before each start-up migration, which may outlast
//                        TimeoutStartSec= on a large store;
//   RELOADING=1 ... READY=1   around a SIGHUP reload (with MONOTONIC_USEC,
//                        which newer managers want beside RELOADING=1);
//   STOPPING=1           first thing on shutdown.
//
// Without $NOTIFY_SOCKET every send is a no-op and no timer runs. Sends never
// block the loop (MSG_DONTWAIT): a manager too busy to read loses a ping,
// which is what a watchdog is for anyway. A value never contains a newline;
// statusSummary() flattens what it quotes.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "status/status.h"
#include "util/result.h"
#include "util/unique_fd.h"
#include "uv_handle.h"

namespace etld::daemon {

// A parsed $NOTIFY_SOCKET.
struct NotifyAddress {
    sockaddr_un addr{};
    socklen_t length = 0;  // exact: an abstract name's length is part of the name
};

// "/absolute/path" or "@abstract-name"; anything else, an empty name, or a
// name too long for sun_path is an error.
Result<NotifyAddress> parseNotifyAddress(std::string_view value);

// The watchdog timeout the manager asked for, in microseconds: WATCHDOG_USEC
// when it is a positive integer and WATCHDOG_PID is unset or names `self`.
std::optional<std::int64_t> watchdogUsecFrom(const std::optional<std::string>& usec,
                                             const std::optional<std::string>& pid, pid_t self);

// The one-line STATUS= text: "live: 1234 events, lag 0, 0 bytes pending",
// plus "; fault: <message>" while one lasts. No newline, ever.
std::string statusSummary(const status::StatusInput& in, UnixMicros now);

// The datagram sender. Default-constructed (or without NOTIFY_SOCKET) it is
// disabled and send() does nothing.
class NotifySocket {
  public:
    NotifySocket() = default;
    // Reads $NOTIFY_SOCKET; an error when it is set but malformed.
    static Result<NotifySocket> fromEnvironment();
    static Result<NotifySocket> forAddress(std::string_view value);

    bool enabled() const { return fd_.valid(); }
    Status send(std::string_view message) const;

  private:
    UniqueFd fd_;
    NotifyAddress address_;
};

// The daemon's side of the service manager: the lifecycle messages, the
// watchdog timer and the status timer. Loop thread only; every callback is a
// noexcept trampoline.
class ServiceManager {
  public:
    struct Hooks {
        // Is the writer idle, or is its current step younger than this?
        std::function<bool(std::int64_t maxStepMicros)> writerHealthy;
        // The current STATUS= line (statusSummary of the live state).
        std::function<std::string()> summary;
    };

    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. A malformed
    // NOTIFY_SOCKET is logged once and leaves the link disabled.
    ServiceManager(uv_loop_t* loop, Hooks hooks);
    ~ServiceManager();
    ServiceManager(const ServiceManager&) = delete;
    ServiceManager& operator=(const ServiceManager&) = delete;

    bool enabled() const { return socket_.enabled(); }
    std::optional<std::int64_t> watchdogUsec() const { return watchdogUsec_; }

    // READY=1 with the first STATUS=; starts the watchdog and status timers.
    void ready();
    // STATUS= when the summary differs from the last one sent.
    void refreshStatus();
    // EXTEND_TIMEOUT_USEC=<usec>, with a STATUS= saying why.
    void extendStartTimeout(std::int64_t usec, std::string_view why);
    // RELOADING=1 (+ MONOTONIC_USEC), then READY=1 with a fresh STATUS=.
    void reloading();
    void reloaded();
    // STOPPING=1; the timers stop (no ping after this).
    void stopping();
    // A start that failed: STATUS=<why>, so `systemctl status` shows it.
    void failed(std::string_view why);
    // Closes the timers' handles (shutdown, before the loop's last run).
    void close();

  private:
    void send(const std::string& message);
    void onWatchdogTick();
    static void onWatchdogTimer(uv_timer_t* timer) noexcept;
    static void onStatusTimer(uv_timer_t* timer) noexcept;

    uv_loop_t* loop_;
    Hooks hooks_;
    NotifySocket socket_;
    std::optional<std::int64_t> watchdogUsec_;
    UvHandle<uv_timer_t> watchdogTimer_;
    UvHandle<uv_timer_t> statusTimer_;
    bool timersStarted_ = false;
    bool stopped_ = false;
    bool sendFailing_ = false;  // log a failing send once per streak
    std::string lastStatus_;
};

}  // namespace etld::daemon
