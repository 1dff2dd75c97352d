#include "verbs.h"

#include <pwd.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <optional>

#include "client.h"
#include "status/render.h"
#include "status/status.h"
#include "store/store.h"
#include "util/paths.h"
#include "util/time.h"

namespace etld::ctl {
namespace {

// How long etlctl waits for the daemon by default (status spec).
constexpr int kDefaultTimeoutMs = 2000;
// The password database's buffer when sysconf cannot say.
constexpr long kPasswdBufferBytes = 16384;

// stat() succeeds, or fails for another reason than absence (a directory we
// cannot search may still hold a store: try it and report what it says).
bool mayExist(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 || errno != ENOENT;
}

// The store the fallback reads: the resolved one, or the system instance's
// when the resolved (default) one does not exist and the system one may.
std::string storeToRead(const GlobalOptions& g) {
    if (g.systemInstance && !mayExist(g.storePath) && mayExist(g.systemInstance->storePath))
        return g.systemInstance->storePath;
    return g.storePath;
}

// Connects to the resolved socket and, when nothing answers there (refused
// or absent), to the system instance's if it is to be tried. Whatever the
// second socket says other than "nothing here" is the answer; when neither
// answers, the error names both.
bool connectDaemon(const GlobalOptions& g, int timeoutMs, Client& client, ClientError& err) {
    if (Client::connect(g.socketPath, timeoutMs, client, err)) return true;
    if (err.kind != Failure::NoDaemon || !g.systemInstance) return false;
    ClientError systemErr;
    if (Client::connect(g.systemInstance->socketPath, timeoutMs, client, systemErr)) return true;
    if (systemErr.kind != Failure::NoDaemon) {
        err = systemErr;
        return false;
    }
    err.message += "; nor at the system instance's " + g.systemInstance->socketPath;
    return false;
}

// Why no status document could be had, in the --check table's terms.
enum class NoDocument {
    DaemonUnresponsive,  // accepted, then no answer in time / closed / reset / an error reply: 2
    Unknown,             // no daemon and no readable store, permission, schema, wrong store: 3
};

struct Obtained {
    rapidjson::Document doc;
    status::Answerer who = status::Answerer::Daemon;
    std::optional<NoDocument> failure;
    std::string message;
};

Obtained fail(NoDocument kind, std::string message) {
    Obtained o;
    o.failure = kind;
    o.message = std::move(message);
    return o;
}

Obtained fromStore(const GlobalOptions& g) {
    const std::string path = storeToRead(g);
    auto db = store::openReader(path);
    if (!db) return fail(NoDocument::Unknown, "cannot read the store: " + db.error().message);
    auto in = store::readStatusInput(*db, path);
    if (!in) return fail(NoDocument::Unknown, "cannot read the store: " + in.error().message);
    Obtained o;
    o.doc = status::assembleStatus(*in, SystemClock().now());
    o.who = status::Answerer::Store;
    return o;
}

Obtained obtainStatus(const GlobalOptions& g, bool offline, bool noFallback, int timeoutMs) {
    if (offline) return fromStore(g);
    Client client;
    ClientError err;
    if (!connectDaemon(g, timeoutMs, client, err)) {
        if (err.kind == Failure::NoDaemon && !noFallback) return fromStore(g);
        return fail(NoDocument::Unknown, err.message);
    }
    protocol::Response reply;
    auto unresponsive = [&](const ClientError& e) {
        return fail(e.kind == Failure::PermissionDenied ? NoDocument::Unknown
                                                        : NoDocument::DaemonUnresponsive,
                    e.message);
    };
    if (g.storeGiven) {
        if (!client.call("hello", nullptr, reply, err)) return unresponsive(err);
        if (!reply.ok)
            return fail(NoDocument::DaemonUnresponsive, "hello failed: " + reply.errorMessage);
        auto it = reply.result.FindMember("store");
        const std::string served = it != reply.result.MemberEnd() && it->value.IsString()
                                       ? it->value.GetString()
                                       : std::string();
        if (served != canonicalPath(g.storePath))
            return fail(NoDocument::Unknown, "the daemon at " + g.socketPath + " serves " + served +
                                                 ", not " + canonicalPath(g.storePath));
    }
    if (!client.call("status", nullptr, reply, err)) return unresponsive(err);
    if (!reply.ok)
        return fail(NoDocument::DaemonUnresponsive,
                    "the daemon answered " + reply.errorCode + ": " + reply.errorMessage);
    Obtained o;
    o.doc.Swap(reply.result);
    o.who = status::Answerer::Daemon;
    return o;
}

bool colorWanted() { return isatty(STDOUT_FILENO) && !envValue("NO_COLOR"); }

// Parses a verb's options. Returns nullopt when the verb is done already:
// `exitCode` is then kExitOk after --help, or `badArgs` after an error.
std::optional<cxxopts::ParseResult> parseVerbArgs(cxxopts::Options& spec,
                                                  const std::vector<std::string>& args,
                                                  int& exitCode, int badArgs = kExitBadArguments) {
    std::vector<const char*> argv{spec.program().c_str()};
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
        auto parsed = spec.parse(static_cast<int>(argv.size()), argv.data());
        if (!parsed.unmatched().empty()) {
            std::fprintf(stderr, "etlctl: unexpected argument '%s'\n", parsed.unmatched().front().c_str());
            exitCode = badArgs;
            return std::nullopt;
        }
        if (parsed.count("help")) {
            std::fputs(spec.help().c_str(), stdout);
            exitCode = kExitOk;
            return std::nullopt;
        }
        return parsed;
    } catch (const cxxopts::exceptions::exception& e) {
        std::fprintf(stderr, "etlctl: %s\n", e.what());
        exitCode = badArgs;
        return std::nullopt;
    }
}

// Connects and calls one method. On any failure prints one line (with the
// running job's id when the daemon named one) and returns false.
bool callDaemon(const GlobalOptions& g, int timeoutMs, std::string_view method,
                const rapidjson::Value* params, Client& client, protocol::Response& reply,
                const char* hint = "") {
    ClientError err;
    if (!connectDaemon(g, timeoutMs, client, err) || !client.call(method, params, reply, err)) {
        std::fprintf(stderr, "etlctl: %s%s\n", err.message.c_str(), hint);
        return false;
    }
    if (reply.ok) return true;
    std::string job;
    if (reply.errorData.IsObject())
        if (auto it = reply.errorData.FindMember("job_id"); it != reply.errorData.MemberEnd() && it->value.IsString())
            job = std::string(" (job ") + it->value.GetString() + ")";
    std::fprintf(stderr, "etlctl: %.*s failed: %s: %s%s\n", static_cast<int>(method.size()), method.data(),
                 reply.errorCode.c_str(), reply.errorMessage.c_str(), job.c_str());
    return false;
}

int runStatus(const GlobalOptions& g, const std::vector<std::string>& args) {
    cxxopts::Options spec("etlctl status", "the pipeline's health");
    spec.add_options()
        ("format", "text or json", cxxopts::value<std::string>()->default_value("text"))
        ("check", "one monitoring-plugin line; exit 0 ok, 1 warning, 2 critical, 3 unknown")
        ("offline", "read the store without asking the daemon")
        ("no-fallback", "never read the store; only the daemon answers")
        ("timeout", "milliseconds to wait for the daemon", cxxopts::value<int>()->default_value(std::to_string(kDefaultTimeoutMs)))
        ("h,help", "this help");
    bool check = false;
    for (const auto& a : args) check = check || a == "--check";
    // Bad arguments: 2, except under --check, whose table says 3 (UNKNOWN).
    const int badArgs = check ? 3 : kExitBadArguments;
    int exitCode = kExitOk;
    auto parsed = parseVerbArgs(spec, args, exitCode, badArgs);
    if (!parsed) return exitCode;
    const std::string format = (*parsed)["format"].as<std::string>();
    const int timeoutMs = (*parsed)["timeout"].as<int>();
    if (format != "text" && format != "json") {
        std::fprintf(stderr, "etlctl: --format must be text or json\n");
        return badArgs;
    }
    if (timeoutMs <= 0) {
        std::fprintf(stderr, "etlctl: --timeout must be a positive number of milliseconds\n");
        return badArgs;
    }
    const bool offline = parsed->count("offline") > 0;
    const bool noFallback = parsed->count("no-fallback") > 0;
    if (offline && noFallback) {
        std::fprintf(stderr, "etlctl: --offline and --no-fallback exclude each other\n");
        return badArgs;
    }

    Obtained got = obtainStatus(g, offline, noFallback, timeoutMs);
    if (check) {
        if (got.failure) {
            const bool critical = *got.failure == NoDocument::DaemonUnresponsive;
            std::printf("ETLD %s - %s\n", critical ? "CRITICAL" : "UNKNOWN", got.message.c_str());
            return critical ? 2 : 3;
        }
        auto line = status::renderCheck(got.doc, got.who);
        std::printf("%s\n", line.line.c_str());
        return line.exitCode;
    }
    if (got.failure) {
        std::fprintf(stderr, "etlctl: %s\n", got.message.c_str());
        return kExitFailed;
    }
    const std::string out = format == "json" ? status::renderJsonSorted(got.doc)
                                             : status::renderText(got.doc, colorWanted());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

// sync: a barrier; prints the resulting status like `status` does.
int runSync(const GlobalOptions& g, const std::vector<std::string>& args) {
    cxxopts::Options spec("etlctl sync", "wait until every complete line on disk is in the store and the marts");
    spec.add_options()
        ("format", "text or json", cxxopts::value<std::string>()->default_value("text"))
        ("quiet", "print nothing; only the exit code")
        ("timeout", "milliseconds the daemon may take", cxxopts::value<int>()->default_value("30000"))
        ("h,help", "this help");
    int exitCode = kExitOk;
    auto parsed = parseVerbArgs(spec, args, exitCode);
    if (!parsed) return exitCode;
    const std::string format = (*parsed)["format"].as<std::string>();
    const int timeoutMs = (*parsed)["timeout"].as<int>();
    if ((format != "text" && format != "json") || timeoutMs <= 0) {
        std::fprintf(stderr, "etlctl: --format must be text or json and --timeout positive\n");
        return kExitBadArguments;
    }
    Client client;
    protocol::Response reply;
    rapidjson::Document params(rapidjson::kObjectType);
    params.AddMember("timeout_ms", timeoutMs, params.GetAllocator());
    // The socket deadline leaves the daemon time to answer `unavailable` itself.
    if (!callDaemon(g, timeoutMs + kDefaultTimeoutMs, "sync", &params, client, reply))
        return kExitFailed;
    if (parsed->count("quiet")) return kExitOk;
    const std::string out = format == "json" ? status::renderJsonSorted(reply.result)
                                             : status::renderText(reply.result, colorWanted());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
}

// A verb that sends one method without params and reports success.
int runSimple(const GlobalOptions& g, const std::vector<std::string>& args, const char* method,
              const char* done) {
    cxxopts::Options spec(std::string("etlctl ") + method, "");
    spec.add_options()
        ("timeout", "milliseconds to wait", cxxopts::value<int>()->default_value(std::to_string(kDefaultTimeoutMs)))
        ("h,help", "this help");
    int exitCode = kExitOk;
    auto parsed = parseVerbArgs(spec, args, exitCode);
    if (!parsed) return exitCode;
    Client client;
    protocol::Response reply;
    if (!callDaemon(g, (*parsed)["timeout"].as<int>(), method, nullptr, client, reply))
        return kExitFailed;
    std::printf("%s\n", done);
    return kExitOk;
}

// One line of progress: a bar on a terminal, nothing elsewhere.
void drawProgress(const rapidjson::Value& job) {
    auto num = [&](const char* k) -> double {
        auto it = job.FindMember(k);
        return it != job.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : 0.0;
    };
    const double done = num("bytes_done"), total = num("bytes_total");
    const double fraction = total > 0 ? std::min(1.0, done / total) : 0.0;
    constexpr int kBarWidth = 30;
    const int filled = static_cast<int>(fraction * kBarWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kBarWidth, '.');
    std::fprintf(stderr, "\r[%s] %3d%%  %s / %s bytes  %s events  %.1f MB/s", bar.c_str(),
                 static_cast<int>(fraction * 100), status::withThousands(static_cast<long long>(done)).c_str(),
                 status::withThousands(static_cast<long long>(total)).c_str(),
                 status::withThousands(static_cast<long long>(num("events_done"))).c_str(),
                 num("bytes_per_second") / 1e6);
    if (auto eta = job.FindMember("eta_seconds"); eta != job.MemberEnd() && eta->value.IsInt64())
        std::fprintf(stderr, "  eta %llds", static_cast<long long>(eta->value.GetInt64()));
    std::fflush(stderr);
}

// backfill: starts the job; --wait follows it to its end (exit 1 if it failed).
int runBackfill(const GlobalOptions& g, const std::vector<std::string>& args) {
    cxxopts::Options spec("etlctl backfill", "rescan every root (--force: re-read and re-price everything)");
    spec.add_options()
        ("force", "re-read every file from its first byte, re-price every event, rebuild the marts")
        ("wait", "follow the job until it ends; a progress bar on a terminal")
        ("h,help", "this help");
    int exitCode = kExitOk;
    auto parsed = parseVerbArgs(spec, args, exitCode);
    if (!parsed) return exitCode;
    Client client;
    ClientError err;
    protocol::Response reply;
    rapidjson::Document params(rapidjson::kObjectType);
    params.AddMember("force", parsed->count("force") > 0, params.GetAllocator());
    if (!callDaemon(g, kDefaultTimeoutMs, "backfill", &params, client, reply,
                    " (etlctl never writes the store; with the daemon down, run 'etld --backfill')"))
        return kExitFailed;
    const std::string jobId = reply.result["job_id"].GetString();
    std::printf("backfill %s started\n", jobId.c_str());
    if (!parsed->count("wait")) return kExitOk;
    std::fflush(stdout);
    const bool bar = isatty(STDERR_FILENO);
    constexpr int kPollMs = 200;  // a person watching; not a test
    for (;;) {
        if (!client.call("status", nullptr, reply, err) || !reply.ok) {
            std::fprintf(stderr, "\netlctl: lost the daemon while waiting: %s\n",
                         reply.ok ? err.message.c_str() : reply.errorMessage.c_str());
            return kExitFailed;
        }
        const auto& doc = reply.result;
        auto cur = doc.FindMember("current_job");
        if (cur != doc.MemberEnd() && cur->value.IsObject() &&
            std::string(cur->value["job_id"].GetString()) == jobId) {
            if (bar) drawProgress(cur->value);
            poll(nullptr, 0, kPollMs);
            continue;
        }
        if (bar) std::fprintf(stderr, "\n");
        auto last = doc.FindMember("last_job");
        if (last == doc.MemberEnd() || !last->value.IsObject() ||
            std::string(last->value["job_id"].GetString()) != jobId) {
            std::fprintf(stderr, "etlctl: the job ended but its record is gone\n");
            return kExitFailed;
        }
        const auto& job = last->value;
        const std::string result = job["status"].GetString();
        const auto started = parseStatusTime(job["started_at"].GetString());
        const auto completed = parseStatusTime(job["completed_at"].GetString());
        const double seconds = started && completed ? static_cast<double>(*completed - *started) / 1e6 : 0;
        if (result != "complete") {
            auto e = job.FindMember("error");
            std::printf("backfill %s failed after %.1fs: %s\n", jobId.c_str(), seconds,
                        e != job.MemberEnd() && e->value.IsString() ? e->value.GetString() : "unknown error");
            return kExitFailed;
        }
        std::printf("backfill %s complete in %.1fs: %s events in the store\n", jobId.c_str(), seconds,
                    status::withThousands(doc["events"]["total"].GetInt64()).c_str());
        return kExitOk;
    }
}

int runPing(const GlobalOptions& g, const std::vector<std::string>& args) {
    return runSimple(g, args, "ping", "pong");
}

int runRefresh(const GlobalOptions& g, const std::vector<std::string>& args) {
    return runSimple(g, args, "refresh", "refresh scheduled");
}

}  // namespace

std::optional<SystemInstance> systemInstanceForCurrentUser() {
    const long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(static_cast<std::size_t>(size > 0 ? size : kPasswdBufferBytes));
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found)
        return std::nullopt;
    const std::string user = found->pw_name ? found->pw_name : "";
    if (user.empty() || user == "." || user == ".." || user.find('/') != std::string::npos)
        return std::nullopt;
    return SystemInstance{std::string(kSystemRuntimeDir) + "/" + user + "/etld.sock",
                          std::string(kSystemStateDir) + "/" + user + "/etl.db"};
}

const std::vector<Verb>& verbs() {
    static const std::vector<Verb> table = {
        {"status", "the pipeline's health, from the daemon or the store", &runStatus},
        {"ping", "check that the daemon answers", &runPing},
        {"sync", "wait until the store and marts hold every complete line on disk", &runSync},
        {"refresh", "schedule a full rescan and cycle; answers at once", &runRefresh},
        {"backfill", "rescan everything as a tracked job (--force: re-read, re-price, rebuild)", &runBackfill},
    };
    return table;
}

}  // namespace etld::ctl
