// The daemon's log: one line per message on stderr. Under systemd
// (JOURNAL_STREAM set) each line starts with its syslog priority, <3> to <7>,
// so the journal files it at the right level. Only daemon/ logs; library
// code returns errors and the caller logs once.
#pragma once

#include <string_view>

#include "options.h"

namespace etld::daemon::log {

void setLevel(LogLevel level);
void setJournalPrefixes(bool on);

void error(std::string_view message);
void warning(std::string_view message);
void info(std::string_view message);
void debug(std::string_view message);

}  // namespace etld::daemon::log
