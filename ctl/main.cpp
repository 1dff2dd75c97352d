// etlctl: global flags, then a verb from the table in verbs.cpp.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "etld_config.h"
#include "util/paths.h"
#include "verbs.h"

namespace {

void printUsage(FILE* out) {
    std::fprintf(out,
                 "usage: etlctl [--socket PATH] [--db PATH] <verb> [options]\n"
                 "       etlctl --help | --version\n\n"
                 "global options:\n"
                 "  --socket PATH   the daemon's control socket (env ETLD_SOCKET)\n"
                 "  --db PATH       the store (env ETLD_DB); checked against the daemon's\n"
                 "with neither, a daemon at the default socket is asked first, then the\n"
                 "system instance's (/run/etld/$USER/etld.sock, /var/lib/etld/$USER/etl.db)\n\n"
                 "verbs:\n");
    for (const auto& v : etld::ctl::verbs()) std::fprintf(out, "  %-10s %s\n", v.name, v.summary);
    std::fprintf(out, "\n'etlctl <verb> --help' shows a verb's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
    using namespace etld::ctl;
    std::signal(SIGPIPE, SIG_IGN);
    GlobalOptions global;
    std::optional<std::string> socketFlag, dbFlag;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string arg = argv[i];
        auto takeValue = [&](std::optional<std::string>& into) {
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        if (arg == "--help" || arg == "-h") {
            printUsage(stdout);
            return kExitOk;
        } else if (arg == "--version") {
            std::printf("etlctl %s\n", ETLD_VERSION);
            return kExitOk;
        } else if (arg == "--socket") {
            if (!takeValue(socketFlag)) break;
        } else if (arg.rfind("--socket=", 0) == 0) {
            socketFlag = arg.substr(9);
        } else if (arg == "--db") {
            if (!takeValue(dbFlag)) break;
        } else if (arg.rfind("--db=", 0) == 0) {
            dbFlag = arg.substr(5);
        } else {
            break;
        }
    }
    if (i >= argc) {
        std::fprintf(stderr, "etlctl: a verb is required\n");
        printUsage(stderr);
        return kExitBadArguments;
    }
    const std::string verbName = argv[i];
    const Verb* verb = nullptr;
    for (const auto& v : verbs())
        if (verbName == v.name) verb = &v;
    if (!verb) {
        std::fprintf(stderr, "etlctl: unknown verb or option '%s'\n", verbName.c_str());
        printUsage(stderr);
        return kExitBadArguments;
    }
    global.socketPath = socketFlag ? *socketFlag : etld::envValue("ETLD_SOCKET").value_or(etld::defaultSocketPath());
    const auto envDb = etld::envValue("ETLD_DB");
    global.storeGiven = dbFlag.has_value() || envDb.has_value();
    global.storePath = dbFlag ? *dbFlag : envDb.value_or(etld::defaultStorePath());
    if (!socketFlag && !dbFlag && !etld::envValue("ETLD_SOCKET") && !envDb)
        global.systemInstance = systemInstanceForCurrentUser();
    std::vector<std::string> args(argv + i + 1, argv + argc);
    return verb->run(global, args);
}
