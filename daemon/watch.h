// The watcher: tells its owner which paths under a set of root directories
// changed, without polling while nothing changes. It knows nothing about
// providers, parsing or the store; it runs on the loop thread only.
//
// How (Linux):
//   - One inotify instance, read through a uv_poll_t (not uv_fs_event, which
//     silently drops inotify's IN_Q_OVERFLOW), and one watch per directory.
//   - A new directory is watched (recursively) *before* it is reported, and
//     the owner lists every reported directory, so files created in it before
//     its watch existed are still found.
//   - Raw events collect in a set; a one-shot settle timer delivers the set as
//     one onChanges. No timer runs while nothing changes.
//   - A root that does not exist yet ("waiting") is found by watching its
//     nearest existing ancestor for the next path component. Every root also
//     watches its ancestors for being moved or deleted ("guards"), so a
//     `mv ~/.claude ~/.claude.old` followed by a fresh ~/.claude is picked up.
//   - A lost event (queue overflow, the descriptor failing) rebuilds every
//     watch on a fresh inotify instance and then asks the owner to rescan
//     every root (onRescanNeeded, delivered after the new watches exist).
//   - When the watch limit is reached, inotify is unavailable, or a root is on
//     a filesystem that sends no events (NFS, SMB, FUSE/sshfs, 9p...), that
//     root falls back to a stat scan every kStatScanIntervalMs and says so in
//     roots().
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace etld::daemon {

// Raw events are held this long before being delivered as one set: an agent
// appending a response writes many lines within a few milliseconds, and one
// ingest pass per burst is cheaper than one per line. Short enough that a
// human never notices it.
constexpr std::uint64_t kSettleMs = 20;
// A stat-scan root is re-scanned this often: a full walk of a few thousand
// files costs milliseconds, and two seconds of lag is acceptable for a
// fallback that only runs where events are unavailable.
constexpr std::uint64_t kStatScanIntervalMs = 2000;

struct WatchRootState {
    std::string path;
    std::string mode;  // "events" | "stat_scan" | "waiting" (missing; an ancestor is watched)
    std::optional<std::string> lastError;
};

class Watcher {
  public:
    struct Callbacks {
        // Absolute paths (files or directories) that changed, appeared or
        // vanished, coalesced over the settle window, sorted. A directory in
        // the set means: list it (it is new, or entries may have changed
        // unseen); its watch already exists when it is reported.
        std::function<void(std::vector<std::string> changed)> onChanges;
        // Events were lost (queue overflow, the descriptor failing); the
        // watches have been rebuilt, and the owner must rescan every root.
        // Replaces the onChanges of that settle window.
        std::function<void()> onRescanNeeded;
    };

    // Callbacks run on the loop thread from a timer; they may call addRoot()
    // or close(), and may even destroy the Watcher.
    Watcher(uv_loop_t* loop, Callbacks callbacks, std::uint64_t settleMs = kSettleMs);
    // Closes everything; uv_loop_close succeeds once the loop has run the
    // close callbacks.
    ~Watcher();
    Watcher(Watcher&&) noexcept;
    Watcher& operator=(Watcher&&) = delete;
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;

    // Adds a root directory, which may not exist yet; a relative path is made
    // absolute. Returns at once (after a synchronous walk that adds the
    // watches). Every directory present is reported in the next onChanges so
    // the owner scans it. Adding the same root twice does nothing.
    void addRoot(const std::string& path);
    // The owner is starting a full rescan, which stats every file after this
    // call: whatever was reported so far and not yet delivered is covered by
    // it (its watch existed when it was reported), so it is dropped. What the
    // kernel reports from now on is delivered as usual; so is a pending
    // request to rescan.
    void dropReported();
    std::vector<WatchRootState> roots() const;
    void close();

    // For tests: pretend the kernel's watch limit is `n` watches (affects
    // watches added from then on).
    void setMaxWatchesForTest(std::size_t n);
    // Interval of stat-scan mode; applies to running scans at once.
    void setStatScanIntervalMs(std::uint64_t ms);
    // For tests: hands bytes to the event parser as if read from inotify.
    void injectEventsForTest(std::string_view bytes);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Pure helpers, exposed for the unit tests.
namespace watch_detail {

// One inotify record (struct inotify_event), copied out of the read buffer.
struct InotifyRecord {
    int wd = 0;
    std::uint32_t mask = 0;
    std::uint32_t cookie = 0;
    std::string name;  // without the NUL padding; empty for the watched dir itself
};

// Decodes the bytes of one read() from an inotify descriptor. A truncated
// trailing record (which the kernel never produces) is dropped.
std::vector<InotifyRecord> parseInotifyEvents(std::string_view bytes);

// The name of a filesystem type (statfs f_type) that delivers no inotify
// events for changes made elsewhere, or nullopt for one that does.
std::optional<std::string_view> silentFilesystemName(std::int64_t fsType);

}  // namespace watch_detail

}  // namespace etld::daemon
