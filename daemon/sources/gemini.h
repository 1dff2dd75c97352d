// Gemini CLI sessions (provider `gemini`): `<root>/<project>/chats/session-*.json`
// rewritten whole on every message, and the newer append-only `.jsonl`.
//
// `.json`: one object `{sessionId, startTime, lastUpdated, messages: [...]}`,
// parsed whole (pretty-printed is fine) each time the file changes. A file
// that does not parse — caught mid-write — is an error here: the caller
// leaves what it read last and retries when the file changes again. Records
// are the `messages[]` entries with `type == "gemini"` and a `tokens` object;
// their model is the message's `model` only (none: ignored). A record's
// offset is its index in `messages`.
//
// `.jsonl`: the first line is a header (`sessionId`, `startTime`,
// `lastUpdated`); records are lines with `type == "gemini"` and a `tokens`
// object; their model is the line's `model`, else the last model seen in the
// file (any line's `model`; none: ignored). A repeated `id` is a revision:
// the last one wins (identity.h). The header and the last model are state.
//
// Both: the session is the file's `sessionId`, else the file's stem; the
// project is the first directory under the root. The timestamp is the
// message's `timestamp`, else its `created_at`, else the session's
// `startTime`, else its `lastUpdated`, else the file's mtime (a value that
// does not parse counts as absent). A message without an `id` is named by
// its position (`@<byte offset>` in `.jsonl`, `#<index>` in `.json`).
//
// Tokens from `tokens{input, output, cached, thoughts, tool, total}` (absent
// or null: 0; anything but a non-negative integer: the line or message is
// skipped): when `cached > 0` and `total == input + output + thoughts +
// tool`, the input includes the cached tokens and they are taken out
// (saturating at 0); `tool` is added to input; cache read `cached`; output
// `output + thoughts`; reasoning `thoughts`. All zero: ignored. raw_extras
// keeps `{"tool_tokens":N}` when N > 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sources/pricing.h"
#include "sources/record.h"
#include "util/result.h"

namespace etld::sources {

// Whole `.json` files larger than this are not read (and are counted as
// skipped by the caller): a parse holds the whole file and its DOM in
// memory, and real session files stay far below it.
constexpr std::uint64_t kMaxGeminiJsonBytes = 64ull * 1024 * 1024;

struct GeminiFileState {
    bool headerSeen = false;
    std::string sessionId;
    std::optional<UnixMicros> startTime;
    std::optional<UnixMicros> lastUpdated;
    std::string lastModel;

    bool operator==(const GeminiFileState&) const = default;
};

// Compact JSON: `{"v":1,"header":true,"session":..,"start":..,"updated":..,"model":..}`
// (times in Unix microseconds). Loading "" gives the state of a file not read yet.
std::string saveGeminiState(const GeminiFileState& state);
Result<GeminiFileState> loadGeminiState(std::string_view text);

// One complete `.jsonl` line (no newline) at byte `offset`.
LineResult parseGeminiLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                           GeminiFileState& state, const PriceTable& prices);

struct GeminiJsonResult {
    std::vector<UsageRecord> records;
    std::uint64_t skippedMessages = 0;  // records with invalid token counts
};

// A whole `.json` session file. Error `not_json` when it does not parse or is
// not an object (caught mid-write).
Result<GeminiJsonResult> parseGeminiJsonFile(std::string_view bytes, const FileContext& file,
                                             const PriceTable& prices);

}  // namespace etld::sources
