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

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

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

// Where a mart stands: the last event id it read past and the last
// retraction it considered (mart_watermark), in the order daily, session,
// project, provider_day, model_day.
struct MartWatermark {
    std::int64_t eventId = 0;
    std::int64_t retractionSeq = 0;
    bool operator==(const MartWatermark&) const = default;
};
using MartWatermarks = std::array<MartWatermark, 5>;

// The reading half of one refresh step, taken apart so that it can run
// ahead on another connection (daemon/mart_prefetcher.h): the rows above a
// set of watermarks, read and folded into deltas. Applying it writes them.
// A snapshot's rows are as good as the writer's own: ids and seqs only grow,
// so a row committed after the snapshot is above what it read, and a row
// deleted after it leaves a retraction above what it consumed, which a
// later step takes back out (the essay in marts.cpp).
class PreparedRefresh {
public:
    struct Impl;
    explicit PreparedRefresh(std::unique_ptr<Impl> impl);
    PreparedRefresh(PreparedRefresh&&) noexcept;
    PreparedRefresh& operator=(PreparedRefresh&&) noexcept;
    ~PreparedRefresh();

    // The watermarks it was read from, and those it leaves.
    const MartWatermarks& from() const;
    const MartWatermarks& to() const;
    // Rows it read, events and retractions (the most any mart did), which
    // maxEvents bounds: 0 when it found nothing to do.
    std::int64_t rows() const;
    // It read everything its snapshot held above `from`.
    bool caughtUp() const;

    Impl& impl() const { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

// Reads the next step above `from` (or, without it, above the stored
// watermarks) on `db`, writing nothing. The caller gives it a consistent
// view: a read transaction of its own, or the writer's open transaction.
// `maxEvents` as for refreshMarts.
Result<PreparedRefresh> prepareRefresh(Connection& db, std::int64_t maxEvents,
                                       const std::optional<MartWatermarks>& from = std::nullopt);

// Reads on where `step` ends, into the same step (what a second step from
// there would read, added to it), until it holds `maxEvents` rows.
Status extendRefresh(Connection& db, PreparedRefresh& step, std::int64_t maxEvents);

// Applies a prepared step inside the caller's write transaction, as
// refreshMartsInTransaction would have: its rows, the watermarks and
// last_refresh_ts. Nothing, and nullopt, when the stored watermarks are no
// longer the ones it was read from (another step moved them): the caller
// runs a step of its own instead.
Result<std::optional<RefreshStats>> applyPreparedRefreshInTransaction(Connection& db,
                                                                      const PreparedRefresh& step,
                                                                      UnixMicros now);

// Empties every mart and helper table and absorbs all of usage_events again,
// in one BEGIN IMMEDIATE transaction; leaves the event watermarks at
// MAX(usage_events.id) and the retraction watermarks at the latest
// retraction. Work proportional to the store (it is the full rebuild).
Status rebuildMarts(Connection& db, UnixMicros now);

// The same inside the caller's open write transaction.
Status rebuildMartsInTransaction(Connection& db, UnixMicros now);

}  // namespace etld::store
