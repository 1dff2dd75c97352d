// `subscribe`: one status line per change, at most every kMinIntervalMs, to
// each subscriber (protocol spec). A change is any change of the document
// except seconds_since_refresh, uptime_seconds and as_of moving on. A slow
// subscriber gets the latest state, never a queue: a throttled update is
// rebuilt when its timer fires. Changes that time alone causes (syncing
// turning live, a fault turning the health to error, a failed job's error
// ending) come from a timer armed for the next such moment.
// Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "control.h"
#include "status/status.h"
#include "util/time.h"
#include "uv_handle.h"

namespace etld::daemon {

class Subscriptions {
public:
    // The longest a subscriber waits between two updates it is owed.
    static constexpr std::uint64_t kMinIntervalMs = 250;

    using Snapshot = std::function<status::StatusInput()>;
    Subscriptions(uv_loop_t* loop, const Clock& clock, Snapshot snapshot);
    ~Subscriptions();

    // Answers the call with the current status and keeps it as a subscriber.
    void add(const Call& call);
    // The daemon's state may have changed: send to whoever is owed an update.
    void publish();
    void close();
    std::size_t size() const { return subscribers_.size(); }

private:
    struct Subscriber {
        Subscriptions* owner;
        std::uint64_t id;
        Call call;
        std::string lastKey;         // the document without its moving clocks
        std::uint64_t lastSentMs = 0;  // uv_now of the last line
        UvHandle<uv_timer_t> throttle;
    };
    void offer(Subscriber& s, const rapidjson::Document& doc, const std::string& key);
    void armTimeTrigger(const status::StatusInput& in, UnixMicros now);

    uv_loop_t* loop_;
    const Clock& clock_;
    Snapshot snapshot_;
    std::map<std::uint64_t, std::unique_ptr<Subscriber>> subscribers_;
    std::uint64_t nextId_ = 1;
    UvHandle<uv_timer_t> timeTrigger_;
};

// The document's identity for change detection: compact JSON without
// seconds_since_refresh, uptime_seconds and as_of.
std::string changeKey(const rapidjson::Value& doc);

}  // namespace etld::daemon
