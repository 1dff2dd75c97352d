#include "event_keys.h"

#include <functional>
#include <utility>

namespace etld::daemon {
namespace {

constexpr std::size_t kInitialSlots = 1024;

}  // namespace

std::uint64_t EventKeyIndex::hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

void EventKeyIndex::add(std::string_view key, std::int64_t id) {
    // At most three quarters full, so that a miss ends after a few probes.
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    const std::uint64_t h = hash(key);
    std::size_t i = h & mask();
    while (slots_[i].id != 0) i = (i + 1) & mask();
    slots_[i] = Slot{h, id};
    ++size_;
}

void EventKeyIndex::grow() {
    const std::size_t slots = slots_.empty() ? kInitialSlots : slots_.size() * 2;
    const std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(slots));
    for (const Slot& s : old) {
        if (s.id == 0) continue;
        std::size_t i = s.hash & mask();
        while (slots_[i].id != 0) i = (i + 1) & mask();
        slots_[i] = s;
    }
}

}  // namespace etld::daemon
