// etlctl's verbs: a table of {name, summary, handler}. Each handler returns
// the process exit code; the status verb's codes are the status spec's table.
#pragma once

#include <string>
#include <vector>

namespace etld::ctl {

struct GlobalOptions {
    std::string socketPath;  // resolved: flag, ETLD_SOCKET, default
    std::string storePath;   // resolved: flag, ETLD_DB, default
    bool storeGiven = false; // --db or ETLD_DB named one: check the daemon serves it
};

struct Verb {
    const char* name;
    const char* summary;
    int (*run)(const GlobalOptions& global, const std::vector<std::string>& args);
};

const std::vector<Verb>& verbs();

// Exit codes shared by every verb (status --check has its own table).
constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadArguments = 2;

}  // namespace etld::ctl
