#include "util/paths.h"

#include <limits.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace etld {

std::optional<std::string> envValue(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    return std::string(v);
}

std::string homeDirectory() {
    if (auto home = envValue("HOME")) return *home;
    if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) return pw->pw_dir;
    return "/";
}

std::string defaultStorePath() {
    if (auto state = envValue("XDG_STATE_HOME")) return *state + "/etld/etl.db";
    return homeDirectory() + "/.local/state/etld/etl.db";
}

std::string defaultSocketPath() {
    if (auto runtime = envValue("XDG_RUNTIME_DIR")) return *runtime + "/etld/etld.sock";
    return "/tmp/etld-" + std::to_string(getuid()) + "/etld.sock";
}

std::string lockPathFor(const std::string& storePath) { return storePath + ".lock"; }

bool isTruthy(std::string_view value) {
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
        value.remove_prefix(1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
        value.remove_suffix(1);
    std::string lower;
    for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower == "1" || lower == "true" || lower == "yes" || lower == "on";
}

std::string parentDirectory(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string canonicalPath(const std::string& path) {
    char buf[PATH_MAX];
    if (realpath(path.c_str(), buf)) return buf;
    const std::string parent = parentDirectory(path);
    if (realpath(parent.c_str(), buf)) {
        const auto slash = path.find_last_of('/');
        return std::string(buf) + "/" + (slash == std::string::npos ? path : path.substr(slash + 1));
    }
    return path;
}

bool makeDirectories(const std::string& dir, unsigned mode) {
    if (dir.empty()) return false;
    struct stat st {};
    if (stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
    const std::string parent = parentDirectory(dir);
    if (parent != dir && !makeDirectories(parent, mode)) return false;
    return mkdir(dir.c_str(), mode) == 0 || errno == EEXIST;
}

}  // namespace etld
