// Default locations (store.md, protocol.md) and environment conventions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace etld {

// $XDG_STATE_HOME/etld/etl.db, else ~/.local/state/etld/etl.db.
std::string defaultStorePath();
// $XDG_RUNTIME_DIR/etld/etld.sock, else /tmp/etld-<uid>/etld.sock.
std::string defaultSocketPath();
// The single-instance lock file beside a store.
std::string lockPathFor(const std::string& storePath);
// The user's home directory ($HOME, else the password database).
std::string homeDirectory();

// 1/true/yes/on, trimmed, any case (ETLD_DISABLE_WATCHER and friends).
bool isTruthy(std::string_view value);
// getenv as an optional; an empty value counts as unset.
std::optional<std::string> envValue(const char* name);

// Canonical absolute form of a path for comparison (realpath of the parent
// directory plus the file name), or the path itself when that fails.
std::string canonicalPath(const std::string& path);

// Creates `dir` and its parents with `mode` for the directories it creates.
bool makeDirectories(const std::string& dir, unsigned mode);
std::string parentDirectory(const std::string& path);

}  // namespace etld
