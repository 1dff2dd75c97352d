// etlctl's verbs: a table of {name, summary, handler}. Each handler returns
// the process exit code; the status verb's codes are the status spec's table.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace etld::ctl {

// The current user's system-manager instance (etld@<user>.service), whose
// paths the template unit fixes.
struct SystemInstance {
    std::string socketPath;  // /run/etld/<user>/etld.sock
    std::string storePath;   // /var/lib/etld/<user>/etl.db
};
constexpr const char* kSystemRuntimeDir = "/run/etld";
constexpr const char* kSystemStateDir = "/var/lib/etld";
// The system instance of the user running etlctl, or nullopt when the
// password database does not name them.
std::optional<SystemInstance> systemInstanceForCurrentUser();

struct GlobalOptions {
    std::string socketPath;  // resolved: flag, ETLD_SOCKET, default
    std::string storePath;   // resolved: flag, ETLD_DB, default
    bool storeGiven = false; // --db or ETLD_DB named one: check the daemon serves it
    // Tried after the defaults when nothing answers at the default socket
    // (and its store, when the default store does not exist); set only when
    // none of --socket, --db, ETLD_SOCKET, ETLD_DB was given.
    std::optional<SystemInstance> systemInstance;
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
