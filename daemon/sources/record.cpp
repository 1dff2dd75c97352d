#include "sources/record.h"

#include <vector>

namespace etld::sources {

std::string_view providerName(Provider provider) {
    switch (provider) {
        case Provider::Claude:
            return "claude";
        case Provider::Codex:
            return "codex";
        case Provider::Gemini:
            return "gemini";
    }
    return "claude";
}

std::optional<Provider> providerFromName(std::string_view name) {
    if (name == "claude") return Provider::Claude;
    if (name == "codex") return Provider::Codex;
    if (name == "gemini") return Provider::Gemini;
    return std::nullopt;
}

std::string_view speedName(Speed speed) {
    return speed == Speed::Fast ? "fast" : "standard";
}

std::string_view costSourceName(CostSource source) {
    switch (source) {
        case CostSource::Live:
            return "live";
        case CostSource::RateCard:
            return "rate_card";
        case CostSource::Estimated:
            return "estimated";
        case CostSource::Unknown:
            return "unknown";
    }
    return "rate_card";
}

std::optional<CostSource> costSourceFromName(std::string_view name) {
    if (name == "live") return CostSource::Live;
    if (name == "rate_card") return CostSource::RateCard;
    if (name == "estimated") return CostSource::Estimated;
    if (name == "unknown") return CostSource::Unknown;
    return std::nullopt;
}

namespace {

std::vector<std::string_view> splitPath(std::string_view path) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (start <= path.size()) {
        const std::size_t slash = path.find('/', start);
        const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
        if (end > start) parts.push_back(path.substr(start, end - start));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return parts;
}

// The file name without its last extension.
std::string_view stem(std::string_view name) {
    const std::size_t dot = name.rfind('.');
    return dot == std::string_view::npos || dot == 0 ? name : name.substr(0, dot);
}

}  // namespace

PathIdentity pathIdentity(Provider provider, std::string_view relativePath) {
    const std::vector<std::string_view> parts = splitPath(relativePath);
    PathIdentity id;
    if (parts.empty()) {
        id.projectSlug = std::string(kUnknownProject);
        return id;
    }
    const std::string_view fileStem = stem(parts.back());
    switch (provider) {
        case Provider::Claude:
            id.projectSlug =
                parts.size() >= 2 ? std::string(parts[0]) : std::string(kUnknownProject);
            id.sessionId = parts.size() >= 3 ? std::string(parts[1]) : std::string(fileStem);
            break;
        case Provider::Codex:
            id.sessionId = std::string(fileStem);
            id.projectSlug = "codex-" + id.sessionId;
            break;
        case Provider::Gemini:
            id.projectSlug =
                parts.size() >= 2 ? std::string(parts[0]) : std::string(kUnknownProject);
            id.sessionId = std::string(fileStem);
            break;
    }
    return id;
}

std::string projectSlugFromCwd(std::string_view cwd) {
    std::string slug(cwd);
    for (char& c : slug) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) c = '-';
    }
    return slug;
}

std::string sourcePathOf(std::uint32_t rootIndex, std::string_view relativePath) {
    std::string path = std::to_string(rootIndex);
    path += '/';
    path += relativePath;
    return path;
}

FileContext makeFileContext(Provider provider, std::uint32_t rootIndex,
                            std::string_view relativePath, UnixMicros mtime) {
    FileContext ctx;
    ctx.provider = provider;
    ctx.rootIndex = rootIndex;
    ctx.relativePath = std::string(relativePath);
    ctx.mtime = mtime;
    ctx.sourcePath = sourcePathOf(rootIndex, relativePath);
    PathIdentity id = pathIdentity(provider, relativePath);
    ctx.pathProject = std::move(id.projectSlug);
    ctx.pathSession = std::move(id.sessionId);
    return ctx;
}

void setTimestamp(UsageRecord& record, UnixMicros ts) {
    record.ts = ts;
    record.tsText = formatEventTime(ts);
    record.day = record.tsText.substr(0, 10);
}

}  // namespace etld::sources
