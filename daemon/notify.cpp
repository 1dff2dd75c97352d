#include "notify.h"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstring>

#include "log.h"
#include "util/paths.h"

namespace etld::daemon {
namespace {

// How often STATUS= is recomputed when nothing else prompts it: health moves
// with time alone (syncing turns live 10 s after the last step, a fault turns
// error after 10 s), and a couple of seconds late is fine for a human reading
// `systemctl status`. A STATUS= is only sent when the line changed.
constexpr std::uint64_t kStatusRefreshMs = 2000;
// A fault's message quoted in STATUS= is cut here: the line is a summary,
// the journal has the whole message.
constexpr std::size_t kMaxFaultChars = 160;

std::optional<std::int64_t> parsePositive(std::string_view s) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v <= 0) return std::nullopt;
    return v;
}

std::int64_t monotonicMicros() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

// Control characters (a newline above all) would split the assignment.
std::string flatten(std::string_view text, std::size_t maxChars) {
    std::string out;
    for (char c : text.substr(0, maxChars))
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    if (text.size() > maxChars) out += "...";
    return out;
}

}  // namespace

Result<NotifyAddress> parseNotifyAddress(std::string_view value) {
    NotifyAddress a;
    a.addr.sun_family = AF_UNIX;
    const bool abstract = !value.empty() && value.front() == '@';
    if (!abstract && (value.empty() || value.front() != '/'))
        return Error{"notify_socket",
                     "NOTIFY_SOCKET must be an absolute path or an @abstract name, not '" +
                         std::string(value) + "'"};
    if (value.size() < 2)
        return Error{"notify_socket",
                     "NOTIFY_SOCKET names no socket: '" + std::string(value) + "'"};
    // A path needs room for its terminating NUL; an abstract name does not
    // (its length is given explicitly), but its '@' becomes the leading NUL.
    if (value.size() + (abstract ? 0 : 1) > sizeof a.addr.sun_path)
        return Error{"notify_socket",
                     "NOTIFY_SOCKET is longer than sun_path allows: '" + std::string(value) + "'"};
    std::memcpy(a.addr.sun_path, value.data(), value.size());
    if (abstract) a.addr.sun_path[0] = '\0';
    a.length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() + (abstract ? 0 : 1));
    return a;
}

std::optional<std::int64_t> watchdogUsecFrom(const std::optional<std::string>& usec,
                                             const std::optional<std::string>& pid, pid_t self) {
    if (!usec) return std::nullopt;
    if (pid) {
        // Meant for another process (we were exec'd by the real recipient).
        auto p = parsePositive(*pid);
        if (!p || *p != self) return std::nullopt;
    }
    return parsePositive(*usec);
}

std::string statusSummary(const status::StatusInput& in, UnixMicros now) {
    std::int64_t pending = 0;
    for (const auto& s : in.sources) pending += s.bytesPending;
    std::string line(status::healthName(status::computeHealth(in, now)));
    line += ": " + std::to_string(in.eventsTotal) + " events, lag " +
            std::to_string(status::lagEvents(in)) + ", " + std::to_string(pending) +
            " bytes pending";
    if (in.currentJob) line += "; backfill running";
    if (in.fault) line += "; fault: " + flatten(in.fault->message, kMaxFaultChars);
    return line;
}

Result<NotifySocket> NotifySocket::fromEnvironment() {
    auto value = envValue("NOTIFY_SOCKET");
    if (!value) return NotifySocket();
    return forAddress(*value);
}

Result<NotifySocket> NotifySocket::forAddress(std::string_view value) {
    auto address = parseNotifyAddress(value);
    if (!address) return address.error();
    NotifySocket s;
    s.fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.fd_.valid())
        return Error{"notify_socket",
                     std::string("cannot create a datagram socket: ") + std::strerror(errno)};
    s.address_ = *address;
    return s;
}

Status NotifySocket::send(std::string_view message) const {
    if (!enabled()) return {};
    const ssize_t n =
        ::sendto(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&address_.addr), address_.length);
    if (n < 0)
        return Error{"notify_send",
                     std::string("cannot notify the service manager: ") + std::strerror(errno)};
    return {};
}

ServiceManager::ServiceManager(uv_loop_t* loop, Hooks hooks)
    : loop_(loop), hooks_(std::move(hooks)) {
    auto s = NotifySocket::fromEnvironment();
    if (!s) {
        log::warning(s.error().message + ", not notifying the service manager");
        return;
    }
    socket_ = std::move(s).value();
    if (!socket_.enabled()) return;
    watchdogUsec_ =
        watchdogUsecFrom(envValue("WATCHDOG_USEC"), envValue("WATCHDOG_PID"), ::getpid());
}

ServiceManager::~ServiceManager() {
    close();
}

void ServiceManager::send(const std::string& message) {
    auto st = socket_.send(message);
    if (!st && !sendFailing_) log::warning(st.error().message + ", skipping");
    if (st && sendFailing_) log::info("notifying the service manager works again");
    sendFailing_ = !st;
}

void ServiceManager::ready() {
    if (!enabled() || stopped_) return;
    lastStatus_ = hooks_.summary();
    send("READY=1\nSTATUS=" + lastStatus_);
    if (timersStarted_) return;
    timersStarted_ = true;
    for (auto* timer : {&watchdogTimer_, &statusTimer_}) {
        uv_timer_init(loop_, timer->get());
        timer->markInitialized();
        timer->get()->data = this;
    }
    if (watchdogUsec_) {
        const std::uint64_t intervalMs = std::max<std::int64_t>(1, *watchdogUsec_ / 2 / 1000);
        uv_timer_start(watchdogTimer_.get(), &ServiceManager::onWatchdogTimer, intervalMs,
                       intervalMs);
        log::debug("watchdog: pinging every " + std::to_string(intervalMs) + " ms");
    }
    uv_timer_start(statusTimer_.get(), &ServiceManager::onStatusTimer, kStatusRefreshMs,
                   kStatusRefreshMs);
}

void ServiceManager::refreshStatus() {
    if (!enabled() || stopped_) return;
    std::string line = hooks_.summary();
    if (line == lastStatus_) return;
    lastStatus_ = std::move(line);
    send("STATUS=" + lastStatus_);
}

void ServiceManager::extendStartTimeout(std::int64_t usec, std::string_view why) {
    if (!enabled() || stopped_) return;
    send("EXTEND_TIMEOUT_USEC=" + std::to_string(usec) +
         "\nSTATUS=" + flatten(why, kMaxFaultChars));
}

void ServiceManager::reloading() {
    if (!enabled() || stopped_) return;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicMicros()) +
         "\nSTATUS=reloading the price table");
}

void ServiceManager::reloaded() {
    if (!enabled() || stopped_) return;
    lastStatus_ = hooks_.summary();
    send("READY=1\nSTATUS=" + lastStatus_);
}

void ServiceManager::stopping() {
    if (stopped_) return;
    stopped_ = true;
    if (enabled()) send("STOPPING=1\nSTATUS=shutting down");
    close();
}

void ServiceManager::failed(std::string_view why) {
    if (!enabled()) return;
    send("STATUS=failed to start: " + flatten(why, kMaxFaultChars));
}

void ServiceManager::close() {
    watchdogTimer_.close();
    statusTimer_.close();
}

void ServiceManager::onWatchdogTick() {
    // The timer itself proves the loop turns; the writer must be idle or in
    // a step younger than the manager's whole timeout.
    if (hooks_.writerHealthy(*watchdogUsec_)) {
        send("WATCHDOG=1");
    } else {
        log::debug("watchdog: the writer's current step is too old, not pinging");
    }
}

void ServiceManager::onWatchdogTimer(uv_timer_t* timer) noexcept {
    try {
        static_cast<ServiceManager*>(timer->data)->onWatchdogTick();
    } catch (const std::exception& e) {
        log::error(std::string("watchdog tick failed: ") + e.what());
    }
}

void ServiceManager::onStatusTimer(uv_timer_t* timer) noexcept {
    try {
        static_cast<ServiceManager*>(timer->data)->refreshStatus();
    } catch (const std::exception& e) {
        log::error(std::string("status refresh failed: ") + e.what());
    }
}

}  // namespace etld::daemon
