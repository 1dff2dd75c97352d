// status_bench: how long a status answer takes at 1,000,000 events.
//
// The foundation's goals: `status` answers in under 1 ms (median) from the
// daemon, and in under 10 ms from the store alone, with 1,000,000 events
// stored. This program builds such a store, then measures both paths the way
// a user meets them:
//
//   1. the store: 1,000,000 events spread over providers, models, projects,
//      sessions and a year of days, inserted in one transaction through one
//      prepared statement; the five marts built by the store's own full
//      rebuild, their watermarks at that point; then 10,000 more events in a
//      second transaction, which the marts have not absorbed (a lag of
//      10,000, as during a catch-up). The counters are kept by the store's
//      own triggers, as in production.
//   2. daemon: the real `etld` serving that store (no watching, empty source
//      roots), 1,000 `status` requests one after the other over ONE socket
//      connection, each timed from the write to the reply's newline (after
//      a short warm-up).
//   3. store: `etlctl --db STORE status --offline --format json` as a whole
//      process, from spawn to exit (wall time, and the CPU time it used),
//      100 times, with the daemon stopped (the fallback's situation). Process
//      start-up is part of what users wait for.
//   4. for reference, the same store read in-process: openReader() +
//      readStatusInput() + assembleStatus(), so that (3) can be split into
//      process cost and store cost.
//
// Usage: status_bench --etld PATH --etlctl PATH [--dir DIR] [--events N]
//                     [--extra-events N] [--requests N] [--runs N] [--keep] [--reuse]
// The store is built in DIR (default: a fresh directory under /tmp) and
// removed at the end unless --keep is given; --reuse measures a store an
// earlier run kept in DIR instead of building one.
#include <fcntl.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "protocol/protocol.h"
#include "status/status.h"
#include "store/marts.h"
#include "store/store.h"
#include "util/time.h"

using namespace etld;

namespace {

using Clock = std::chrono::steady_clock;

// The goals the numbers are compared with (foundation issue, status goal).
constexpr double kDaemonGoalMs = 1.0;
constexpr double kStoreGoalMs = 10.0;
// Requests answered before timing starts: page cache and allocator warm-up.
constexpr int kWarmupRequests = 20;
// How long etld may take to start answering before the bench gives up.
constexpr int kStartupTimeoutMs = 30000;
// Events per session in the generated store (about 20,000 sessions).
constexpr int kEventsPerSession = 50;
// Projects in the generated store.
constexpr int kProjects = 150;
// The generated events cover this many days, ending on kLastDay.
constexpr int kDays = 365;
constexpr UnixMicros kLastDayStart = 1784851200LL * kMicrosPerSecond;  // 2026-07-24T00:00:00Z

struct Args {
    std::string etld, etlctl, dir;
    long events = 1000000;
    long extraEvents = 10000;
    int requests = 1000;
    int runs = 100;
    bool keep = false;
    bool reuse = false;
};

[[noreturn]] void die(const std::string& message) {
    std::fprintf(stderr, "status_bench: %s\n", message.c_str());
    std::exit(1);
}

Args parseArgs(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) die(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--etld")
            a.etld = value();
        else if (arg == "--etlctl")
            a.etlctl = value();
        else if (arg == "--dir")
            a.dir = value();
        else if (arg == "--events")
            a.events = std::stol(value());
        else if (arg == "--extra-events")
            a.extraEvents = std::stol(value());
        else if (arg == "--requests")
            a.requests = std::stoi(value());
        else if (arg == "--runs")
            a.runs = std::stoi(value());
        else if (arg == "--keep")
            a.keep = true;
        else if (arg == "--reuse")
            a.reuse = true;
        else
            die("unknown argument " + arg);
    }
    if (a.etld.empty() || a.etlctl.empty())
        die("usage: status_bench --etld PATH --etlctl PATH ...");
    return a;
}

void check(const Status& st, const char* what) {
    if (!st) die(std::string(what) + ": " + st.error().message);
}

template <typename T>
T check(Result<T> r, const char* what) {
    if (!r) die(std::string(what) + ": " + r.error().message);
    return std::move(r).value();
}

// ---- the store ------------------------------------------------------------

struct Model {
    const char* provider;
    const char* name;
    double usdPerMTokIn, usdPerMTokOut;
};
const Model kModels[] = {
    {"claude", "claude-sonnet-4-20250514", 3.0, 15.0},
    {"claude", "claude-opus-4-1-20250805", 15.0, 75.0},
    {"claude", "claude-3-5-haiku-20241022", 0.8, 4.0},
    {"codex", "gpt-5", 1.25, 10.0},
    {"codex", "gpt-5-codex", 1.25, 10.0},
    {"gemini", "gemini-2.5-pro", 1.25, 10.0},
    {"gemini", "gemini-2.5-flash", 0.3, 2.5},
};

std::string isoMillis(UnixMicros t) {
    const std::time_t secs = static_cast<std::time_t>(t / kMicrosPerSecond);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>((t % kMicrosPerSecond) / 1000));
    return buf;
}

// Inserts `count` events with ids following `first`, in one transaction.
void insertEvents(store::Connection& db, long first, long count,
                  const std::vector<std::int64_t>& projectIds, std::mt19937_64& rng) {
    auto tx = check(store::Transaction::begin(db), "begin");
    auto stmt = check(
        db.prepare(
            "INSERT INTO usage_events (provider, project_id, session_id, ts, day, model, "
            "speed, input_tokens, output_tokens, cache_read_tokens, cache_create_tokens, "
            "reasoning_tokens, cost_usd, cost_source, role, event_key) VALUES "
            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'assistant', ?15)"),
        "prepare insert");
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const long total = first + count;
    const UnixMicros span = static_cast<UnixMicros>(kDays) * 86400 * kMicrosPerSecond;
    const UnixMicros start = kLastDayStart + 86400 * kMicrosPerSecond - span;
    const Model* model = &kModels[0];
    std::int64_t project = projectIds[0];
    std::string session;
    for (long i = first; i < total; ++i) {
        if ((i - first) % kEventsPerSession == 0) {  // a new session
            const double p = unit(rng);
            const int pick = p < 0.70   ? static_cast<int>(rng() % 3)       // claude
                             : p < 0.90 ? 3 + static_cast<int>(rng() % 2)   // codex
                                        : 5 + static_cast<int>(rng() % 2);  // gemini
            model = &kModels[pick];
            project = projectIds[rng() % projectIds.size()];
            char sid[40];
            std::snprintf(sid, sizeof sid, "%016llx-%08lx", static_cast<unsigned long long>(rng()),
                          i);
            session = sid;
        }
        // Time grows with i: ingest appends in time order, so ids and days agree.
        const UnixMicros ts =
            start + span / (total + 1) * (i + 1) + static_cast<UnixMicros>(rng() % 1000) * 1000;
        const std::string tsText = isoMillis(ts);
        const std::int64_t in = static_cast<std::int64_t>(rng() % 5000);
        const std::int64_t out = static_cast<std::int64_t>(rng() % 2000);
        const std::int64_t cacheRead = static_cast<std::int64_t>(rng() % 100000);
        const std::int64_t cacheCreate = static_cast<std::int64_t>(rng() % 20000);
        const std::int64_t reasoning = std::string(model->provider) == "claude" ? 0 : out / 3;
        const double cost = (static_cast<double>(in) * model->usdPerMTokIn +
                             static_cast<double>(out) * model->usdPerMTokOut) /
                            1e6;
        const double c = unit(rng);
        const char* costSource = c < 0.95    ? "rate_card"
                                 : c < 0.98  ? "live"
                                 : c < 0.995 ? "estimated"
                                             : "unknown";
        const char* speed =
            std::string(model->provider) == "claude" && rng() % 33 == 0 ? "fast" : "standard";
        auto& s = stmt;
        s.bind(1, model->provider).bind(2, project).bind(3, session).bind(4, tsText);
        s.bind(5, std::string_view(tsText).substr(0, 10)).bind(6, model->name).bind(7, speed);
        s.bind(8, in).bind(9, out).bind(10, cacheRead).bind(11, cacheCreate).bind(12, reasoning);
        s.bind(13, cost).bind(14, costSource).bind(15, "bench:" + std::to_string(i));
        check(s.run(), "insert event");
    }
    check(store::foldEventCounts(db), "fold the event counts");  // as the daemon's writer does
    check(tx.commit(), "commit events");
}

// The marts by the store's own full rebuild, watermarks at max(id).
void fillMarts(store::Connection& db, UnixMicros now) {
    check(store::rebuildMarts(db, now), "rebuild the marts");
}

void buildStore(const Args& args, const std::string& path) {
    auto db = check(store::openWriter(path), "open the store");
    check(db.exec("PRAGMA cache_size = -262144"), "cache_size");  // 256 MiB while building
    std::mt19937_64 rng(20260724);
    std::vector<std::int64_t> projectIds;
    {
        auto tx = check(store::Transaction::begin(db), "begin projects");
        for (int p = 0; p < kProjects; ++p) {
            const char* provider = p % 10 < 7 ? "claude" : p % 10 < 9 ? "codex" : "gemini";
            projectIds.push_back(check(
                store::ensureProject(db, provider, "-home-user-src-project" + std::to_string(p),
                                     "/home/user/src/project" + std::to_string(p), 1.7e9, 1.7e9),
                "project"));
        }
        check(tx.commit(), "commit projects");
    }
    const auto t0 = Clock::now();
    insertEvents(db, 0, args.events, projectIds, rng);
    const auto t1 = Clock::now();
    fillMarts(db, kLastDayStart);
    const auto t2 = Clock::now();
    insertEvents(db, args.events, args.extraEvents, projectIds, rng);
    store::DaemonSnapshot snap;
    snap.pid = 1;
    snap.version = "bench";
    snap.startedAt = kLastDayStart;
    snap.lastRefresh = kLastDayStart;
    snap.eventsInLastCycle = args.extraEvents;
    snap.recordedAt = kLastDayStart;
    check(store::recordDaemonState(db, snap), "daemon state");
    check(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
    const auto t3 = Clock::now();
    auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
    std::printf(
        "store: %ld + %ld events built in %.1f s (events %.1f s, marts %.1f s, rest %.1f s)\n",
        args.events, args.extraEvents, secs(t3 - t0), secs(t1 - t0), secs(t2 - t1), secs(t3 - t2));
}

// ---- measurements ---------------------------------------------------------

struct Stats {
    double median = 0, p99 = 0, max = 0;
    std::size_t n = 0;
};

Stats stats(std::vector<double> ms) {
    Stats s;
    if (ms.empty()) return s;
    std::sort(ms.begin(), ms.end());
    s.n = ms.size();
    const std::size_t mid = s.n / 2;
    s.median = s.n % 2 ? ms[mid] : (ms[mid - 1] + ms[mid]) / 2;
    s.p99 = ms[static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(s.n))) - 1];
    s.max = ms.back();
    return s;
}

double msSince(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int connectTo(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// One request line out, one reply line back.
class LineConnection {
  public:
    explicit LineConnection(int fd) : fd_(fd) {}
    ~LineConnection() { ::close(fd_); }
    std::string roundTrip(const std::string& line) {
        for (std::size_t done = 0; done < line.size();) {
            const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("write to etld failed");
            done += static_cast<std::size_t>(n);
        }
        for (;;) {
            const auto nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                std::string reply = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return reply;
            }
            char buf[65536];
            const ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("etld closed the connection");
            buffer_.append(buf, static_cast<std::size_t>(n));
        }
    }

  private:
    int fd_;
    std::string buffer_;
};

// posix_spawn, not a bare fork(): after building the store this process is
// large, and copying its page tables on every fork would be charged to the
// program under test. (glibc spawns with CLONE_VM|CLONE_VFORK.)
pid_t spawn(const std::vector<std::string>& argv, const std::string& stdoutPath,
            const std::string& stderrPath) {
    std::vector<char*> cargs;
    for (const auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
    cargs.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, stderrPath.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, cargs[0], &actions, nullptr, cargs.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) die(std::string("cannot start ") + argv[0] + ": " + std::strerror(rc));
    return pid;
}

// Reaps a child: its exit status (or 128 + signal), and the CPU time it used
// (user + system, ms) when `cpuMs` is given.
int waitExit(pid_t pid, double* cpuMs = nullptr) {
    int status = 0;
    rusage usage{};
    while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    if (cpuMs) {
        auto ms = [](const timeval& tv) {
            return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3;
        };
        *cpuMs = ms(usage.ru_utime) + ms(usage.ru_stime);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string readFile(const std::string& path) {
    std::string out;
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
        std::fclose(f);
    }
    return out;
}

Stats benchDaemon(const Args& args, const std::string& dir, const std::string& storePath,
                  std::int64_t expectedTotal) {
    const std::string socketPath = dir + "/etld.sock";
    const std::string empty = dir + "/no-sources";
    std::filesystem::create_directories(empty);
    const std::string log = dir + "/etld.log";
    ::setenv("HOME", dir.c_str(), 1);  // nothing of the real home is watched
    const pid_t etld = spawn({args.etld, "--db", storePath, "--socket", socketPath, "--no-watch",
                              "--log-level", "warning", "--claude-config-dir", empty,
                              "--codex-home", empty, "--gemini-data-dir", empty},
                             log, log);
    int fd = -1;
    const auto started = Clock::now();
    while ((fd = connectTo(socketPath)) < 0) {
        int status = 0;
        if (::waitpid(etld, &status, WNOHANG) == etld)
            die("etld exited while starting; its log:\n" + readFile(log));
        if (msSince(started) > kStartupTimeoutMs) {
            ::kill(etld, SIGKILL);
            die("etld did not listen within the start-up timeout");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a benchmark may poll
    }
    std::printf("daemon: etld answering after %.0f ms\n", msSince(started));

    std::vector<double> ms;
    {
        LineConnection conn(fd);
        std::int64_t id = 0;
        for (int i = 0; i < kWarmupRequests + args.requests; ++i) {
            const std::string line = protocol::requestLine(++id, "status");
            const auto t = Clock::now();
            const std::string reply = conn.roundTrip(line);
            const double elapsed = msSince(t);
            if (i == 0) {
                auto r = protocol::parseResponse(reply);
                if (!r || !r->ok) die("status failed: " + reply);
                const auto& events = r->result["events"];
                if (events["total"].GetInt64() != expectedTotal)
                    die("etld reports " + std::to_string(events["total"].GetInt64()) +
                        " events, expected " + std::to_string(expectedTotal));
            }
            if (i >= kWarmupRequests) ms.push_back(elapsed);
        }
    }
    ::kill(etld, SIGTERM);
    const int rc = waitExit(etld);
    if (rc != 0)
        std::fprintf(stderr, "status_bench: etld exited with %d; log:\n%s", rc,
                     readFile(log).c_str());
    return stats(ms);
}

struct ProcessStats {
    Stats wall, cpu;
};

// Runs `argv` runs + 1 times from spawn to exit; the first run is checked by
// `checkFirst` (given its stdout) and not counted: it warms the page cache.
ProcessStats benchProcess(const std::vector<std::string>& argv, int runs, const std::string& dir,
                          const std::function<void(const std::string&)>& checkFirst) {
    const std::string out = dir + "/process.out";
    const std::string err = dir + "/process.err";
    std::vector<double> ms, cpuMs;
    for (int i = 0; i < runs + 1; ++i) {
        const auto t = Clock::now();
        const pid_t pid = spawn(argv, out, err);
        double used = 0;
        const int rc = waitExit(pid, &used);
        const double elapsed = msSince(t);
        if (rc != 0) die(argv[0] + " exited with " + std::to_string(rc) + ": " + readFile(err));
        if (i == 0) {
            checkFirst(readFile(out));
            continue;
        }
        ms.push_back(elapsed);
        cpuMs.push_back(used);
    }
    return {stats(ms), stats(cpuMs)};
}

ProcessStats benchEtlctl(const Args& args, const std::string& dir, const std::string& storePath,
                         std::int64_t expectedTotal) {
    return benchProcess(
        {args.etlctl, "--db", storePath, "status", "--offline", "--format", "json"}, args.runs, dir,
        [&](const std::string& json) {
            rapidjson::Document doc;
            doc.Parse(json.data(), json.size());
            if (!doc.IsObject() || doc["events"]["total"].GetInt64() != expectedTotal)
                die("etlctl's document does not show the store's events: " + json.substr(0, 200));
        });
}

// The floor: what starting any process costs on this machine at this load.
ProcessStats benchTrue(const Args& args, const std::string& dir) {
    return benchProcess({"/bin/true"}, args.runs, dir, [](const std::string&) {});
}

Stats benchInProcess(const Args& args, const std::string& storePath) {
    std::vector<double> ms;
    for (int i = 0; i < args.runs + 1; ++i) {
        const auto t = Clock::now();
        auto db = check(store::openReader(storePath), "open reader");
        auto in = check(store::readStatusInput(db, storePath), "read status input");
        const auto doc = status::assembleStatus(in, SystemClock().now());
        const double elapsed = msSince(t);
        if (!doc.IsObject()) die("no document");
        if (i > 0) ms.push_back(elapsed);
    }
    return stats(ms);
}

void row(const char* what, const Stats& s, double goal) {
    if (goal > 0)
        std::printf("%-44s %6zu %9.3f %9.3f %9.3f %8.1f %7.3f\n", what, s.n, s.median, s.p99, s.max,
                    goal, s.median / goal);
    else
        std::printf("%-44s %6zu %9.3f %9.3f %9.3f %8s %7s\n", what, s.n, s.median, s.p99, s.max,
                    "-", "-");
}

// The first line of /proc/<file> that starts with `key`, after its colon.
std::string procField(const char* file, const char* key) {
    std::string text = readFile(std::string("/proc/") + file);
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        const std::string line = text.substr(at, end - at);
        if (line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            std::string v = colon == std::string::npos ? line : line.substr(colon + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
        at = end + 1;
    }
    return "?";
}

std::string loadAverage() {
    const std::string l = readFile("/proc/loadavg");
    return l.substr(0, l.find(' ', l.find(' ', l.find(' ') + 1) + 1));
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    Args args = parseArgs(argc, argv);
    std::string dir = args.dir;
    if (dir.empty()) {
        std::string pattern = "/tmp/etld-bench-XXXXXX";
        if (!::mkdtemp(pattern.data())) die("mkdtemp failed");
        dir = pattern;
    }
    std::filesystem::create_directories(dir);
    args.etld = std::filesystem::absolute(args.etld).string();
    args.etlctl = std::filesystem::absolute(args.etlctl).string();
    const std::string storePath = dir + "/etl.db";
    std::printf("machine: %ld CPUs (%s), %s memory; SQLite %s; load average %s\n",
                ::sysconf(_SC_NPROCESSORS_ONLN), procField("cpuinfo", "model name").c_str(),
                procField("meminfo", "MemTotal").c_str(), sqlite3_libversion(),
                loadAverage().c_str());
    std::int64_t total = args.events + args.extraEvents;
    if (!std::filesystem::exists(storePath)) {
        buildStore(args, storePath);
    } else if (args.reuse) {  // a store kept by an earlier run (--keep)
        auto db = check(store::openReader(storePath), "open the kept store");
        status::StatusInput counts;
        check(store::readCounters(db, counts), "count");
        total = counts.eventsTotal;
        std::printf("store: reusing %s (%lld events)\n", storePath.c_str(),
                    static_cast<long long>(total));
    } else {
        die(storePath + " exists; give an empty --dir, or --reuse");
    }
    const Stats daemon = benchDaemon(args, dir, storePath, total);
    const ProcessStats ctl = benchEtlctl(args, dir, storePath, total);
    const ProcessStats floor = benchTrue(args, dir);
    const Stats inProcess = benchInProcess(args, storePath);

    std::printf("\n%-44s %6s %9s %9s %9s %8s %7s\n", "path", "n", "median ms", "p99 ms", "max ms",
                "goal ms", "ratio");
    row("daemon: status over one socket connection", daemon, kDaemonGoalMs);
    row("store: etlctl status --offline (process)", ctl.wall, kStoreGoalMs);
    row("  the same, CPU time (user + system)", ctl.cpu, kStoreGoalMs);
    row("store: open + read + assemble (in-process)", inProcess, 0);
    row("floor: /bin/true (process)", floor.wall, 0);
    row("  the same, CPU time (user + system)", floor.cpu, 0);
    std::printf("(%ld events; ratio = median / goal, below 1 meets the goal; load average %s)\n",
                static_cast<long>(total), loadAverage().c_str());

    if (!args.keep) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    } else {
        std::printf("kept %s\n", dir.c_str());
    }
    return 0;
}
