#include "sources/identity.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "sources/json_util.h"

namespace etld::sources {

std::string claudeMessageKey(std::string_view messageId, std::string_view requestId) {
    return json::Builder()
        .beginArray()
        .str("claude")
        .str("msg")
        .str(messageId)
        .str(requestId)
        .endArray()
        .text();
}

std::string claudeSessionKey(std::string_view messageId, std::string_view sessionId) {
    return json::Builder()
        .beginArray()
        .str("claude")
        .str("msg-session")
        .str(messageId)
        .str(sessionId)
        .endArray()
        .text();
}

std::string claudeLineKey(std::string_view sessionId, std::string_view hash,
                          std::uint64_t identicalBefore) {
    return json::Builder()
        .beginArray()
        .str("claude")
        .str("line")
        .str(sessionId)
        .str(hash)
        .u64(identicalBefore)
        .endArray()
        .text();
}

std::string codexKey(std::string_view tsText, std::string_view model, const CodexKeyTokens& t) {
    return json::Builder()
        .beginArray()
        .str("codex")
        .str(tsText)
        .str(model)
        .i64(t.input)
        .i64(t.cached)
        .i64(t.output)
        .i64(t.reasoning)
        .i64(t.total)
        .endArray()
        .text();
}

std::string geminiKey(std::string_view sourcePath, std::string_view messageId) {
    return json::Builder()
        .beginArray()
        .str("gemini")
        .str(sourcePath)
        .str(messageId)
        .endArray()
        .text();
}

std::string lineHash(std::string_view bytes) {
    // FNV-1a, 64-bit: offset basis and prime from the FNV specification.
    constexpr std::uint64_t kOffsetBasis = 14695981039346656037ULL;
    constexpr std::uint64_t kPrime = 1099511628211ULL;
    std::uint64_t h = kOffsetBasis;
    for (const char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= kPrime;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i) {
        out[static_cast<std::size_t>(i)] = kHex[h & 0xF];
        h >>= 4;
    }
    return out;
}

std::string claudeRule2Key(const UsageRecord& r) {
    return r.requestId.empty() ? claudeSessionKey(r.messageId, r.sessionId)
                               : claudeMessageKey(r.messageId, r.requestId);
}

std::string claudeOwnKey(const UsageRecord& r) {
    if (r.messageId.empty()) return claudeLineKey(r.sessionId, r.lineHash, r.identicalBefore);
    if (r.isSidechain) return claudeSessionKey(r.messageId, r.sessionId);
    return claudeRule2Key(r);
}

bool claudeSidechainBelongsTo(const UsageRecord& side, const UsageRecord& main) {
    if (!side.isSidechain || main.isSidechain) return false;
    if (side.messageId.empty() || side.messageId != main.messageId) return false;
    if (side.sessionId == main.sessionId) return true;
    return !side.requestId.empty() && side.requestId == main.requestId;
}

namespace {

// (sourcePath, sourceOffset), the positional tie-breaker of every provider.
bool positionBefore(const UsageRecord& a, const UsageRecord& b) {
    return std::tie(a.sourcePath, a.sourceOffset) < std::tie(b.sourcePath, b.sourceOffset);
}

bool betterClaude(const UsageRecord& a, const UsageRecord& b) {
    if (a.isSidechain != b.isSidechain) return !a.isSidechain;
    if (a.tokenSum() != b.tokenSum()) return a.tokenSum() > b.tokenSum();
    if (a.costUsd != b.costUsd) return a.costUsd > b.costUsd;
    if (a.hasSpeed != b.hasSpeed) return a.hasSpeed;
    return positionBefore(a, b);
}

}  // namespace

bool betterRecord(const UsageRecord& a, const UsageRecord& b) {
    switch (a.provider) {
        case Provider::Claude:
            return betterClaude(a, b);
        case Provider::Codex:
            return positionBefore(a, b);
        case Provider::Gemini:
            return positionBefore(b, a);
    }
    return false;
}

std::vector<UsageRecord> resolveEvents(std::vector<UsageRecord> records) {
    // Rule 3 needs to know, for every Claude message, the events of its
    // non-sidechain records: by rule-2 key, and by (session, message.id).
    std::set<std::string> mainRule2Keys;
    std::map<std::pair<std::string, std::string>, std::string> mainKeyBySession;
    for (const UsageRecord& r : records) {
        if (r.provider != Provider::Claude || r.isSidechain || r.messageId.empty()) continue;
        const std::string key = claudeRule2Key(r);
        mainRule2Keys.insert(key);
        auto [it, inserted] = mainKeyBySession.try_emplace({r.sessionId, r.messageId}, key);
        if (!inserted && key < it->second) it->second = key;
    }

    std::map<std::pair<Provider, std::string>, UsageRecord> winners;
    for (UsageRecord& r : records) {
        std::string key = r.provider == Provider::Claude ? claudeOwnKey(r) : r.eventKey;
        if (r.provider == Provider::Claude && r.isSidechain && !r.messageId.empty()) {
            std::string viaRequest =
                r.requestId.empty() ? std::string() : claudeMessageKey(r.messageId, r.requestId);
            if (!viaRequest.empty() && mainRule2Keys.count(viaRequest) != 0) {
                key = std::move(viaRequest);
            } else if (auto it = mainKeyBySession.find({r.sessionId, r.messageId});
                       it != mainKeyBySession.end()) {
                key = it->second;
            }
        }
        r.eventKey = key;
        auto [it, inserted] = winners.try_emplace({r.provider, std::move(key)}, r);
        if (!inserted && betterRecord(r, it->second)) it->second = std::move(r);
    }

    std::vector<UsageRecord> out;
    out.reserve(winners.size());
    for (auto& [key, record] : winners) out.push_back(std::move(record));
    return out;
}

}  // namespace etld::sources
