#include "harness.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <rapidjson/error/en.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace etld::it {
namespace {

// Between connection attempts while the daemon starts: short, and cut short
// by the daemon's exit (the wait is a poll on its pidfd).
constexpr int kStartPollMs = 10;

// ---- failure tracking -----------------------------------------------------

bool gTestFailed = false;

// A listener that notes any failure in the running test case, so TempDir and
// DaemonProcess can keep evidence when (and only when) something failed.
struct FailureListener : doctest::IReporter {
    explicit FailureListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {}
    void test_case_start(const doctest::TestCaseData&) override { gTestFailed = false; }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override { gTestFailed = true; }
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData& data) override {
        if (data.m_failed) gTestFailed = true;
    }
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("etld-it-failures", 1, FailureListener);

// ---- small utilities -------------------------------------------------------

std::string requiredEnv(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        std::fprintf(stderr, "%s is not set: run the integration tests through meson test\n", name);
        std::abort();
    }
    return v;
}

std::string findInPath(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    std::stringstream ss(dirs);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    for (const char* d : {"/usr/bin", "/bin", "/usr/sbin", "/sbin"}) {
        const std::string candidate = std::string(d) + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

int pidfdOpen(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// Waits up to timeoutMs for `pid` to exit, reaping it. Event-driven through
// the pidfd; without one (old kernels) it polls waitpid every few ms.
bool waitChild(pid_t pid, int pidfd, int timeoutMs, int& status) {
    const std::int64_t deadline = monotonicMs() + timeoutMs;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno != EINTR) return false;
        const std::int64_t left = deadline - monotonicMs();
        if (left <= 0) return false;
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(left));
        } else {
            ::poll(nullptr, 0, static_cast<int>(std::min<std::int64_t>(left, kStartPollMs)));
        }
    }
}

struct Spawned {
    pid_t pid = -1;
    UniqueFd pidfd;
};

// fork/exec with stdin from /dev/null and the given stdout/stderr. Every
// allocation happens before fork; the child only makes system calls.
Spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int outFd,
              int errFd) {
    REQUIRE(!argv.empty());
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    UniqueFd devNull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(devNull.valid());
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    REQUIRE_MESSAGE(pid >= 0, "fork: " << std::strerror(errno));
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        ::signal(SIGPIPE, SIG_DFL);  // the programs set their own dispositions
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::dup2(devNull.get(), STDIN_FILENO);
        ::dup2(outFd, STDOUT_FILENO);
        ::dup2(errFd, STDERR_FILENO);
        ::close_range(3, ~0U, 0);
        ::execve(cargv[0], cargv.data(), cenv.data());
        static const char msg[] = "harness: execve failed\n";
        (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
        ::_exit(127);
    }
    Spawned s;
    s.pid = pid;
    s.pidfd.reset(pidfdOpen(pid));
    return s;
}

std::vector<std::string> withPrivileges(const std::vector<std::string>& argv,
                                        const std::optional<RunAs>& as) {
    if (!as) return argv;
    static const std::string setpriv = findInPath("setpriv");
    REQUIRE_MESSAGE(!setpriv.empty(), "setpriv (util-linux) is needed to drop privileges");
    std::vector<std::string> out{setpriv, "--reuid=" + std::to_string(as->uid),
                                 "--regid=" + std::to_string(as->gid), "--clear-groups"};
    if (!as->caps.empty()) {
        std::string list;
        for (const auto& c : as->caps) list += (list.empty() ? "+" : ",+") + c;
        out.push_back("--inh-caps=" + list);
        out.push_back("--ambient-caps=" + list);
    }
    out.push_back("--");
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

std::string describeStatus(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

// ---- paths, clock ----------------------------------------------------------

std::string etldPath() {
    return requiredEnv("ETLD_IT_ETLD");
}
std::string etlctlPath() {
    return requiredEnv("ETLD_IT_ETLCTL");
}
std::string probePath() {
    return requiredEnv("ETLD_IT_PROBE");
}

std::int64_t monotonicMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

bool canDropPrivileges() {
    return ::geteuid() == 0 && !findInPath("setpriv").empty();
}

bool currentTestFailed() {
    return gTestFailed || std::uncaught_exceptions() > 0;
}

// ---- TempDir ---------------------------------------------------------------

TempDir::TempDir() {
    char tmpl[] = "/tmp/etld-it-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    REQUIRE_MESSAGE(made != nullptr, "mkdtemp: " << std::strerror(errno));
    path_ = made;
    std::filesystem::create_directory(path_ + "/home");
}

TempDir::~TempDir() {
    if (currentTestFailed()) {
        std::fprintf(stderr, "integration: test failed, keeping %s for inspection\n",
                     path_.c_str());
        return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::operator/(std::string_view name) const {
    return path_ + "/" + std::string(name);
}

// ---- processes -------------------------------------------------------------

std::vector<std::string> childEnvironment(const std::string& home,
                                          const std::vector<EnvChange>& changes) {
    auto dropped = [](std::string_view entry) {
        const std::string_view name = entry.substr(0, entry.find('='));
        for (std::string_view prefix : {"XDG_", "ETLD_"})
            if (name.substr(0, prefix.size()) == prefix) return true;
        for (std::string_view exact : {"HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_DATA_DIR",
                                       "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                                       "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "NO_COLOR"})
            if (name == exact) return true;
        return false;
    };
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (!dropped(*e)) env.emplace_back(*e);
    env.push_back("HOME=" + home);
    for (const auto& [name, value] : changes) {
        std::erase_if(env, [&](const std::string& entry) {
            return entry.compare(0, name.size() + 1, name + "=") == 0;
        });
        if (value) env.push_back(name + "=" + *value);
    }
    return env;
}

std::string ProcessResult::describe() const {
    std::string s = timedOut     ? "timed out (killed)"
                    : termSignal ? std::string("killed by signal ") + strsignal(termSignal)
                                 : "exit " + std::to_string(exitCode);
    s += "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
    return s;
}

ProcessResult runProgram(const std::vector<std::string>& argv0, const std::string& home,
                         const RunOptions& options) {
    const std::vector<std::string> argv = withPrivileges(argv0, options.as);
    int outPipe[2], errPipe[2];
    REQUIRE(::pipe2(outPipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(errPipe, O_CLOEXEC) == 0);
    UniqueFd outRead(outPipe[0]), outWrite(outPipe[1]), errRead(errPipe[0]), errWrite(errPipe[1]);
    Spawned child =
        spawn(argv, childEnvironment(home, options.env), outWrite.get(), errWrite.get());
    outWrite.reset();
    errWrite.reset();

    ProcessResult result;
    const std::int64_t deadline = monotonicMs() + options.timeoutMs;
    bool outOpen = true, errOpen = true;
    while (outOpen || errOpen) {
        const std::int64_t left = deadline - monotonicMs();
        if (left <= 0) {
            result.timedOut = true;
            break;
        }
        pollfd fds[2] = {{outOpen ? outRead.get() : -1, POLLIN, 0},
                         {errOpen ? errRead.get() : -1, POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) break;
        char buf[65536];
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                (i == 0 ? outOpen : errOpen) = false;
            }
        }
    }
    int status = 0;
    if (result.timedOut ||
        !waitChild(child.pid, child.pidfd.get(),
                   static_cast<int>(std::max<std::int64_t>(0, deadline - monotonicMs())), status)) {
        result.timedOut = true;
        ::kill(child.pid, SIGKILL);
        waitChild(child.pid, child.pidfd.get(), kDeadlineMs, status);
    }
    if (WIFEXITED(status)) result.exitCode = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.termSignal = WTERMSIG(status);
    return result;
}

ProcessResult runCtl(const TempDir& dir, const std::vector<std::string>& args,
                     const RunOptions& options) {
    std::vector<std::string> argv{etlctlPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runProgram(argv, dir / "home", options);
}

ProcessResult runEtld(const TempDir& dir, const std::vector<std::string>& args,
                      const RunOptions& options) {
    std::vector<std::string> argv{etldPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    // Hooks on, as for DaemonProcess; the caller's changes still win.
    RunOptions withHooks = options;
    withHooks.env.clear();
    withHooks.env.emplace_back("ETLD_TEST_HOOKS", "1");
    for (const auto& change : options.env) withHooks.env.push_back(change);
    return runProgram(argv, dir / "home", withHooks);
}

ProcessResult runProbe(const TempDir& dir, const std::vector<std::string>& args,
                       const RunOptions& options) {
    std::vector<std::string> argv{probePath()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runProgram(argv, dir / "home", options);
}

// ---- DaemonProcess ---------------------------------------------------------

DaemonProcess::DaemonProcess(const TempDir& dir, DaemonConfig config)
    : dir_(dir), config_(std::move(config)) {
    if (config_.db.empty()) config_.db = dir / "state/etl.db";
    if (config_.socket.empty()) config_.socket = dir / "run/etld.sock";
    // Claim a log file of its own now (O_EXCL), so two daemons constructed
    // before either starts never share one.
    for (int n = 0;; ++n) {
        logPath_ = dir / ("etld-" + std::to_string(n) + ".log");
        UniqueFd fd(::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        if (fd.valid()) break;
        REQUIRE_MESSAGE(errno == EEXIST,
                        "cannot create " << logPath_ << ": " << std::strerror(errno));
    }
}

DaemonProcess::~DaemonProcess() {
    if (currentTestFailed()) {
        std::fprintf(stderr, "integration: etld log %s:\n%s\n", logPath_.c_str(), log().c_str());
    }
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        waitChild(pid_, pidfd_.get(), kDeadlineMs, status);
    }
}

void DaemonProcess::start() {
    REQUIRE_MESSAGE(pid_ <= 0, "the daemon is already running");
    std::vector<std::string> argv{etldPath(), "--db", config_.db, "--socket", config_.socket};
    if (config_.noWatch) argv.push_back("--no-watch");
    argv.insert(argv.end(), config_.extraArgs.begin(), config_.extraArgs.end());
    std::vector<EnvChange> changes;
    if (config_.testHooks) changes.emplace_back("ETLD_TEST_HOOKS", "1");
    changes.insert(changes.end(), config_.env.begin(), config_.env.end());
    UniqueFd logFd(::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    REQUIRE_MESSAGE(logFd.valid(), "cannot open " << logPath_ << ": " << std::strerror(errno));
    Spawned child = spawn(argv, childEnvironment(dir_ / "home", changes), logFd.get(), logFd.get());
    pid_ = child.pid;
    pidfd_ = std::move(child.pidfd);
}

bool DaemonProcess::waitFor(int timeoutMs, int& status) {
    if (pid_ <= 0) return false;
    return waitChild(pid_, pidfd_.get(), timeoutMs, status);
}

void DaemonProcess::reaped() {
    pid_ = -1;
    pidfd_.reset();
}

void DaemonProcess::waitReady() {
    REQUIRE_MESSAGE(pid_ > 0, "the daemon was not started");
    const std::int64_t deadline = monotonicMs() + kDeadlineMs;
    // ping says it answers; hello's pid says it is this daemon and not
    // another one already serving the same socket path.
    const std::string ping = "{\"v\":1,\"id\":\"ready\",\"method\":\"ping\"}\n";
    const std::string hello = "{\"v\":1,\"id\":\"who\",\"method\":\"hello\"}\n";
    const std::string ourPid = "\"pid\":" + std::to_string(pid_);
    std::string lastProblem = "no attempt yet";
    for (;;) {
        RawClient client;
        if (const int err = RawClient::tryConnect(config_.socket, client); err == 0) {
            std::string line;
            const int left = static_cast<int>(std::max<std::int64_t>(1, deadline - monotonicMs()));
            if (client.sendAll(ping, left) &&
                client.readLine(line, left) == RawClient::Read::Line &&
                line.find("\"pong\":true") != std::string::npos) {
                if (client.sendAll(hello, left) &&
                    client.readLine(line, left) == RawClient::Read::Line &&
                    line.find(ourPid) != std::string::npos) {
                    return;
                }
                FAIL("another process answers at " << config_.socket << ": " << line
                                                   << "\n--- log ---\n"
                                                   << log());
            }
            lastProblem = "connected, but no pong (got '" + line + "')";
        } else {
            lastProblem = std::string("connect: ") + std::strerror(err);
        }
        if (monotonicMs() >= deadline) {
            FAIL("etld did not answer ping within " << kDeadlineMs << " ms (" << lastProblem
                                                    << ")\n--- log ---\n"
                                                    << log());
        }
        // Short, and ends at once if the daemon dies (its pidfd turns readable).
        int status = 0;
        if (waitFor(kStartPollMs, status)) {
            reaped();
            FAIL("etld exited during start-up (" << describeStatus(status) << ")\n--- log ---\n"
                                                 << log());
        }
    }
}

void DaemonProcess::stop() {
    REQUIRE_MESSAGE(pid_ > 0, "stop(): the daemon is not running");
    REQUIRE(::kill(pid_, SIGTERM) == 0);
    int status = 0;
    if (!waitFor(kDeadlineMs, status)) {
        ::kill(pid_, SIGKILL);
        waitFor(kDeadlineMs, status);
        reaped();
        FAIL("etld did not exit within " << kDeadlineMs << " ms of SIGTERM\n--- log ---\n"
                                         << log());
    }
    reaped();
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    REQUIRE_MESSAGE(clean, "etld did not exit cleanly on SIGTERM (" << describeStatus(status)
                                                                    << ")\n--- log ---\n"
                                                                    << log());
}

void DaemonProcess::kill9() {
    REQUIRE_MESSAGE(pid_ > 0, "kill9(): the daemon is not running");
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitFor(kDeadlineMs, status));
    reaped();
    CHECK(WIFSIGNALED(status));
}

ProcessResult DaemonProcess::waitExit(int timeoutMs) {
    REQUIRE_MESSAGE(pid_ > 0, "waitExit(): the daemon is not running");
    ProcessResult r;
    int status = 0;
    if (!waitFor(timeoutMs, status)) {
        r.timedOut = true;
        ::kill(pid_, SIGKILL);
        waitFor(kDeadlineMs, status);
    }
    reaped();
    if (WIFEXITED(status)) r.exitCode = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.termSignal = WTERMSIG(status);
    r.err = log();
    return r;
}

std::string DaemonProcess::log() const {
    return readFile(logPath_);
}

// ---- RawClient -------------------------------------------------------------

int RawClient::tryConnect(const std::string& socketPath, RawClient& out) {
    sockaddr_un addr{};
    if (socketPath.size() >= sizeof addr.sun_path) return ENAMETOOLONG;
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
    // A blocking connect: on a Unix socket it completes at once, or waits
    // only while the daemon's backlog is full.
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return errno;
    const int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
    out.fd_ = std::move(fd);
    out.buffer_.clear();
    return 0;
}

RawClient RawClient::connect(const std::string& socketPath) {
    RawClient c;
    const int err = tryConnect(socketPath, c);
    REQUIRE_MESSAGE(err == 0, "connect " << socketPath << ": " << std::strerror(err));
    return c;
}

bool RawClient::sendAll(std::string_view bytes, int timeoutMs) {
    const std::int64_t deadline = monotonicMs() + timeoutMs;
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n > 0) {
            bytes.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const std::int64_t left = deadline - monotonicMs();
            if (left <= 0) return false;
            pollfd p{fd_.get(), POLLOUT, 0};
            ::poll(&p, 1, static_cast<int>(left));
            continue;
        }
        return false;  // EPIPE, ECONNRESET: the daemon closed the connection
    }
    return true;
}

RawClient::Read RawClient::readLine(std::string& line, int timeoutMs) {
    const std::int64_t deadline = monotonicMs() + timeoutMs;
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return Read::Line;
        }
        char buf[65536];
        const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n > 0) {
            buffer_.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) return Read::Eof;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return Read::Reset;
        const std::int64_t left = deadline - monotonicMs();
        if (left <= 0) return Read::Timeout;
        pollfd p{fd_.get(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left));
    }
}

std::string RawClient::expectLine(int timeoutMs) {
    std::string line;
    const Read r = readLine(line, timeoutMs);
    REQUIRE_MESSAGE(r == Read::Line, "no reply line (" << (r == Read::Eof     ? "EOF"
                                                           : r == Read::Reset ? "reset"
                                                                              : "timeout")
                                                       << ")");
    return line;
}

bool RawClient::waitClosed(int timeoutMs, std::string* extra) {
    const std::int64_t deadline = monotonicMs() + timeoutMs;
    if (extra) extra->append(buffer_);
    buffer_.clear();
    for (;;) {
        char buf[65536];
        const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n > 0) {
            if (extra) extra->append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) return true;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return true;  // reset
        const std::int64_t left = deadline - monotonicMs();
        if (left <= 0) return false;
        pollfd p{fd_.get(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left));
    }
}

rapidjson::Document RawClient::call(std::string_view method, std::string_view paramsJson,
                                    std::string_view idJson) {
    std::string line =
        "{\"v\":1,\"id\":" + std::string(idJson) + ",\"method\":\"" + std::string(method) + "\"";
    if (!paramsJson.empty()) line += ",\"params\":" + std::string(paramsJson);
    line += "}\n";
    REQUIRE_MESSAGE(sendAll(line), "the daemon closed the connection before " << method);
    return parseJson(expectLine());
}

void RawClient::setLingerZero() {
    linger l{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// ---- JSON and files --------------------------------------------------------

rapidjson::Document parseJson(const std::string& text) {
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    REQUIRE_MESSAGE(!doc.HasParseError(),
                    "not JSON (" << rapidjson::GetParseError_En(doc.GetParseError()) << " at "
                                 << doc.GetErrorOffset() << "): " << text.substr(0, 500));
    return doc;
}

const rapidjson::Value& at(const rapidjson::Value& root, std::string_view dottedPath) {
    const rapidjson::Value* v = &root;
    std::string_view rest = dottedPath;
    while (!rest.empty()) {
        const auto dot = rest.find('.');
        const std::string key(rest.substr(0, dot));
        rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
        REQUIRE_MESSAGE(v->IsObject(),
                        "'" << dottedPath << "': not an object before '" << key << "'");
        auto it = v->FindMember(key.c_str());
        REQUIRE_MESSAGE(it != v->MemberEnd(), "'" << dottedPath << "': no key '" << key << "'");
        v = &it->value;
    }
    return *v;
}

std::string errorCode(const rapidjson::Value& reply) {
    if (!reply.IsObject()) return "<not an object>";
    auto ok = reply.FindMember("ok");
    if (ok != reply.MemberEnd() && ok->value.IsBool() && ok->value.GetBool()) return "";
    auto err = reply.FindMember("error");
    if (err == reply.MemberEnd() || !err->value.IsObject()) return "<no error object>";
    auto code = err->value.FindMember("code");
    if (code == err->value.MemberEnd() || !code->value.IsString()) return "<no error code>";
    return code->value.GetString();
}

std::string firstLine(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

std::vector<std::string> listDirectory(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

bool pathExists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

rapidjson::Document statusJson(const TempDir& dir, const DaemonProcess& d,
                               std::vector<std::string> extra) {
    std::vector<std::string> args = d.ctlTarget();
    args.insert(args.end(), {"status", "--format", "json"});
    args.insert(args.end(), extra.begin(), extra.end());
    const ProcessResult r = runCtl(dir, args);
    REQUIRE_MESSAGE(r.exitCode == 0, r.describe());
    return parseJson(r.out);
}

}  // namespace etld::it
