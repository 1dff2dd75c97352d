// etld's command line and environment, resolved into one immutable value.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace etld::daemon {

enum class LogLevel { Error, Warning, Info, Debug };

struct Options {
    std::string storePath;
    std::string socketPath;
    bool watcherEnabled = true;
    LogLevel logLevel = LogLevel::Info;
    bool testHooks = false;  // ETLD_TEST_HOOKS=1 at start-up; never in production
    std::vector<std::string> claudeRoots;
    std::vector<std::string> codexRoots;
    std::vector<std::string> geminiRoots;
    std::string pricingFile;
    bool backfill = false;       // --backfill: run one backfill job in the foreground, then exit
    bool backfillForce = false;  // --force with --backfill
};

// What main() should do.
struct Invocation {
    enum class Action { Run, PrintVersion, PrintHelp } action = Action::Run;
    Options options;
    std::string helpText;
};

// Parses argv and the environment (ETLD_DB, ETLD_SOCKET, ETLD_DISABLE_WATCHER,
// ETLD_TEST_HOOKS); flags win over the environment, which wins over defaults.
Result<Invocation> parseInvocation(int argc, char** argv);

}  // namespace etld::daemon
