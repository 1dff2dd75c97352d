// Reading a JSONL file in pieces: the bytes from a checkpoint on, plus the
// parser state saved with that checkpoint, give the records of those bytes
// and the state to save with the new checkpoint.
//
// Only whole lines are consumed (store.md, invariant 3): a trailing line
// without its '\n' is left for the next read, and `consumedBytes` ends just
// after the last '\n'. Because each provider's line parser depends only on
// the line, its offset and the state, reading a file in any number of pieces
// gives exactly the records of one read. A line longer than kMaxLineBytes is
// skipped and counted; the caller that streams a file should not buffer such
// a line at all (skip to its newline), but this function copes if handed one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sources/pricing.h"
#include "sources/record.h"
#include "util/result.h"

namespace etld::sources {

// 16 MiB: far above any real transcript line (a large tool result is a few
// MiB), and a bound on the memory one line may hold.
constexpr std::uint64_t kMaxLineBytes = 16ull * 1024 * 1024;

struct ChunkResult {
    std::vector<UsageRecord> records;
    std::uint64_t skippedLines = 0;
    std::uint64_t consumedBytes = 0;  // from the start of `bytes`, through the last '\n'
    std::string state;                // the parser state after the consumed lines
};

// `bytes` start at byte `startOffset` of the file described by `file`
// (`file.provider` picks the parser; Gemini here means a `.jsonl` session).
// Error `bad_parser_state` when `state` does not load.
Result<ChunkResult> parseJsonlChunk(std::string_view bytes, std::uint64_t startOffset,
                                    const FileContext& file, std::string_view state,
                                    const PriceTable& prices);

}  // namespace etld::sources
