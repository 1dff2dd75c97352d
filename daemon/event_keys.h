// Event keys -> event ids in memory, for a first ingest that builds the
// store's key index (idx_events_key) at its end instead of inserting into it
// once per event: event keys are random, so each such insert dirtied a page
// of a B-tree larger than the page cache, and every step's commit wrote most
// of those pages to the WAL again.
//
// Only a 64-bit hash of each key is kept, with the id it was written under,
// 16 bytes an event. An id found here is a candidate, never an answer: the
// caller reads the row by id *and* key. That makes every stale entry harmless
// — the old id of a revised event (its row is gone), an id a rolled-back step
// wrote (gone too, or reused for another key), a hash collision — so entries
// are only ever added.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace etld::daemon {

class EventKeyIndex {
public:
    void add(std::string_view key, std::int64_t id);

    // Calls fn(id) for each id added under a key hashing like `key`, until
    // fn returns true; returns whether one did.
    template <class Fn>
    bool findIf(std::string_view key, Fn&& fn) const {
        if (slots_.empty()) return false;
        const std::uint64_t h = hash(key);
        for (std::size_t i = h & mask(); slots_[i].id != 0; i = (i + 1) & mask())
            if (slots_[i].hash == h && fn(slots_[i].id)) return true;
        return false;
    }

    std::size_t size() const { return size_; }
    std::size_t memoryBytes() const { return slots_.capacity() * sizeof(Slot); }

private:
    struct Slot {
        std::uint64_t hash = 0;
        std::int64_t id = 0;  // 0: empty (event ids start at 1)
    };
    static std::uint64_t hash(std::string_view key);
    std::size_t mask() const { return slots_.size() - 1; }
    void grow();

    std::vector<Slot> slots_;  // open addressing, linear probing; a power of two
    std::size_t size_ = 0;
};

}  // namespace etld::daemon
