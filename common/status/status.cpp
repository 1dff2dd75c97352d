// The status assembler and the health rules (shared/spec/status.md).
//
// One function builds the document from a StatusInput, whichever path filled
// it, so the daemon and the store fallback cannot disagree on a shape or a
// rule. Invariants of the document built here:
//
// - Every key is always present, null where there is no value. The only
//   exception is `last_job.error`, which the spec marks optional (`error?`):
//   it appears only when the job recorded one.
// - Keys come in the socket's order: the compatible block (watcher, marts,
//   events, lag_seconds, health, current_job, last_job), then ours (source,
//   lag_events, daemon, sources, fault, schema_version, as_of, store_path).
//   `marts` always holds exactly the five marts, in kMartNames order.
// - Timestamps are formatStatusTime() strings; counts are integers.
// - `events.by_provider` / `events.by_cost_source` leave out the empty key ""
//   (such rows count in `events.total` only) and zero counts; duplicates in
//   the input are summed; keys come out in ascending byte order.
// - `watcher.running` is the string "unknown" whenever the store answered
//   (Origin::Database) or the daemon did not know; `daemon` is null from the
//   store. The health rules read the same effective value the document shows.
//
// Time. Every age in the rules is measured the way the document shows
// `seconds_since_refresh`: whole seconds from the event to `now`, floored at
// 0 (wholeSecondsSince). With age in those units:
//   rule 0  fault age >= 10             (i.e. now - since >= 10 000 000 us)
//   rule 1  failed job age < 30         (i.e. now - completedAt < 30 000 000 us)
//   rule 4  seconds_since_refresh <= 10 (i.e. now - lastRefresh < 11 000 000 us)
// A timestamp in the future (the clock stepped back) has age 0: a fault is
// then young, a failed job or a refresh is then "just now". `last_job` is
// shown by exactly the same predicate as rule 1 (age < 30), so health is
// `error` by rule 1 exactly when the document's last_job shows "failed"; a
// finished job without `completedAt` is neither shown nor counted, since its
// age is unknown.
#include "status/status.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace etld::status {
namespace {

using rapidjson::Document;
using rapidjson::Value;
using Alloc = Document::AllocatorType;

// The watcher's liveness as the document states it: nullopt is "unknown".
// From the store nobody knows whether a watcher runs, whatever was filled in.
std::optional<bool> effectiveRunning(const StatusInput& in) {
    if (in.origin == Origin::Database) return std::nullopt;
    return in.watcherRunning;
}

// Whether the last finished job is still inside its 30 s display window.
bool lastJobVisible(const StatusInput& in, UnixMicros now) {
    if (!in.lastJob || !in.lastJob->completedAt) return false;
    return wholeSecondsSince(*in.lastJob->completedAt, now) < kFailedJobErrorSeconds;
}

Value str(std::string_view s, Alloc& a) {
    Value v;
    v.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
    return v;
}

Value timeOrNull(const std::optional<UnixMicros>& t, Alloc& a) {
    if (!t) return Value(rapidjson::kNullType);
    return str(formatStatusTime(*t), a);
}

Value intOrNull(const std::optional<std::int64_t>& n) {
    if (!n) return Value(rapidjson::kNullType);
    return Value(*n);
}

Value strOrNull(const std::optional<std::string>& s, Alloc& a) {
    if (!s) return Value(rapidjson::kNullType);
    return str(*s, a);
}

void add(Value& obj, std::string_view key, Value v, Alloc& a) {
    obj.AddMember(str(key, a), v, a);
}

Value countMap(const std::vector<std::pair<std::string, std::int64_t>>& pairs, Alloc& a) {
    std::map<std::string, std::int64_t> sums;
    for (const auto& [key, count] : pairs) {
        if (key.empty()) continue;  // counted in events.total only
        sums[key] += count;
    }
    Value obj(rapidjson::kObjectType);
    for (const auto& [key, count] : sums) {
        if (count <= 0) continue;
        add(obj, key, Value(count), a);
    }
    return obj;
}

Value jobHead(const Job& job, Alloc& a) {
    Value obj(rapidjson::kObjectType);
    add(obj, "job_id", str(job.jobId, a), a);
    add(obj, "started_at", str(formatStatusTime(job.startedAt), a), a);
    add(obj, "force", Value(job.force), a);
    return obj;
}

Value currentJob(const StatusInput& in, Alloc& a) {
    if (!in.currentJob) return Value(rapidjson::kNullType);
    const Job& job = *in.currentJob;
    Value obj = jobHead(job, a);
    add(obj, "status", str("running", a), a);
    add(obj, "bytes_done", Value(job.progress.bytesDone), a);
    add(obj, "bytes_total", Value(job.progress.bytesTotal), a);
    add(obj, "events_done", Value(job.progress.eventsDone), a);
    // JSON has no NaN or infinity; a rate that is not a number reads as 0.
    const double rate = job.progress.bytesPerSecond;
    add(obj, "bytes_per_second", Value(std::isfinite(rate) ? rate : 0.0), a);
    add(obj, "eta_seconds", intOrNull(job.progress.etaSeconds), a);
    return obj;
}

Value lastJob(const StatusInput& in, UnixMicros now, Alloc& a) {
    if (!lastJobVisible(in, now)) return Value(rapidjson::kNullType);
    const Job& job = *in.lastJob;
    Value obj = jobHead(job, a);
    add(obj, "status", str(job.status, a), a);
    add(obj, "completed_at", timeOrNull(job.completedAt, a), a);
    if (job.error) add(obj, "error", str(*job.error, a), a);
    return obj;
}

Value watcher(const StatusInput& in, UnixMicros now, Alloc& a) {
    Value obj(rapidjson::kObjectType);
    add(obj, "enabled", Value(in.watcherEnabled), a);
    const std::optional<bool> running = effectiveRunning(in);
    add(obj, "running", running ? Value(*running) : str("unknown", a), a);
    add(obj, "last_refresh_ts", timeOrNull(in.lastRefresh, a), a);
    std::optional<std::int64_t> since;
    if (in.lastRefresh) since = wholeSecondsSince(*in.lastRefresh, now);
    add(obj, "seconds_since_refresh", intOrNull(since), a);
    add(obj, "events_in_last_cycle", intOrNull(in.eventsInLastCycle), a);
    add(obj, "lock_held_by", intOrNull(in.lockHeldBy), a);
    return obj;
}

Value marts(const StatusInput& in, Alloc& a) {
    Value obj(rapidjson::kObjectType);
    for (size_t i = 0; i < kMartNames.size(); ++i) {
        const MartState& m = in.marts[i];
        Value mart(rapidjson::kObjectType);
        add(mart, "watermark", Value(m.watermark), a);
        add(mart, "row_count", Value(m.rowCount), a);
        add(mart, "last_refresh_ts", timeOrNull(m.lastRefresh, a), a);
        add(obj, kMartNames[i], std::move(mart), a);
    }
    return obj;
}

Value events(const StatusInput& in, Alloc& a) {
    Value obj(rapidjson::kObjectType);
    add(obj, "total", Value(in.eventsTotal), a);
    add(obj, "max_id", Value(in.maxEventId), a);
    add(obj, "by_provider", countMap(in.eventsByProvider, a), a);
    add(obj, "by_cost_source", countMap(in.eventsByCostSource, a), a);
    return obj;
}

Value daemon(const StatusInput& in, UnixMicros now, Alloc& a) {
    if (in.origin == Origin::Database || !in.daemon) return Value(rapidjson::kNullType);
    const DaemonInfo& d = *in.daemon;
    Value obj(rapidjson::kObjectType);
    add(obj, "pid", Value(d.pid), a);
    add(obj, "version", str(d.version, a), a);
    add(obj, "started_at", str(formatStatusTime(d.startedAt), a), a);
    add(obj, "uptime_seconds", Value(wholeSecondsSince(d.startedAt, now)), a);
    return obj;
}

// Providers in the input's order; a provider named twice keeps its first
// entry (a JSON object cannot hold a key twice).
Value sources(const StatusInput& in, Alloc& a) {
    Value obj(rapidjson::kObjectType);
    std::set<std::string_view> seen;
    for (const SourceState& s : in.sources) {
        if (!seen.insert(s.provider).second) continue;
        Value src(rapidjson::kObjectType);
        Value roots(rapidjson::kArrayType);
        for (const std::string& r : s.roots) roots.PushBack(str(r, a), a);
        add(src, "roots", std::move(roots), a);
        add(src, "watching", str(s.watching, a), a);
        add(src, "files", Value(s.files), a);
        add(src, "bytes_ingested", Value(s.bytesIngested), a);
        add(src, "bytes_pending", Value(s.bytesPending), a);
        add(src, "bytes_read_since_start", Value(s.bytesReadSinceStart), a);
        add(src, "lines_skipped", Value(s.linesSkipped), a);
        add(src, "last_error", strOrNull(s.lastError, a), a);
        add(obj, s.provider, std::move(src), a);
    }
    return obj;
}

Value fault(const StatusInput& in, Alloc& a) {
    if (!in.fault) return Value(rapidjson::kNullType);
    Value obj(rapidjson::kObjectType);
    add(obj, "code", str(in.fault->code, a), a);
    add(obj, "message", str(in.fault->message, a), a);
    add(obj, "since", str(formatStatusTime(in.fault->since), a), a);
    return obj;
}

}  // namespace

std::string_view healthName(Health h) {
    switch (h) {
        case Health::Live:
            return "live";
        case Health::Syncing:
            return "syncing";
        case Health::Stale:
            return "stale";
        case Health::Error:
            return "error";
    }
    return "error";
}

std::int64_t lagEvents(const StatusInput& in) {
    if (in.maxEventId <= 0) return 0;
    std::int64_t minWatermark = in.marts[0].watermark;
    for (const MartState& m : in.marts) minWatermark = std::min(minWatermark, m.watermark);
    return std::max<std::int64_t>(0, in.maxEventId - minWatermark);
}

Health computeHealth(const StatusInput& in, UnixMicros now) {
    // Rule 0: a fault that has lasted kFaultErrorSeconds or more.
    if (in.fault && wholeSecondsSince(in.fault->since, now) >= kFaultErrorSeconds)
        return Health::Error;
    // Rule 1: a backfill that failed less than kFailedJobErrorSeconds ago.
    if (lastJobVisible(in, now) && in.lastJob->status == "failed") return Health::Error;
    // Rule 2: nothing exists, so nothing lags.
    if (in.maxEventId == 0) return Health::Live;
    const std::int64_t lag = lagEvents(in);
    // Rule 3: far behind; an error only when the watcher is known to be down.
    if (lag > kStaleLagEvents) {
        const std::optional<bool> running = effectiveRunning(in);
        return running.has_value() && !*running ? Health::Error : Health::Stale;
    }
    // Rule 4: behind, but a cycle committed recently: catching up.
    if (lag > 0 && in.lastRefresh &&
        wholeSecondsSince(*in.lastRefresh, now) <= kSyncingWindowSeconds)
        return Health::Syncing;
    // Rule 5.
    return Health::Live;
}

rapidjson::Document assembleStatus(const StatusInput& in, UnixMicros now) {
    Document doc(rapidjson::kObjectType);
    Alloc& a = doc.GetAllocator();
    const std::int64_t lag = lagEvents(in);

    // The compatible block, in the dashboard's order.
    add(doc, "watcher", watcher(in, now, a), a);
    add(doc, "marts", marts(in, a), a);
    add(doc, "events", events(in, a), a);
    add(doc, "lag_seconds", Value(lag), a);  // a count of events, despite the name
    add(doc, "health", str(healthName(computeHealth(in, now)), a), a);
    add(doc, "current_job", currentJob(in, a), a);
    add(doc, "last_job", lastJob(in, now, a), a);

    // Ours.
    add(doc, "source", str(in.origin == Origin::Daemon ? "daemon" : "database", a), a);
    add(doc, "lag_events", Value(lag), a);
    add(doc, "daemon", daemon(in, now, a), a);
    add(doc, "sources", sources(in, a), a);
    add(doc, "fault", fault(in, a), a);
    add(doc, "schema_version", Value(in.schemaVersion), a);
    add(doc, "as_of", timeOrNull(in.asOf, a), a);
    add(doc, "store_path", str(in.storePath, a), a);
    return doc;
}

}  // namespace etld::status
