#include "log.h"

#include <unistd.h>

#include <string>

namespace etld::daemon::log {
namespace {

LogLevel gLevel = LogLevel::Info;
bool gJournal = false;

void emit(LogLevel level, int syslogPriority, std::string_view tag, std::string_view message) {
    if (static_cast<int>(level) > static_cast<int>(gLevel)) return;
    std::string line;
    if (gJournal) {
        line = "<" + std::to_string(syslogPriority) + ">";
    } else {
        line = "etld: ";
        line += tag;
    }
    line += message;
    line += '\n';
    // One write per line, so lines from the writer thread never interleave.
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void setLevel(LogLevel level) { gLevel = level; }
void setJournalPrefixes(bool on) { gJournal = on; }

void error(std::string_view m) { emit(LogLevel::Error, 3, "error: ", m); }
void warning(std::string_view m) { emit(LogLevel::Warning, 4, "warning: ", m); }
void info(std::string_view m) { emit(LogLevel::Info, 6, "", m); }
void debug(std::string_view m) { emit(LogLevel::Debug, 7, "debug: ", m); }

}  // namespace etld::daemon::log
