#include "options.h"

#include <cxxopts.hpp>

#include "util/paths.h"

namespace etld::daemon {
namespace {

Result<LogLevel> parseLogLevel(const std::string& s) {
    if (s == "error") return LogLevel::Error;
    if (s == "warning" || s == "warn") return LogLevel::Warning;
    if (s == "info") return LogLevel::Info;
    if (s == "debug") return LogLevel::Debug;
    return Error{"bad_arguments", "--log-level must be error, warning, info or debug, not '" + s + "'"};
}

}  // namespace

Result<Invocation> parseInvocation(int argc, char** argv) {
    cxxopts::Options spec("etld", "etld — watches AI coding agents' usage logs into a SQLite store");
    spec.add_options()
        ("db", "store path (env ETLD_DB; default $XDG_STATE_HOME/etld/etl.db)", cxxopts::value<std::string>())
        ("socket", "control socket path (env ETLD_SOCKET; default $XDG_RUNTIME_DIR/etld/etld.sock)", cxxopts::value<std::string>())
        ("no-watch", "do not watch the log directories (env ETLD_DISABLE_WATCHER=1)")
        ("log-level", "error, warning, info or debug", cxxopts::value<std::string>()->default_value("info"))
        ("claude-config-dir", "a Claude Code config dir (repeatable; env CLAUDE_CONFIG_DIR)", cxxopts::value<std::vector<std::string>>())
        ("codex-home", "a Codex home (repeatable; env CODEX_HOME)", cxxopts::value<std::vector<std::string>>())
        ("gemini-data-dir", "a Gemini data dir (repeatable; env GEMINI_DATA_DIR)", cxxopts::value<std::vector<std::string>>())
        ("pricing", "a price file in LiteLLM's shape overriding the embedded table", cxxopts::value<std::string>())
        ("backfill", "run a backfill job in the foreground (no socket, no watching), then exit")
        ("force", "with --backfill: re-read every file from its first byte, re-price, rebuild the marts")
        ("version", "print the version and exit")
        ("h,help", "print this help and exit");

    Invocation inv;
    try {
        auto parsed = spec.parse(argc, argv);
        if (!parsed.unmatched().empty())
            return Error{"bad_arguments", "unexpected argument '" + parsed.unmatched().front() + "'"};
        if (parsed.count("help")) {
            inv.action = Invocation::Action::PrintHelp;
            inv.helpText = spec.help();
            return inv;
        }
        if (parsed.count("version")) {
            inv.action = Invocation::Action::PrintVersion;
            return inv;
        }
        Options& o = inv.options;
        o.storePath = parsed.count("db")       ? parsed["db"].as<std::string>()
                      : envValue("ETLD_DB")    ? *envValue("ETLD_DB")
                                               : defaultStorePath();
        o.socketPath = parsed.count("socket")      ? parsed["socket"].as<std::string>()
                       : envValue("ETLD_SOCKET")   ? *envValue("ETLD_SOCKET")
                                                   : defaultSocketPath();
        const auto disable = envValue("ETLD_DISABLE_WATCHER");
        o.watcherEnabled = !parsed.count("no-watch") && !(disable && isTruthy(*disable));
        auto level = parseLogLevel(parsed["log-level"].as<std::string>());
        if (!level) return level.error();
        o.logLevel = *level;
        const auto hooks = envValue("ETLD_TEST_HOOKS");
        o.testHooks = hooks && isTruthy(*hooks);
        if (parsed.count("claude-config-dir"))
            o.claudeRoots = parsed["claude-config-dir"].as<std::vector<std::string>>();
        if (parsed.count("codex-home")) o.codexRoots = parsed["codex-home"].as<std::vector<std::string>>();
        if (parsed.count("gemini-data-dir"))
            o.geminiRoots = parsed["gemini-data-dir"].as<std::vector<std::string>>();
        if (parsed.count("pricing")) o.pricingFile = parsed["pricing"].as<std::string>();
        o.backfill = parsed.count("backfill") > 0;
        o.backfillForce = parsed.count("force") > 0;
        if (o.backfillForce && !o.backfill)
            return Error{"bad_arguments", "--force goes with --backfill"};
    } catch (const cxxopts::exceptions::exception& e) {
        return Error{"bad_arguments", e.what()};
    }
    return inv;
}

}  // namespace etld::daemon
