// etld: flags -> options -> run. Nothing else lives here.
#include <csignal>
#include <cstdio>
#include <exception>

#include "daemon.h"
#include "etld_config.h"
#include "log.h"
#include "util/paths.h"

int main(int argc, char** argv) {
    using namespace etld::daemon;
    std::signal(SIGPIPE, SIG_IGN);  // a vanished client is that client's error
    try {
        auto inv = parseInvocation(argc, argv);
        if (!inv) {
            std::fprintf(stderr, "etld: %s\n", inv.error().message.c_str());
            return 2;
        }
        if (inv->action == Invocation::Action::PrintVersion) {
            std::printf("etld %s\n", ETLD_VERSION);
            return 0;
        }
        if (inv->action == Invocation::Action::PrintHelp) {
            std::fputs(inv->helpText.c_str(), stdout);
            return 0;
        }
        log::setLevel(inv->options.logLevel);
        log::setJournalPrefixes(etld::envValue("JOURNAL_STREAM").has_value());
        Daemon daemon(std::move(inv->options));
        return daemon.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "etld: fatal: %s\n", e.what());
        return 1;
    }
}
