// Codex CLI rollouts (`sessions/**/*.jsonl`, `archived_sessions/**/*.jsonl`,
// provider `codex`).
//
// Each line is a JSON object `{"timestamp", "type", "payload"}` — read as
// real JSON, whatever its spacing (the shared fixture is written with spaces
// after ':'). The lines that matter:
//  * `session_meta`: `payload.id` is the session, `payload.cwd` the
//    working directory (the project is its slug, else `codex-<session>`).
//    Its `model` is not used.
//  * `turn_context`: `payload.model` (or `model_name`) sets the file's
//    current model.
//  * `event_msg` with `payload.type == "token_count"`: a usage record.
//    `info` absent or `null` is ignored. A model inside the event
//    (`info.model`, `info.model_name`, `info.metadata.model`,
//    `payload.model`) overrides the current model and becomes it. When
//    `info.total_token_usage` equals the file's previous total the event is a
//    repeat: ignored. Otherwise the usage is `info.last_token_usage`, else
//    the difference of the total from the previous one (saturating at 0 per
//    field); the total, when present, becomes the previous total. All-zero
//    usage (input, cached, output, reasoning) is ignored. Before any model,
//    the model is `gpt-5`, with `{"model_fallback":true}` in raw_extras.
// Tokens: `cached = min(cached_input_tokens, input_tokens)`; input
// `input_tokens − cached`; cache read `cached`; output `output_tokens`
// (reasoning already inside it); reasoning `reasoning_output_tokens`.
//
// Skipped lines: malformed JSON (a truncated line); a usage count that is
// not a non-negative integer (absent or `null` counts as 0); a record whose
// timestamp does not parse (ccusage aborts its whole report there). A
// skipped line leaves the state as it was.
//
// State (so a file read in pieces gives the records of one read): session
// id, cwd, current model, previous total.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sources/pricing.h"
#include "sources/record.h"
#include "util/result.h"

namespace etld::sources {

// One `*_token_usage` object as written.
struct CodexUsage {
    std::int64_t input = 0;
    std::int64_t cached = 0;
    std::int64_t output = 0;
    std::int64_t reasoning = 0;
    std::optional<std::int64_t> total;

    bool operator==(const CodexUsage&) const = default;
};

struct CodexFileState {
    std::string sessionId;
    std::string cwd;
    std::string model;  // "" before any turn_context or token_count model
    std::optional<CodexUsage> previousTotal;

    bool operator==(const CodexFileState&) const = default;
};

// The model of token_count events before any model is known.
constexpr std::string_view kCodexFallbackModel = "gpt-5";

// Compact JSON: `{"v":1,"session":..,"cwd":..,"model":..,"prev":{..}}`.
// Loading "" gives the state of a file not read yet.
std::string saveCodexState(const CodexFileState& state);
Result<CodexFileState> loadCodexState(std::string_view text);

LineResult parseCodexLine(std::string_view line, std::uint64_t offset, const FileContext& file,
                          CodexFileState& state, const PriceTable& prices);

}  // namespace etld::sources
