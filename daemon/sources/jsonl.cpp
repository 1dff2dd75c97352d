#include "sources/jsonl.h"

#include "sources/claude.h"
#include "sources/codex.h"
#include "sources/gemini.h"

namespace etld::sources {

namespace {

// Splits complete lines and feeds them to `parseLine(line, offset)`.
template <typename ParseLine>
void forEachLine(std::string_view bytes, std::uint64_t startOffset, ChunkResult& out,
                 ParseLine&& parseLine) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        const std::size_t nl = bytes.find('\n', pos);
        if (nl == std::string_view::npos) break;  // incomplete: left for the next read
        const std::string_view line = bytes.substr(pos, nl - pos);
        if (line.size() > kMaxLineBytes) {
            ++out.skippedLines;
        } else {
            LineResult result = parseLine(line, startOffset + pos);
            if (result.kind == LineResult::Kind::Record) {
                out.records.push_back(std::move(*result.record));
            } else if (result.kind == LineResult::Kind::Skipped) {
                ++out.skippedLines;
            }
        }
        pos = nl + 1;
        out.consumedBytes = pos;
    }
}

template <typename State, typename Load, typename Save, typename Parse>
Result<ChunkResult> run(std::string_view bytes, std::uint64_t startOffset, const FileContext& file,
                        std::string_view stateText, const PriceTable& prices, Load load, Save save,
                        Parse parse) {
    Result<State> loaded = load(stateText);
    if (!loaded) return loaded.error();
    State state = std::move(loaded).value();
    ChunkResult out;
    forEachLine(bytes, startOffset, out, [&](std::string_view line, std::uint64_t offset) {
        return parse(line, offset, file, state, prices);
    });
    out.state = save(state);
    return out;
}

}  // namespace

Result<ChunkResult> parseJsonlChunk(std::string_view bytes, std::uint64_t startOffset,
                                    const FileContext& file, std::string_view state,
                                    const PriceTable& prices) {
    switch (file.provider) {
        case Provider::Claude:
            return run<ClaudeFileState>(bytes, startOffset, file, state, prices, loadClaudeState,
                                        saveClaudeState, parseClaudeLine);
        case Provider::Codex:
            return run<CodexFileState>(bytes, startOffset, file, state, prices, loadCodexState,
                                       saveCodexState, parseCodexLine);
        case Provider::Gemini:
            return run<GeminiFileState>(bytes, startOffset, file, state, prices, loadGeminiState,
                                        saveGeminiState, parseGeminiLine);
    }
    return Error{"bad_provider", "unknown provider", 0};
}

}  // namespace etld::sources
