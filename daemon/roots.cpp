#include "roots.h"

#include <sys/stat.h>

#include "util/paths.h"

namespace etld::daemon {
namespace {

std::vector<std::string> splitCommaList(const std::string& value) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string::npos) comma = value.size();
        std::string item = value.substr(start, comma - start);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && (item.back() == ' ' || (item.size() > 1 && item.back() == '/')))
            item.pop_back();
        if (!item.empty()) out.push_back(item);
        start = comma + 1;
    }
    return out;
}

bool isDirectory(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string baseName(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool endsWith(const std::string& s, const char* suffix) {
    const std::string suf(suffix);
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

std::vector<ProviderRoots> resolveRoots(const std::vector<std::string>& claudeFlags,
                                        const std::vector<std::string>& codexFlags,
                                        const std::vector<std::string>& geminiFlags) {
    using sources::Provider;
    const std::string home = homeDirectory();
    auto pick = [](const std::vector<std::string>& flags, const char* env,
                   std::vector<std::string> defaults) {
        if (!flags.empty()) {
            std::vector<std::string> out;
            for (const auto& f : flags)
                for (auto& item : splitCommaList(f)) out.push_back(std::move(item));
            return out;
        }
        if (auto v = envValue(env)) return splitCommaList(*v);
        return defaults;
    };
    const std::string xdgConfig = envValue("XDG_CONFIG_HOME").value_or(home + "/.config");
    return {
        {Provider::Claude,
         pick(claudeFlags, "CLAUDE_CONFIG_DIR", {xdgConfig + "/claude", home + "/.claude"})},
        {Provider::Codex, pick(codexFlags, "CODEX_HOME", {home + "/.codex"})},
        {Provider::Gemini, pick(geminiFlags, "GEMINI_DATA_DIR", {home + "/.gemini/tmp"})},
    };
}

std::vector<ScanDir> scanDirs(const ProviderRoots& roots) {
    using sources::Provider;
    std::vector<ScanDir> out;
    for (std::uint32_t i = 0; i < roots.roots.size(); ++i) {
        const std::string& root = roots.roots[i];
        switch (roots.provider) {
            case Provider::Claude:
                out.push_back({roots.provider, i, root,
                               baseName(root) == "projects" ? root : root + "/projects", false});
                break;
            case Provider::Codex: {
                const bool sessions = isDirectory(root + "/sessions");
                const bool archived = isDirectory(root + "/archived_sessions");
                if (!sessions && !archived && isDirectory(root)) {
                    out.push_back({roots.provider, i, root, root, false});
                } else {
                    // Both are listed even when missing, so that they are
                    // watched for and picked up when the agent creates them.
                    out.push_back({roots.provider, i, root, root + "/sessions", false});
                    out.push_back({roots.provider, i, root, root + "/archived_sessions", true});
                }
                break;
            }
            case Provider::Gemini:
                out.push_back({roots.provider, i, root, root, false});
                break;
        }
    }
    return out;
}

bool isSourceFile(sources::Provider provider, const std::string& name) {
    if (provider == sources::Provider::Gemini)
        return endsWith(name, ".jsonl") || endsWith(name, ".json");
    return endsWith(name, ".jsonl");
}

}  // namespace etld::daemon
