#include "verbs.h"

#include <unistd.h>

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
    auto db = store::openReader(g.storePath);
    if (!db) return fail(NoDocument::Unknown, "cannot read the store: " + db.error().message);
    auto in = store::readStatusInput(*db, g.storePath);
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
    if (!Client::connect(g.socketPath, timeoutMs, client, err)) {
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

// Parses a verb's options; prints the error and returns nullopt on bad ones.
std::optional<cxxopts::ParseResult> parseVerbArgs(cxxopts::Options& spec,
                                                  const std::vector<std::string>& args) {
    std::vector<const char*> argv{spec.program().c_str()};
    for (const auto& a : args) argv.push_back(a.c_str());
    try {
        auto parsed = spec.parse(static_cast<int>(argv.size()), argv.data());
        if (!parsed.unmatched().empty()) {
            std::fprintf(stderr, "etlctl: unexpected argument '%s'\n", parsed.unmatched().front().c_str());
            return std::nullopt;
        }
        return parsed;
    } catch (const cxxopts::exceptions::exception& e) {
        std::fprintf(stderr, "etlctl: %s\n", e.what());
        return std::nullopt;
    }
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
    auto parsed = parseVerbArgs(spec, args);
    if (!parsed) return badArgs;
    if (parsed->count("help")) {
        std::fputs(spec.help().c_str(), stdout);
        return kExitOk;
    }
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
    auto parsed = parseVerbArgs(spec, args);
    if (!parsed) return kExitBadArguments;
    if (parsed->count("help")) {
        std::fputs(spec.help().c_str(), stdout);
        return kExitOk;
    }
    const std::string format = (*parsed)["format"].as<std::string>();
    const int timeoutMs = (*parsed)["timeout"].as<int>();
    if ((format != "text" && format != "json") || timeoutMs <= 0) {
        std::fprintf(stderr, "etlctl: --format must be text or json and --timeout positive\n");
        return kExitBadArguments;
    }
    Client client;
    ClientError err;
    protocol::Response reply;
    rapidjson::Document params(rapidjson::kObjectType);
    params.AddMember("timeout_ms", timeoutMs, params.GetAllocator());
    // The socket deadline leaves the daemon time to answer `unavailable` itself.
    if (!Client::connect(g.socketPath, timeoutMs + kDefaultTimeoutMs, client, err) ||
        !client.call("sync", &params, reply, err)) {
        std::fprintf(stderr, "etlctl: %s\n", err.message.c_str());
        return kExitFailed;
    }
    if (!reply.ok) {
        std::fprintf(stderr, "etlctl: sync failed: %s: %s\n", reply.errorCode.c_str(),
                     reply.errorMessage.c_str());
        return kExitFailed;
    }
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
    auto parsed = parseVerbArgs(spec, args);
    if (!parsed) return kExitBadArguments;
    if (parsed->count("help")) {
        std::fputs(spec.help().c_str(), stdout);
        return kExitOk;
    }
    Client client;
    ClientError err;
    protocol::Response reply;
    if (!Client::connect(g.socketPath, (*parsed)["timeout"].as<int>(), client, err) ||
        !client.call(method, nullptr, reply, err)) {
        std::fprintf(stderr, "etlctl: %s\n", err.message.c_str());
        return kExitFailed;
    }
    if (!reply.ok) {
        std::fprintf(stderr, "etlctl: %s: %s\n", reply.errorCode.c_str(), reply.errorMessage.c_str());
        return kExitFailed;
    }
    std::printf("%s\n", done);
    return kExitOk;
}

int runPing(const GlobalOptions& g, const std::vector<std::string>& args) {
    return runSimple(g, args, "ping", "pong");
}

int runRefresh(const GlobalOptions& g, const std::vector<std::string>& args) {
    return runSimple(g, args, "refresh", "refresh scheduled");
}

}  // namespace

const std::vector<Verb>& verbs() {
    static const std::vector<Verb> table = {
        {"status", "the pipeline's health, from the daemon or the store", &runStatus},
        {"ping", "check that the daemon answers", &runPing},
        {"sync", "wait until the store and marts hold every complete line on disk", &runSync},
        {"refresh", "schedule a full rescan and cycle; answers at once", &runRefresh},
    };
    return table;
}

}  // namespace etld::ctl
