// The status document of shared/spec/status.md, built by one assembler.
//
// Both paths fill a StatusInput — the daemon from its live in-memory state,
// etlctl (and the daemon's store path) from the store alone — and hand it to
// assembleStatus(), so the two can never disagree on a shape or a rule. The
// health rules live in computeHealth() and nowhere else.
#pragma once

#include <rapidjson/document.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/time.h"

namespace etld::status {

// Health thresholds (status spec, "Health rules").
constexpr std::int64_t kStaleLagEvents = 100;        // lag strictly above: stale/error
constexpr std::int64_t kSyncingWindowSeconds = 10;   // a refresh this recent: syncing
constexpr std::int64_t kFailedJobErrorSeconds = 30;  // a failed backfill shows error this long
constexpr std::int64_t kFaultErrorSeconds = 10;      // a fault this old turns health error

// The five marts, in the order the socket sends them.
constexpr std::array<std::string_view, 5> kMartNames = {"daily", "session", "project",
                                                        "provider_day", "model_day"};

enum class Health { Live, Syncing, Stale, Error };
std::string_view healthName(Health h);

enum class Origin { Daemon, Database };

struct MartState {
    std::int64_t watermark = 0;  // mart_watermark.last_event_id, 0 when absent
    std::int64_t rowCount = 0;   // rows in <name>_mart
    std::optional<UnixMicros> lastRefresh;
};

struct JobProgress {
    std::int64_t bytesDone = 0;
    std::int64_t bytesTotal = 0;
    std::int64_t eventsDone = 0;
    double bytesPerSecond = 0;
    std::optional<std::int64_t> etaSeconds;
    UnixMicros updatedAt = 0;  // last recorded progress
};

struct Job {
    std::string jobId;  // 32 lowercase hex
    UnixMicros startedAt = 0;
    bool force = false;
    std::string status;  // "running" | "complete" | "failed"
    std::optional<UnixMicros> completedAt;
    std::optional<std::string> error;
    JobProgress progress;
};

struct Fault {
    std::string code;
    std::string message;
    UnixMicros since = 0;
};

struct SourceState {
    std::string provider;
    std::vector<std::string> roots;
    std::string watching;  // "events" | "stat_scan" | "none"
    std::int64_t files = 0;
    std::int64_t bytesIngested = 0;
    std::int64_t bytesPending = 0;
    std::int64_t bytesReadSinceStart = 0;
    std::int64_t linesSkipped = 0;
    std::optional<std::string> lastError;
};

struct DaemonInfo {
    std::int64_t pid = 0;
    std::string version;
    UnixMicros startedAt = 0;
};

struct StatusInput {
    Origin origin = Origin::Database;
    bool watcherEnabled = true;
    std::optional<bool> watcherRunning;  // nullopt: "unknown" (no daemon answered)
    std::optional<UnixMicros> lastRefresh;
    std::optional<std::int64_t> eventsInLastCycle;
    std::optional<std::int64_t> lockHeldBy;  // pid holding the instance lock
    std::array<MartState, 5> marts;          // in kMartNames order
    std::int64_t eventsTotal = 0;
    std::int64_t maxEventId = 0;
    std::vector<std::pair<std::string, std::int64_t>> eventsByProvider;
    std::vector<std::pair<std::string, std::int64_t>> eventsByCostSource;
    std::optional<Job> currentJob;
    std::optional<Job> lastJob;  // the last finished job, whatever its age
    std::optional<DaemonInfo> daemon;
    std::vector<SourceState> sources;
    std::optional<Fault> fault;
    std::int64_t schemaVersion = 0;
    std::optional<UnixMicros> asOf;  // store path: when the daemon last recorded its state
    std::string storePath;
};

std::int64_t lagEvents(const StatusInput& in);
Health computeHealth(const StatusInput& in, UnixMicros now);

// The whole document, keys in the socket's order (marts in kMartNames order).
rapidjson::Document assembleStatus(const StatusInput& in, UnixMicros now);

}  // namespace etld::status
