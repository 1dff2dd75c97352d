// UsageRecord: one billable model response as a provider's parser reads it.
//
// A parser turns the bytes of one source file (plus that file's saved parser
// state) into records; nothing here knows about libuv or SQLite. A record
// carries three kinds of fields:
//
//  * what `usage_events` stores (store.md): provider, project slug and cwd,
//    session, timestamp (Unix microseconds plus the normalised text
//    `YYYY-MM-DDTHH:MM:SS.mmmZ`, fractions truncated) and its UTC day, model,
//    speed, the four token counts, reasoning tokens, cost and its source, role
//    and raw_extras — plus the 1-hour share of the cache writes, a column of
//    ours, so that an event can be re-priced from its stored tokens alone;
//  * its event key (identity.h): the record's identity across files and
//    re-reads, as the parser sees it on its own (Claude rule 3 may later
//    attach a sidechain record to another event);
//  * what decides which of two records with one key wins (identity.h):
//    Claude's message.id, requestId, isSidechain and whether the line carried
//    `usage.speed`; for id-less Claude records the hash of the line's bytes and
//    how many identical lines precede it in its file; for every record the
//    file it came from and the byte offset of its line.
//
// Files are named by `sourcePath`: the root's position in the configured list
// of roots, a '/', then the path relative to the directory the provider scans
// (`projects/`, `sessions/`, the Gemini root), '/'-separated. One file so has
// one name however its root was written, and comparing two names bytewise
// (std::string's order, SQLite's BINARY collation) is the "smallest relative
// path" of the winner rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "util/time.h"

namespace etld::sources {

enum class Provider { Claude, Codex, Gemini };

// `claude`, `codex`, `gemini`: the `provider` column.
std::string_view providerName(Provider provider);
std::optional<Provider> providerFromName(std::string_view name);

enum class Speed { Standard, Fast };
// `standard` or `fast`: the `speed` column.
std::string_view speedName(Speed speed);

// How cost_usd was obtained: the line's own figure (`live`), the price table
// (`rate_card`), an estimate (`estimated`, reserved: no parser produces it
// yet), or not at all because the table does not know the model (`unknown`,
// cost 0).
enum class CostSource { Live, RateCard, Estimated, Unknown };
std::string_view costSourceName(CostSource source);
std::optional<CostSource> costSourceFromName(std::string_view name);

// The file a line comes from, as the parsers need it. Build it with
// makeFileContext so the derived fields agree with the path.
struct FileContext {
    Provider provider = Provider::Claude;
    std::uint32_t rootIndex = 0;  // position of the root in the configured list
    std::string relativePath;     // '/'-separated, relative to the scanned dir
    UnixMicros mtime = 0;         // the file's mtime (Gemini's last timestamp fallback)
    std::string sourcePath;       // "<rootIndex>/<relativePath>"
    std::string pathProject;      // project slug the path implies (pathIdentity)
    std::string pathSession;      // session id the path implies (pathIdentity)
};

FileContext makeFileContext(Provider provider, std::uint32_t rootIndex,
                            std::string_view relativePath, UnixMicros mtime);
// "<rootIndex>/<relativePath>"
std::string sourcePathOf(std::uint32_t rootIndex, std::string_view relativePath);

// What a file's path says about its project and session, before its records
// say more:
//  * Claude: the project is the first directory under `projects/`; the
//    session is the file's stem for `<project>/<session>.jsonl`, the second
//    component for `<project>/<session>/subagents/...` and deeper.
//  * Codex: the session is the file's stem (session_meta's id replaces it);
//    the project is `codex-<session>` (the slug of session_meta's cwd
//    replaces it).
//  * Gemini: the project is the first directory under the root; the session
//    is the file's stem (the file's sessionId replaces it).
// A file directly under the scanned directory has no project directory: its
// project is `unknown`.
struct PathIdentity {
    std::string projectSlug;
    std::string sessionId;
};
PathIdentity pathIdentity(Provider provider, std::string_view relativePath);

// Claude Code's project-directory naming applied to a working directory:
// every byte that is not an ASCII letter or digit becomes '-'
// (`/Users/me/app` -> `-Users-me-app`).
std::string projectSlugFromCwd(std::string_view cwd);

constexpr std::string_view kUnknownProject = "unknown";

struct UsageRecord {
    // --- usage_events fields ---
    Provider provider = Provider::Claude;
    std::string eventKey;  // identity.h; the record's own key
    std::string projectSlug;
    std::string cwd;  // the working directory the record names, "" if none
    std::string sessionId;
    UnixMicros ts = 0;
    std::string tsText;  // YYYY-MM-DDTHH:MM:SS.mmmZ
    std::string day;     // YYYY-MM-DD, UTC
    std::string model;   // "" when the line names none
    Speed speed = Speed::Standard;
    std::int64_t inputTokens = 0;   // fresh input only
    std::int64_t outputTokens = 0;  // includes reasoning
    std::int64_t cacheReadTokens = 0;
    std::int64_t cacheCreateTokens = 0;    // 5-minute + 1-hour writes
    std::int64_t cacheCreate1hTokens = 0;  // the 1-hour share of cacheCreateTokens
    std::int64_t reasoningTokens = 0;
    double costUsd = 0.0;
    CostSource costSource = CostSource::RateCard;
    std::optional<double> liveCostUsd;  // the line's own cost (Claude costUSD), if any
    std::string role = "assistant";
    std::string rawExtras;  // compact JSON object, "" for NULL

    // --- identity and winner inputs ---
    std::string messageId;              // Claude message.id; Gemini message id
    std::string requestId;              // Claude requestId
    bool isSidechain = false;           // Claude isSidechain == true
    bool hasSpeed = false;              // Claude usage.speed present
    std::string lineHash;               // id-less Claude records: hash of the line's bytes
    std::uint64_t identicalBefore = 0;  // ... and identical lines before it in its file
    std::string sourcePath;             // FileContext::sourcePath
    std::uint64_t sourceOffset = 0;     // byte offset of the line (Gemini .json: message index)

    std::int64_t tokenSum() const {
        return inputTokens + outputTokens + cacheReadTokens + cacheCreateTokens;
    }
    bool operator==(const UsageRecord&) const = default;
};

// Sets ts, tsText and day from a parsed instant.
void setTimestamp(UsageRecord& record, UnixMicros ts);

// The outcome of one line: not a usage record at all (prompts, summaries,
// repeated Codex totals, headers), a record, or a skipped line (malformed,
// invalid or too long; counted per provider in status).
struct LineResult {
    enum class Kind { NotUsage, Record, Skipped };
    Kind kind = Kind::NotUsage;
    std::optional<UsageRecord> record;  // set when kind == Record
    std::string_view reason;            // set when kind == Skipped; static text

    static LineResult notUsage() { return {}; }
    static LineResult skipped(std::string_view why) { return {Kind::Skipped, std::nullopt, why}; }
    static LineResult of(UsageRecord r) { return {Kind::Record, std::move(r), {}}; }
};

}  // namespace etld::sources
