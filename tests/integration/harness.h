// The integration harness: the real `etld` and `etlctl`, in a fresh
// temporary directory, driven the way an operator or the dashboard would.
//
// Rules every helper here keeps, so the tests stay deterministic on a loaded
// machine:
//   - Nothing sleeps to wait for the daemon. Waiting is always for an event
//     (a reply line, EOF, a process exit seen through a pidfd) under a
//     generous deadline; the only timed waits are short poll()s between
//     connection attempts while the daemon starts, each of which also wakes
//     at once if the daemon dies.
//   - Every child runs with a controlled environment: HOME inside the
//     temporary directory, XDG_* and ETLD_* from the caller's environment
//     removed, so defaults can never reach the real user's files.
//   - Every child gets PR_SET_PDEATHSIG(SIGKILL): a test runner killed by a
//     timeout leaves no daemon behind.
//   - A failing test keeps its temporary directory (the path is printed) and
//     prints the daemon's log; a passing one removes everything.
//
// The binaries' paths come from the environment meson sets for the test
// (ETLD_IT_ETLD, ETLD_IT_ETLCTL, ETLD_IT_PROBE; see meson.build here).
#pragma once

#include <rapidjson/document.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/unique_fd.h"

namespace etld::it {

// How long any single wait for the daemon or a child may take before the
// test fails: far above what a healthy run needs even on a loaded 2-core
// machine (milliseconds), so only a real hang reaches it.
constexpr int kDeadlineMs = 10'000;
// The unprivileged identity privilege-dropping tests use (nobody/nogroup).
constexpr uid_t kNobodyUid = 65534;
constexpr gid_t kNobodyGid = 65534;

std::string etldPath();
std::string etlctlPath();
std::string probePath();

// Milliseconds on the monotonic clock.
std::int64_t monotonicMs();

// True when the tests may drop privileges with setpriv (they run as root).
// Tests that need it say so and return early otherwise.
bool canDropPrivileges();

// True once anything in the running test case failed (a failed assertion, or
// an exception unwinding through the caller).
bool currentTestFailed();

// A fresh, short temporary directory (/tmp/etld-it-XXXXXX: sun_path holds
// only ~107 bytes), removed with everything in it at the end of the test
// unless the test failed; then it is kept and its path printed.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    // path()/name
    std::string operator/(std::string_view name) const;

  private:
    std::string path_;
};

// An environment change for a child: set (value) or remove (nullopt).
using EnvChange = std::pair<std::string, std::optional<std::string>>;

// Who a child runs as. Default: the test's own identity.
struct RunAs {
    uid_t uid = kNobodyUid;
    gid_t gid = kNobodyGid;
    // Capabilities kept across the uid change, as setpriv names them
    // ("dac_override"); granted inheritable and ambient.
    std::vector<std::string> caps;
};

struct RunOptions {
    std::vector<EnvChange> env;
    std::optional<RunAs> as;  // via setpriv --reuid --regid --clear-groups
    int timeoutMs = kDeadlineMs;
};
inline RunOptions asUser(RunAs who) {
    RunOptions o;
    o.as = std::move(who);
    return o;
}

struct ProcessResult {
    int exitCode = -1;      // -1 when killed by a signal
    int termSignal = 0;     // the signal that ended it, if any
    bool timedOut = false;  // the harness killed it at the deadline
    std::string out;
    std::string err;
    // For assertion messages: exit status and both streams.
    std::string describe() const;
};

// Runs a program to completion, capturing stdout and stderr. A child still
// running at the deadline is killed and reported timedOut.
ProcessResult runProgram(const std::vector<std::string>& argv, const std::string& home,
                         const RunOptions& options = {});

// The base environment for every child: the caller's, without XDG_*, ETLD_*,
// HOME and the providers' directory variables, plus HOME=`home`.
std::vector<std::string> childEnvironment(const std::string& home,
                                          const std::vector<EnvChange>& changes);

// The daemon under test.
struct DaemonConfig {
    std::string db;       // default: <tmp>/state/etl.db
    std::string socket;   // default: <tmp>/run/etld.sock
    bool noWatch = true;  // ingest is driven by sync, not watching, in these tests
    bool testHooks = true;
    std::vector<std::string> extraArgs;
    std::vector<EnvChange> env;
};

class DaemonProcess {
  public:
    DaemonProcess(const TempDir& dir, DaemonConfig config = {});
    ~DaemonProcess();  // SIGKILLs a daemon still running
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    // fork/exec etld; stdout and stderr go to a log file in the directory.
    void start();
    // Pings over the socket until the daemon answers, checking between
    // attempts that it is still alive; fails the test (and prints the log)
    // if it dies or the deadline passes.
    void waitReady();
    void startAndWaitReady() {
        start();
        waitReady();
    }
    // SIGTERM; the test fails unless the daemon exits with status 0.
    void stop();
    // SIGKILL and reap: the daemon leaves its socket and lock file behind.
    void kill9();
    // Waits for a daemon that is expected to exit on its own.
    ProcessResult waitExit(int timeoutMs = kDeadlineMs);

    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    const std::string& db() const { return config_.db; }
    const std::string& socket() const { return config_.socket; }
    const std::string& logPath() const { return logPath_; }
    std::string log() const;
    // etlctl's global flags naming this daemon's socket and store.
    std::vector<std::string> ctlTarget() const {
        return {"--socket", config_.socket, "--db", config_.db};
    }

  private:
    // Waits up to timeoutMs for the child to exit; true and the status if it did.
    bool waitFor(int timeoutMs, int& status);
    void reaped();

    const TempDir& dir_;
    DaemonConfig config_;
    std::string logPath_;
    pid_t pid_ = -1;
    UniqueFd pidfd_;
};

// etlctl, with HOME inside `dir`; `args` are everything after the program name.
ProcessResult runCtl(const TempDir& dir, const std::vector<std::string>& args,
                     const RunOptions& options = {});
// etld run to completion (for start-ups expected to fail), HOME inside `dir`.
ProcessResult runEtld(const TempDir& dir, const std::vector<std::string>& args,
                      const RunOptions& options = {});
// The connect probe (probe.cpp), to observe what an unprivileged peer sees.
ProcessResult runProbe(const TempDir& dir, const std::vector<std::string>& args,
                       const RunOptions& options = {});

// A raw client of the control socket: arbitrary bytes out, lines back, every
// wait bounded by a deadline. Non-blocking underneath.
class RawClient {
  public:
    enum class Read { Line, Eof, Reset, Timeout };

    // Connects or fails the test.
    static RawClient connect(const std::string& socketPath);
    // Connects; returns 0 or the errno of the failure.
    static int tryConnect(const std::string& socketPath, RawClient& out);

    RawClient() = default;
    RawClient(RawClient&&) = default;
    RawClient& operator=(RawClient&&) = default;

    int fd() const { return fd_.get(); }
    bool connected() const { return fd_.valid(); }

    // Writes all bytes (waiting for room, up to the deadline). False when the
    // peer closed or reset the connection first.
    bool sendAll(std::string_view bytes, int timeoutMs = kDeadlineMs);
    // One reply line (without "\n").
    Read readLine(std::string& line, int timeoutMs = kDeadlineMs);
    // A line, or fails the test.
    std::string expectLine(int timeoutMs = kDeadlineMs);
    // Reads until the daemon closes (EOF or reset); false at the deadline.
    // Bytes received on the way are appended to `extra` when given.
    bool waitClosed(int timeoutMs = kDeadlineMs, std::string* extra = nullptr);

    // Sends {"v":1,"id":<idJson>,"method":...,"params":<paramsJson>} and
    // returns the parsed reply line; fails the test on no reply.
    rapidjson::Document call(std::string_view method, std::string_view paramsJson = {},
                             std::string_view idJson = "1");

    // SO_LINGER {on, 0}: close() resets where the transport honours it.
    void setLingerZero();
    void close() { fd_.reset(); }

  private:
    UniqueFd fd_;
    std::string buffer_;
};

// `etlctl <target> status --format json <extra>`: exit 0 and a document, or
// fails the test.
rapidjson::Document statusJson(const TempDir& dir, const DaemonProcess& d,
                               std::vector<std::string> extra = {});

// Parses JSON or fails the test.
rapidjson::Document parseJson(const std::string& text);
// The value at a dotted path ("watcher.running"), or fails the test.
const rapidjson::Value& at(const rapidjson::Value& root, std::string_view dottedPath);
// A reply's error code, or "" for a success.
std::string errorCode(const rapidjson::Value& reply);
// The first line of a text.
std::string firstLine(const std::string& text);
// File names in a directory, sorted.
std::vector<std::string> listDirectory(const std::string& dir);
bool pathExists(const std::string& path);

}  // namespace etld::it
