// Identity and winners: which records are one event, and which record of an
// event is stored (sources.md, "Identity" and "Which record of an event
// wins" per provider).
//
// Both are functions of the SET of records, never of the order they were
// read in. This file is the pure, in-memory reference: resolveEvents takes
// every record of a corpus and returns one winner per event. The daemon's
// incremental, store-based ingest applies the same rules one batch at a
// time, with the key builders and betterRecord below, and the tests compare
// the two.
//
// Event keys are compact JSON arrays, so no id can be confused with a
// separator and the text stays readable in the store:
//   Claude, rule 2      ["claude","msg",<message.id>,<requestId>]
//   Claude, no request  ["claude","msg-session",<message.id>,<session>]
//   Claude, rule 1      ["claude","line",<session>,<line hash>,<identical before>]
//   Codex               ["codex",<ts text>,<model>,<input>,<cached>,<output>,
//                        <reasoning>,<total or input+output>]
//   Gemini              ["gemini",<sourcePath>,<message id>]
// (numbers are JSON numbers). A sidechain record's own key is
// ["claude","msg-session",<message.id>,<session>] — the same text a
// non-sidechain record of that session without requestId would have, so such
// a pair meets under one key by itself.
//
// Claude rule 3 (sidechains): a sidechain record belongs to the event of a
// non-sidechain record that has its rule-2 key (same message.id and
// requestId), or that is of the same session with the same message.id. When
// several such events exist it is given, deterministically, the rule-2 one,
// else the smallest key — it can never win there (a non-sidechain record
// always beats it), so this choice changes no stored number. With no such
// record, the sidechain records of one session sharing a message.id are one
// event under their own key; when a matching non-sidechain record appears
// later, the daemon merges that event away (store.md, invariant 4).
//
// Winners (betterRecord):
//  * Claude: non-sidechain over sidechain; then the larger sum of the four
//    token counts; then the higher cost; then the one that has `speed`; then
//    the smallest (sourcePath, sourceOffset).
//  * Codex: records of one key are equal; the smallest (sourcePath,
//    sourceOffset) wins.
//  * Gemini: the last revision wins, not the largest: the largest
//    (sourcePath, sourceOffset). One key lives in one file, so this is the
//    later line of a `.jsonl` or the later message of a `.json`.
// Each is a strict total order on distinct records, so the winner never
// depends on the order of comparisons.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sources/record.h"

namespace etld::sources {

// Key builders (see the layout above).
std::string claudeMessageKey(std::string_view messageId, std::string_view requestId);
std::string claudeSessionKey(std::string_view messageId, std::string_view sessionId);
std::string claudeLineKey(std::string_view sessionId, std::string_view lineHash,
                          std::uint64_t identicalBefore);
struct CodexKeyTokens {
    std::int64_t input = 0;   // input_tokens as written (cached included)
    std::int64_t cached = 0;  // cached_input_tokens as written
    std::int64_t output = 0;
    std::int64_t reasoning = 0;
    std::int64_t total = 0;  // total_tokens, or input + output when absent
};
std::string codexKey(std::string_view tsText, std::string_view model, const CodexKeyTokens& t);
std::string geminiKey(std::string_view sourcePath, std::string_view messageId);

// The hash of a line's bytes used by Claude rule 1: 64-bit FNV-1a, as 16
// lowercase hex digits. Its scope is one session (with the count of
// identical lines before it), where an accidental collision between two
// different id-less lines is negligible.
std::string lineHash(std::string_view bytes);

// The key a Claude record has on its own, from its fields: rule 1 for an
// id-less record, the session key for a sidechain, rule 2 otherwise. (Codex
// and Gemini parsers set eventKey directly from values the record does not
// keep.)
std::string claudeOwnKey(const UsageRecord& record);

// The rule-2 key of a Claude record with a message.id: (message.id,
// requestId), or (message.id, session) without requestId.
std::string claudeRule2Key(const UsageRecord& record);

// Rule 3: whether sidechain record `side` belongs to the event of
// non-sidechain record `main`.
bool claudeSidechainBelongsTo(const UsageRecord& side, const UsageRecord& main);

// True when `a` beats `b` under one key (both of one provider).
bool betterRecord(const UsageRecord& a, const UsageRecord& b);

// Every event's winner, with eventKey set to the event's key, sorted by
// (provider, key). Independent of the order of `records`.
std::vector<UsageRecord> resolveEvents(std::vector<UsageRecord> records);

}  // namespace etld::sources
