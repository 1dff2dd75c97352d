// The marts refresh engine: usage_events (and event_retractions) -> the five
// marts, incrementally, with work proportional to what is absorbed.
//
// Pure store code: every function runs on the connection it is given, on the
// caller's thread (in the daemon, the writer thread). The engine keeps no
// state in memory between calls; everything it knows is in the store and
// moves in the same transaction as the rows it accounts for (invariant 5),
// so a crash between two refreshes loses nothing and counts nothing twice.
// See marts.cpp for the algorithm and docs/schema.md for the helper tables.
#pragma once

#include <cstdint>

#include "store/sqlite.h"
#include "util/time.h"

namespace etld::store {

struct RefreshStats {
    // Events added to the marts by this call (the most any mart absorbed).
    std::int64_t eventsAbsorbed = 0;
    // Retractions taken back out of the marts (the most any mart applied);
    // retractions of ids a mart never absorbed are consumed but not counted.
    std::int64_t retractionsApplied = 0;
    // False when the call stopped at `maxEvents` with more to absorb: call again.
    bool caughtUp = true;
    // The lowest watermark over the five marts after the call.
    std::int64_t watermark = 0;
};

// One bounded refresh step in its own BEGIN IMMEDIATE transaction: every
// mart takes back the retractions written since its retraction watermark
// (those whose old id it had absorbed), then absorbs the events above its
// event watermark — at most `maxEvents` rows (retractions and events
// together) per mart — and moves both watermarks and last_refresh_ts (`now`,
// status form) in the same commit. `maxEvents` must be at least 1.
Result<RefreshStats> refreshMarts(Connection& db, UnixMicros now, std::int64_t maxEvents);

// The same step inside a write transaction the caller has open (so that an
// ingest step and its refresh commit together). Fails with "no_transaction"
// when none is open. On any error the caller must roll back: the step may
// have written part of its rows.
Result<RefreshStats> refreshMartsInTransaction(Connection& db, UnixMicros now,
                                               std::int64_t maxEvents);

// Empties every mart and helper table and absorbs all of usage_events again,
// in one BEGIN IMMEDIATE transaction; leaves the event watermarks at
// MAX(usage_events.id) and the retraction watermarks at the latest
// retraction. Work proportional to the store (it is the full rebuild).
Status rebuildMarts(Connection& db, UnixMicros now);

// The same inside the caller's open write transaction.
Status rebuildMartsInTransaction(Connection& db, UnixMicros now);

}  // namespace etld::store
