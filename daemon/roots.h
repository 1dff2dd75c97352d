// Where each provider's logs live (sources.md, "Roots"), resolved once at
// start-up from flags, then the agents' own variables, then their defaults.
//
// A configured root names a directory that may not exist yet; the directory
// the provider *scans* is derived from it (Claude: `<root>/projects`, or the
// root itself when it names `projects/`; Codex: `<root>/sessions` and
// `<root>/archived_sessions`, or the root itself when it has neither; Gemini:
// the root). File names in the store are "<root index>/<path relative to the
// scanned directory>", the root index being the position in its provider's
// configured list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sources/record.h"

namespace etld::daemon {

struct ScanDir {
    sources::Provider provider;
    std::uint32_t rootIndex;
    std::string root;     // as configured
    std::string path;     // the directory scanned
    bool archive = false; // Codex archived_sessions/: loses to sessions/ on equal relative paths
};

struct ProviderRoots {
    sources::Provider provider;
    std::vector<std::string> roots;  // configured, in order
};

// flags (may be empty) -> the configured roots of each provider.
std::vector<ProviderRoots> resolveRoots(const std::vector<std::string>& claudeFlags,
                                        const std::vector<std::string>& codexFlags,
                                        const std::vector<std::string>& geminiFlags);

// The directories to scan for one provider's roots, as the disk is now.
std::vector<ScanDir> scanDirs(const ProviderRoots& roots);

// Whether a file name is one the provider reads.
bool isSourceFile(sources::Provider provider, const std::string& name);

}  // namespace etld::daemon
