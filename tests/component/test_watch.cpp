// The watcher on a fresh libuv loop per test, against real directories.
//
// Callbacks record what they saw; the loop runs one turn at a time until a
// condition holds or a uv timer deadline passes (never a sleep); every test
// ends by destroying the watcher and asserting uv_loop_close() == 0, so a
// leaked handle fails it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "watch.h"

namespace fs = std::filesystem;
using etld::daemon::Watcher;
using etld::daemon::WatchRootState;
namespace detail = etld::daemon::watch_detail;

namespace {

// Long enough for a loaded CI machine to deliver an event; reached only when
// a test is failing.
constexpr std::uint64_t kDeadlineMs = 5000;
// How long "nothing happens" is watched for.
constexpr std::uint64_t kQuietMs = 300;

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/etld-watch-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& rel) const { return path + "/" + rel; }
};

void append(const std::string& path, const std::string& text = "{\"line\":1}\n") {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
}

void mkdirs(const std::string& path) {
    fs::create_directories(path);
}

// A loop, a watcher on it, and what its callbacks saw.
struct Harness {
    uv_loop_t loop{};
    uv_timer_t deadline{};
    bool deadlinePassed = false;
    std::vector<std::vector<std::string>> batches;
    std::set<std::string> seen;  // union of every batch since the last clear()
    int rescans = 0;
    std::optional<Watcher> watcher;
    std::function<void()> afterChanges;  // optional hook run inside onChanges

    explicit Harness(std::uint64_t settleMs = etld::daemon::kSettleMs) {
        REQUIRE(uv_loop_init(&loop) == 0);
        uv_timer_init(&loop, &deadline);
        deadline.data = this;
        Watcher::Callbacks cb;
        cb.onChanges = [this](std::vector<std::string> changed) {
            seen.insert(changed.begin(), changed.end());
            batches.push_back(std::move(changed));
            if (afterChanges) afterChanges();
        };
        cb.onRescanNeeded = [this] { ++rescans; };
        watcher.emplace(&loop, std::move(cb), settleMs);
    }

    Watcher& w() { return *watcher; }

    void clear() {
        batches.clear();
        seen.clear();
    }

    // Turns the loop until `done` holds or `ms` of loop time passed.
    bool runUntil(const std::function<bool()>& done, std::uint64_t ms = kDeadlineMs) {
        deadlinePassed = false;
        uv_update_time(&loop);
        uv_timer_start(
            &deadline, [](uv_timer_t* t) { static_cast<Harness*>(t->data)->deadlinePassed = true; },
            ms, 0);
        while (!done() && !deadlinePassed) uv_run(&loop, UV_RUN_ONCE);
        uv_timer_stop(&deadline);
        return done();
    }

    void runFor(std::uint64_t ms) {
        runUntil([] { return false; }, ms);
    }

    bool saw(const std::string& path) const { return seen.count(path) > 0; }

    // Watches `root` and lets the start-up report of it go by, so that what
    // the test does next is all that is seen.
    void watchAndSettle(const std::string& root) {
        w().addRoot(root);
        REQUIRE(runUntil([&] { return saw(root); }));
        clear();
    }

    WatchRootState root(std::size_t i = 0) { return w().roots().at(i); }

    // Timers other than the test's own deadline that are running.
    int activeTimers() {
        struct Walk {
            uv_timer_t* deadline;
            int count = 0;
        } walk{&deadline};
        uv_walk(
            &loop,
            [](uv_handle_t* h, void* arg) {
                auto* wk = static_cast<Walk*>(arg);
                if (h->type == UV_TIMER && uv_is_active(h) &&
                    h != reinterpret_cast<uv_handle_t*>(wk->deadline))
                    ++wk->count;
            },
            &walk);
        return walk.count;
    }

    // Destroys the watcher, runs the close callbacks, closes the loop.
    int finish() {
        watcher.reset();
        uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
        return uv_loop_close(&loop);
    }
};

std::string overflowEvent() {
    inotify_event ev{};
    ev.wd = -1;
    ev.mask = IN_Q_OVERFLOW;
    std::string bytes(sizeof ev, '\0');
    std::memcpy(bytes.data(), &ev, sizeof ev);
    return bytes;
}

std::string eventBytes(int wd, std::uint32_t mask, const std::string& name, std::size_t padTo) {
    inotify_event ev{};
    ev.wd = wd;
    ev.mask = mask;
    ev.len = static_cast<std::uint32_t>(padTo);
    std::string bytes(sizeof ev + padTo, '\0');
    std::memcpy(bytes.data(), &ev, sizeof ev);
    std::memcpy(bytes.data() + sizeof ev, name.data(), name.size());
    return bytes;
}

// The masks of this process's inotify watches by directory inode, read from
// /proc/self/fdinfo (the kernel lists every watch of an inotify descriptor).
std::map<ino_t, std::uint32_t> inotifyMasks() {
    std::map<ino_t, std::uint32_t> out;
    for (const auto& fd : fs::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        if (fs::read_symlink(fd.path(), ec).string() != "anon_inode:inotify") continue;
        std::ifstream info("/proc/self/fdinfo/" + fd.path().filename().string());
        for (std::string line; std::getline(info, line);) {
            if (line.rfind("inotify ", 0) != 0) continue;
            const auto field = [&](const std::string& key) {
                const auto at = line.find(" " + key + ":");
                return std::stoull(line.substr(at + key.size() + 2), nullptr, 16);
            };
            out[static_cast<ino_t>(field("ino"))] = static_cast<std::uint32_t>(field("mask"));
        }
    }
    return out;
}

ino_t inodeOf(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

}  // namespace

// ---- pure helpers ----

TEST_CASE("the event parser decodes records with NUL-padded names and drops a truncated tail") {
    std::string bytes = eventBytes(3, IN_CREATE | IN_ISDIR, "proj", 16) +
                        eventBytes(4, IN_MODIFY, "", 0) + eventBytes(5, IN_DELETE, "x.jsonl", 16);
    const auto whole = detail::parseInotifyEvents(bytes);
    REQUIRE(whole.size() == 3);
    CHECK(whole[0].wd == 3);
    CHECK(whole[0].mask == (IN_CREATE | IN_ISDIR));
    CHECK(whole[0].name == "proj");
    CHECK(whole[1].name.empty());
    CHECK(whole[2].name == "x.jsonl");

    bytes.resize(bytes.size() - 4);  // the last record's name cut short
    const auto cut = detail::parseInotifyEvents(bytes);
    CHECK(cut.size() == 2);
}

TEST_CASE("filesystems that send no events are recognised by their statfs type") {
    CHECK(detail::silentFilesystemName(0x6969) == std::optional<std::string_view>("nfs"));
    CHECK(detail::silentFilesystemName(0x65735546) == std::optional<std::string_view>("fuse"));
    CHECK(detail::silentFilesystemName(static_cast<std::int64_t>(0xFF534D42)) ==
          std::optional<std::string_view>("cifs"));
    CHECK_FALSE(detail::silentFilesystemName(0xEF53).has_value());      // ext4
    CHECK_FALSE(detail::silentFilesystemName(0x01021994).has_value());  // tmpfs
}

// ---- events mode ----

TEST_CASE("every directory present is reported in the first onChanges") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/p1/s1");
    mkdirs(root + "/p2");
    append(root + "/p1/s1/a.jsonl");
    Harness h;
    h.w().addRoot(root);
    CHECK(h.root().mode == "events");
    REQUIRE(h.runUntil([&] { return !h.batches.empty(); }));
    const std::set<std::string> first(h.batches[0].begin(), h.batches[0].end());
    CHECK(first == std::set<std::string>{root, root + "/p1", root + "/p1/s1", root + "/p2"});
    CHECK(h.finish() == 0);
}

TEST_CASE("reports dropped for a rescan are not delivered; later ones are") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/p1");
    Harness h;
    h.w().addRoot(root);  // reports root and root/p1
    h.w().dropReported();
    h.runFor(3 * etld::daemon::kSettleMs);
    CHECK(h.batches.empty());
    append(root + "/p1/a.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/p1/a.jsonl"); }));
    CHECK_FALSE(h.saw(root));
    CHECK(h.finish() == 0);
}

TEST_CASE("an append to a file is reported") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    append(root + "/proj/s.jsonl");
    Harness h;
    h.watchAndSettle(root);
    append(root + "/proj/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE(
    "a new directory three deep with a file created at once is watched before it is reported") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root);
    Harness h;
    h.watchAndSettle(root);

    // Both exist before the watcher could have seen the first mkdir.
    const std::string deep = root + "/a/b/c";
    mkdirs(deep);
    append(deep + "/f.jsonl");
    REQUIRE(h.runUntil([&] { return h.saw(deep); }));
    CHECK(h.saw(root + "/a"));
    CHECK(h.saw(root + "/a/b"));
    // The owner lists what it is given and so finds the file.
    std::vector<std::string> listed;
    for (const auto& e : fs::directory_iterator(deep)) listed.push_back(e.path().string());
    CHECK(listed == std::vector<std::string>{deep + "/f.jsonl"});

    // The watch existed when it was reported: the next append is seen.
    h.clear();
    append(deep + "/f.jsonl");
    CHECK(h.runUntil([&] { return h.saw(deep + "/f.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE("a file renamed into a watched directory is reported") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    mkdirs(tmp / "outside");
    append(tmp / "outside/s.jsonl");
    Harness h;
    h.watchAndSettle(root);
    fs::rename(tmp / "outside/s.jsonl", root + "/proj/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE("a directory moved in is reported and then watched at its new path") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root);
    mkdirs(tmp / "outside/proj/sub");
    append(tmp / "outside/proj/sub/s.jsonl");
    Harness h;
    h.watchAndSettle(root);
    fs::rename(tmp / "outside/proj", root + "/proj");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/proj/sub"); }));
    CHECK(h.saw(root + "/proj"));
    h.clear();
    append(root + "/proj/sub/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/sub/s.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE("a directory moved out is reported and no longer watched under its old path") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    mkdirs(tmp / "outside");
    append(root + "/proj/s.jsonl");
    Harness h;
    h.w().addRoot(root);
    REQUIRE(h.runUntil([&] { return h.saw(root + "/proj"); }));
    h.clear();
    fs::rename(root + "/proj", tmp / "outside/proj");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/proj"); }));
    h.clear();
    append(tmp / "outside/proj/s.jsonl");
    h.runFor(kQuietMs);
    CHECK_FALSE(h.saw(root + "/proj/s.jsonl"));
    CHECK(h.seen.empty());
    CHECK(h.finish() == 0);
}

TEST_CASE("a deleted file is reported") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    append(root + "/proj/s.jsonl");
    Harness h;
    h.watchAndSettle(root);
    fs::remove(root + "/proj/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl"); }));
    CHECK_FALSE(fs::exists(root + "/proj/s.jsonl"));
    CHECK(h.finish() == 0);
}

TEST_CASE("a burst of 1000 appends spread over many loop turns is coalesced into few callbacks") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root);
    // A long settle window, so the test does not depend on how fast this
    // machine turns the loop.
    constexpr std::uint64_t kBurstSettleMs = 200;
    Harness h(kBurstSettleMs);
    h.watchAndSettle(root);

    // 20 rounds of 50 appends, alternating two files so the kernel cannot
    // merge them, one round per loop turn (a 1 ms repeating timer).
    struct Burst {
        std::string a, b;
        int rounds = 0;
    } burst{root + "/a.jsonl", root + "/b.jsonl"};
    constexpr int kRounds = 20;
    constexpr int kAppendsPerRound = 50;
    uv_timer_t writer{};
    uv_timer_init(&h.loop, &writer);
    writer.data = &burst;
    uv_timer_start(
        &writer,
        [](uv_timer_t* t) {
            auto* b = static_cast<Burst*>(t->data);
            for (int i = 0; i < kAppendsPerRound; ++i) append(i % 2 ? b->a : b->b);
            if (++b->rounds == kRounds) uv_timer_stop(t);
        },
        1, 1);
    REQUIRE(h.runUntil([&] { return burst.rounds == kRounds; }));
    h.runFor(2 * kBurstSettleMs);  // let the last window close
    CHECK(h.saw(root + "/a.jsonl"));
    CHECK(h.saw(root + "/b.jsonl"));
    CHECK(h.batches.size() >= 1);
    CHECK(h.batches.size() <= 3);
    uv_close(reinterpret_cast<uv_handle_t*>(&writer), nullptr);
    CHECK(h.finish() == 0);
}

TEST_CASE("with nothing changing there are no callbacks and no running timers") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    Harness h;
    h.w().addRoot(root);
    h.w().addRoot(tmp / "missing/root");  // a waiting root costs nothing either
    REQUIRE(h.runUntil([&] { return h.saw(root); }));
    h.clear();
    h.runFor(kQuietMs);
    CHECK(h.batches.empty());
    CHECK(h.rescans == 0);
    CHECK(h.activeTimers() == 0);
    CHECK(h.finish() == 0);
}

// ---- roots that come and go ----

TEST_CASE("a root created after start, two levels below what exists, is picked up") {
    TempDir tmp;
    const std::string root = tmp / "x/y/root";
    Harness h;
    h.w().addRoot(root);
    CHECK(h.root().mode == "waiting");
    mkdirs(root + "/proj");
    append(root + "/proj/s.jsonl");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/proj"); }));
    CHECK(h.saw(root));
    CHECK(h.root().mode == "events");
    h.clear();
    append(root + "/proj/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE("a root whose ancestors appear one at a time is picked up") {
    TempDir tmp;
    const std::string root = tmp / "x/y/root";
    Harness h;
    h.w().addRoot(root);
    mkdirs(tmp / "x");
    h.runFor(50);  // the watcher moves its anchor down to x
    mkdirs(tmp / "x/y");
    h.runFor(50);
    CHECK(h.root().mode == "waiting");
    CHECK(h.batches.empty());
    mkdirs(root);
    append(root + "/s.jsonl");
    REQUIRE(h.runUntil([&] { return h.saw(root); }));
    CHECK(h.root().mode == "events");
    CHECK(h.finish() == 0);
}

TEST_CASE("an anchor stops asking for creations once its root appears") {
    TempDir tmp;
    const std::string parent = tmp / "home";
    const std::string root = parent + "/x/root";
    mkdirs(parent + "/other");
    Harness h;
    h.w().addRoot(parent + "/other");  // keeps `parent` watched as its guard throughout
    h.w().addRoot(root);
    REQUIRE(h.root(1).mode == "waiting");
    CHECK((inotifyMasks().at(inodeOf(parent)) & IN_CREATE) != 0);
    mkdirs(root);
    REQUIRE(h.runUntil([&] { return h.saw(root); }));
    // Now only a guard: told of being moved or deleted, of nothing else.
    const auto masks = inotifyMasks();
    CHECK(masks.at(inodeOf(parent)) == (IN_DELETE_SELF | IN_MOVE_SELF));
    CHECK(masks.at(inodeOf(tmp.path)) == (IN_DELETE_SELF | IN_MOVE_SELF));
    CHECK((masks.at(inodeOf(root)) & (IN_CREATE | IN_MODIFY)) == (IN_CREATE | IN_MODIFY));
    CHECK(h.finish() == 0);
}

TEST_CASE("a deleted root is waited for and picked up when it is created again") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    Harness h;
    h.watchAndSettle(root);
    fs::remove_all(root);
    REQUIRE(h.runUntil([&] { return h.root().mode == "waiting"; }));
    CHECK(h.runUntil([&] { return h.saw(root); }));  // reported as gone
    h.clear();
    mkdirs(root + "/again");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/again"); }));
    CHECK(h.root().mode == "events");
    CHECK(h.finish() == 0);
}

TEST_CASE("a root whose ancestor is moved away is picked up when it is created again") {
    TempDir tmp;
    const std::string root = tmp / "home/.claude/projects";
    mkdirs(root + "/proj");
    Harness h;
    h.watchAndSettle(root);
    fs::rename(tmp / "home/.claude", tmp / "home/.claude.old");
    REQUIRE(h.runUntil([&] { return h.root().mode == "waiting"; }));
    // The moved tree is not reported under the root's path any more.
    h.runFor(50);
    h.clear();
    append(tmp / "home/.claude.old/projects/proj/s.jsonl");
    mkdirs(root + "/fresh");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/fresh"); }));
    CHECK_FALSE(h.saw(root + "/proj/s.jsonl"));
    CHECK(h.root().mode == "events");
    CHECK(h.finish() == 0);
}

// ---- lost events and fallbacks ----

TEST_CASE("a queue overflow asks for a rescan, and watching goes on afterwards") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root + "/proj");
    Harness h;
    h.watchAndSettle(root);
    h.w().injectEventsForTest(overflowEvent());
    REQUIRE(h.runUntil([&] { return h.rescans == 1; }));
    CHECK(h.batches.empty());  // the rescan replaces that window's changes
    CHECK(h.root().mode == "events");
    // The rebuilt watches see old and new directories.
    append(root + "/proj/s.jsonl");
    mkdirs(root + "/new");
    append(root + "/new/t.jsonl");
    REQUIRE(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl") && h.saw(root + "/new"); }));
    h.clear();
    append(root + "/new/t.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/new/t.jsonl"); }));
    CHECK(h.rescans == 1);
    CHECK(h.finish() == 0);
}

TEST_CASE("reaching the watch limit falls back to stat scans that still report changes") {
    TempDir tmp;
    const std::string root = tmp / "root";
    for (const char* d : {"/p1", "/p2", "/p3", "/p4"}) mkdirs(root + d);
    append(root + "/p1/s.jsonl");
    Harness h;
    h.w().setMaxWatchesForTest(2);
    h.w().setStatScanIntervalMs(20);
    h.w().addRoot(root);
    const WatchRootState state = h.root();
    CHECK(state.mode == "stat_scan");
    REQUIRE(state.lastError.has_value());
    CHECK(state.lastError->find("max_user_watches") != std::string::npos);
    // The first scan reports every directory, like the first events walk.
    REQUIRE(h.runUntil([&] { return h.saw(root + "/p4"); }));
    CHECK(h.saw(root));
    h.clear();

    append(root + "/p1/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/p1/s.jsonl"); }));
    mkdirs(root + "/p5/deep");
    append(root + "/p5/deep/t.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/p5/deep/t.jsonl"); }));
    CHECK(h.saw(root + "/p5/deep"));
    fs::remove(root + "/p1/s.jsonl");
    h.clear();
    CHECK(h.runUntil([&] { return h.saw(root + "/p1/s.jsonl"); }));
    CHECK(h.finish() == 0);
}

TEST_CASE("falling back to stat scans drops the root's watches, beside a root sharing its prefix") {
    TempDir tmp;
    const std::string sibling = tmp / "a-b";  // sorts between "a" and "a/..."
    const std::string root = tmp / "a";
    mkdirs(sibling);
    for (const char* d : {"/p1", "/p2", "/p3"}) mkdirs(root + d);
    Harness h;
    h.w().addRoot(sibling);  // its tree and guards: 1 + the temp dir's ancestors
    const std::size_t used = inotifyMasks().size();
    h.w().setMaxWatchesForTest(used + 2);  // room for "a" and one subdirectory
    h.w().addRoot(root);
    REQUIRE(h.root(1).mode == "stat_scan");
    CHECK(h.root(0).mode == "events");
    const auto masks = inotifyMasks();
    CHECK(masks.size() == used);
    CHECK(masks.count(inodeOf(root)) == 0);
    for (const char* d : {"/p1", "/p2", "/p3"}) CHECK(masks.count(inodeOf(root + d)) == 0);
    CHECK(h.finish() == 0);
}

TEST_CASE("a stat-scan root that does not exist yet is picked up when it appears") {
    TempDir tmp;
    const std::string root = tmp / "x/root";
    Harness h;
    h.w().setMaxWatchesForTest(0);
    h.w().setStatScanIntervalMs(20);
    h.w().addRoot(root);
    CHECK(h.root().mode == "stat_scan");
    mkdirs(root + "/proj");
    append(root + "/proj/s.jsonl");
    CHECK(h.runUntil([&] { return h.saw(root + "/proj/s.jsonl"); }));
    CHECK(h.saw(root + "/proj"));
    CHECK(h.finish() == 0);
}

// ---- ownership ----

TEST_CASE("the owner may destroy the watcher from inside its callback") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root);
    Harness h;
    h.afterChanges = [&] { h.watcher.reset(); };
    h.w().addRoot(root);
    REQUIRE(h.runUntil([&] { return !h.watcher.has_value(); }));
    CHECK(h.batches.size() == 1);
    CHECK(h.finish() == 0);
}

TEST_CASE("a closed watcher reports nothing and leaves nothing on the loop") {
    TempDir tmp;
    const std::string root = tmp / "root";
    mkdirs(root);
    Harness h;
    h.w().addRoot(root);
    h.w().close();
    append(root + "/s.jsonl");
    h.runFor(50);
    CHECK(h.batches.empty());
    uv_close(reinterpret_cast<uv_handle_t*>(&h.deadline), nullptr);
    uv_run(&h.loop, UV_RUN_DEFAULT);  // returns only when no handle is left
    CHECK(uv_loop_alive(&h.loop) == 0);
    CHECK(uv_loop_close(&h.loop) == 0);
}
