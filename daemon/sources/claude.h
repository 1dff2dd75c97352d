// Claude Code transcripts (`projects/**/*.jsonl`, provider `claude`).
//
// One line is one JSON object. It is a usage record when its `message.usage`
// is an object (the line's `type` is not checked); an agent-progress line
// (`data.message.message.usage`) carries the same record one level down, in
// `data.message`. For such a line each line-level field (timestamp,
// sessionId, requestId, cwd, version, costUSD, isApiErrorMessage,
// isSidechain) is read from `data.message` when it has it, else from the
// outer line — the progress copy lives in the main transcript, so it is not
// a sidechain unless it says so, and rule 3 folds the subagent's own
// sidechain copy into it.
//
// Skipped lines (malformed or invalid; counted):
//  * malformed JSON;
//  * `input_tokens` or `output_tokens` missing, or any token count (those
//    two, `cache_read_input_tokens`, `cache_creation_input_tokens`,
//    `cache_creation.ephemeral_5m_input_tokens`/`_1h_`) not a non-negative
//    integer;
//  * a timestamp that is not ISO-8601 with `Z` or an offset (or none);
//  * a `version` not starting `N.N.N`;
//  * an empty `sessionId`, `requestId`, `message.id` or `message.model`;
//  * `null` written for `cwd`, `version`, `sessionId`, `requestId`,
//    `costUSD`, `isApiErrorMessage`, `message.id`, `message.model`,
//    `usage.speed`, `usage.cache_read_input_tokens` or
//    `usage.cache_creation_input_tokens`;
//  * one of those keys present with the wrong JSON type (a string costUSD, a
//    numeric sessionId, ...): ccusage rejects such lines too.
// `usage: null` or a non-object usage is simply not a usage record.
//
// Tokens: input `input_tokens`; output `output_tokens`; cache read
// `cache_read_input_tokens`; cache create `ephemeral_5m + ephemeral_1h` of
// `usage.cache_creation` when that object exists (the 1-hour share kept in
// cacheCreate1hTokens), else `cache_creation_input_tokens` (all 5-minute).
// `usage.speed == "fast"` makes speed fast; any speed string counts as
// "has speed" for the winner rule. A `costUSD` number is the record's live
// cost, used as it is.
//
// State: for id-less records (rule 1) the number of identical lines seen so
// far in this file, by line hash. Only id-less usage lines enter it, so it
// stays empty for transcripts of current Claude Code versions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "sources/pricing.h"
#include "sources/record.h"
#include "util/result.h"

namespace etld::sources {

struct ClaudeFileState {
    std::map<std::string, std::uint64_t> idlessSeen;  // line hash -> lines seen

    bool operator==(const ClaudeFileState&) const = default;
};

// Compact JSON: `{"v":1,"idless":{"<hash>":n,...}}`. Loading "" gives the
// state of a file not read yet.
std::string saveClaudeState(const ClaudeFileState& state);
Result<ClaudeFileState> loadClaudeState(std::string_view text);

// One complete line (no newline) at byte `offset` of the file. A skipped line
// leaves `state` as it was.
LineResult parseClaudeLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                           ClaudeFileState& state, const PriceTable& prices);

}  // namespace etld::sources
