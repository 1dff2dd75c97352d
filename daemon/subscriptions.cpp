#include "subscriptions.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

namespace etld::daemon {

std::string changeKey(const rapidjson::Value& doc) {
    rapidjson::Document copy;
    copy.CopyFrom(doc, copy.GetAllocator());
    if (copy.IsObject()) {
        copy.RemoveMember("as_of");
        if (auto w = copy.FindMember("watcher"); w != copy.MemberEnd() && w->value.IsObject())
            w->value.RemoveMember("seconds_since_refresh");
        if (auto d = copy.FindMember("daemon"); d != copy.MemberEnd() && d->value.IsObject())
            d->value.RemoveMember("uptime_seconds");
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    copy.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

Subscriptions::Subscriptions(uv_loop_t* loop, const Clock& clock, Snapshot snapshot)
    : loop_(loop), clock_(clock), snapshot_(std::move(snapshot)) {
    uv_timer_init(loop_, timeTrigger_.get());
    timeTrigger_.markInitialized();
    timeTrigger_.get()->data = this;
}

Subscriptions::~Subscriptions() { close(); }

void Subscriptions::close() {
    subscribers_.clear();
    timeTrigger_.close();
}

void Subscriptions::add(const Call& call) {
    const auto in = snapshot_();
    const UnixMicros now = clock_.now();
    auto doc = status::assembleStatus(in, now);
    auto s = std::make_unique<Subscriber>(Subscriber{this, nextId_++, call, changeKey(doc), uv_now(loop_), {}});
    uv_timer_init(loop_, s->throttle.get());
    s->throttle.markInitialized();
    s->throttle.get()->data = s.get();
    call.keepOpen();
    call.reply(doc);
    subscribers_.emplace(s->id, std::move(s));
    armTimeTrigger(in, now);
}

void Subscriptions::publish() {
    if (subscribers_.empty()) return;
    const auto in = snapshot_();
    const UnixMicros now = clock_.now();
    const auto doc = status::assembleStatus(in, now);
    const std::string key = changeKey(doc);
    for (auto it = subscribers_.begin(); it != subscribers_.end();) {
        if (it->second->call.clientGone()) {
            it = subscribers_.erase(it);  // closes its timer
            continue;
        }
        offer(*it->second, doc, key);
        ++it;
    }
    armTimeTrigger(in, now);
}

void Subscriptions::offer(Subscriber& s, const rapidjson::Document& doc, const std::string& key) {
    if (key == s.lastKey) return;
    const std::uint64_t nowMs = uv_now(loop_);
    if (nowMs - s.lastSentMs >= kMinIntervalMs) {
        s.call.sendEvent("status", doc);
        s.lastKey = key;
        s.lastSentMs = nowMs;
        return;
    }
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(s.throttle.get()))) return;  // already owed
    uv_timer_start(s.throttle.get(), [](uv_timer_t* t) noexcept {
        auto* sub = static_cast<Subscriber*>(t->data);
        sub->owner->publish();  // the latest state, not the one that was throttled
    }, kMinIntervalMs - (nowMs - s.lastSentMs), 0);
}

void Subscriptions::armTimeTrigger(const status::StatusInput& in, UnixMicros now) {
    if (subscribers_.empty()) {
        uv_timer_stop(timeTrigger_.get());
        return;
    }
    // The next moment at which time alone changes the document.
    std::optional<UnixMicros> next;
    auto consider = [&](UnixMicros t) {
        if (t > now && (!next || t < *next)) next = t;
    };
    if (in.lastRefresh) consider(*in.lastRefresh + (status::kSyncingWindowSeconds + 1) * kMicrosPerSecond);
    if (in.fault) consider(in.fault->since + status::kFaultErrorSeconds * kMicrosPerSecond);
    if (in.lastJob && in.lastJob->completedAt)
        consider(*in.lastJob->completedAt + status::kFailedJobErrorSeconds * kMicrosPerSecond);
    if (!next) {
        uv_timer_stop(timeTrigger_.get());
        return;
    }
    const auto delayMs = static_cast<std::uint64_t>((*next - now + 999) / 1000);
    uv_timer_start(timeTrigger_.get(), [](uv_timer_t* t) noexcept {
        static_cast<Subscriptions*>(t->data)->publish();
    }, delayMs, 0);
}

}  // namespace etld::daemon
