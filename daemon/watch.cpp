// The watcher's state machine (see watch.h for what it promises).
//
// Watches. Every inotify watch is one directory, kept in two maps (wd -> entry,
// path -> wd) and tagged with the roles it plays:
//   tree    a directory inside an "events" root (the root included): every
//           change in it is reported;
//   anchor  the nearest existing ancestor of a "waiting" root: a creation in
//           it on the way to the root makes the root be looked at again;
//   guard   a proper ancestor of a root (or of an anchor): only its being
//           moved or deleted matters, and that makes every root below it be
//           looked at again.
// One directory may play several roles; its mask is the union of theirs
// (widened with IN_MASK_ADD, narrowed again when a role goes), and the watch
// is removed once it plays none. Paths are built from the root's path as
// given, so reports use the owner's spelling; a directory reached twice (a
// bind mount, two roots through a symlink) keeps its first path and is not
// walked again, which also ends bind-mount loops. Symlinks below a root are
// not followed.
//
// Stat scans. A root in stat_scan mode is walked every interval (lstat of
// every entry, the root itself followed) and compared with the previous walk
// by mtime, size and inode; whatever differs, appeared or vanished is
// reported. The first walk reports directories only, like the first events
// walk.
//
// Invariants.
//   - A directory is reported only after its watch exists, and reports are
//     delivered only when the settle timer fires; the owner lists what it is
//     given, so a file created before the watch existed is still found.
//   - Every root is in exactly one mode: events (its tree is watched), waiting
//     (an anchor is watched), stat_scan (a repeating timer walks it). A root
//     never leaves stat_scan: a watch limit or a network filesystem rarely
//     goes away by itself, and a restart tries events again.
//   - "Reconcile" is the one way a root's mode is decided: it runs when a root
//     is added, when something it depends on vanished, when its anchor saw the
//     next component appear, and after a rebuild.
//   - A lost event (IN_Q_OVERFLOW, a read error) throws every watch away with
//     the inotify instance, reconciles every root on a fresh one, and only then
//     asks the owner to rescan: what changed during the rebuild is either seen
//     by a new watch or by that rescan.
//   - Only the settle timer's callback calls the owner, so the owner never
//     runs in the middle of event handling.
// Everything here runs on the loop thread.
#include "watch.h"

#include <dirent.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include "log.h"
#include "util/unique_fd.h"
#include "uv_handle.h"

namespace etld::daemon {

namespace watch_detail {

std::vector<InotifyRecord> parseInotifyEvents(std::string_view bytes) {
    std::vector<InotifyRecord> out;
    std::size_t at = 0;
    while (bytes.size() - at >= sizeof(inotify_event)) {
        inotify_event head{};
        std::memcpy(&head, bytes.data() + at, sizeof head);
        const std::size_t nameBytes = head.len;
        if (bytes.size() - at - sizeof head < nameBytes) break;  // truncated
        InotifyRecord rec;
        rec.wd = head.wd;
        rec.mask = head.mask;
        rec.cookie = head.cookie;
        const char* name = bytes.data() + at + sizeof head;
        rec.name.assign(name, strnlen(name, nameBytes));  // NUL-padded to alignment
        out.push_back(std::move(rec));
        at += sizeof head + nameBytes;
    }
    return out;
}

std::optional<std::string_view> silentFilesystemName(std::int64_t fsType) {
    // Network and userspace filesystems: inotify sees only the changes made
    // through this kernel, never those made on the server or by the FUSE
    // daemon's backend (sshfs). statfs' f_type is a signed word on some
    // platforms, so compare the low 32 bits the magic numbers occupy.
    struct Silent {
        std::uint32_t magic;
        std::string_view name;
    };
    static constexpr Silent kSilent[] = {
        {NFS_SUPER_MAGIC, "nfs"},   {SMB_SUPER_MAGIC, "smb"},   {CIFS_SUPER_MAGIC, "cifs"},
        {SMB2_SUPER_MAGIC, "smb2"}, {FUSE_SUPER_MAGIC, "fuse"}, {V9FS_MAGIC, "9p"},
        {AFS_SUPER_MAGIC, "afs"},   {AFS_FS_MAGIC, "afs"},      {CEPH_SUPER_MAGIC, "ceph"},
        {CODA_SUPER_MAGIC, "coda"},
    };
    const auto low = static_cast<std::uint32_t>(fsType);
    for (const auto& s : kSilent)
        if (s.magic == low) return s.name;
    return std::nullopt;
}

}  // namespace watch_detail

namespace {

using watch_detail::InotifyRecord;

// What a directory in a root's tree asks for: everything that changes which
// files exist or what they hold. IN_MODIFY catches appends by a writer that
// keeps its file open (JSONL logs), IN_CLOSE_WRITE a rewrite-and-close,
// IN_ATTRIB a touch or a chmod that makes something readable.
constexpr std::uint32_t kContentMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_MODIFY |
                                       IN_CLOSE_WRITE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF |
                                       IN_MOVE_SELF;
// What a guard asks for: only that it stops being where it was.
constexpr std::uint32_t kSelfMask = IN_DELETE_SELF | IN_MOVE_SELF;
// What an anchor asks for: entries appearing (or becoming accessible), not
// writes to files, since an anchor is often $HOME and sees much traffic.
constexpr std::uint32_t kAnchorMask = IN_CREATE | IN_MOVED_TO | IN_ATTRIB | kSelfMask;
// Events that end a watch's meaning at its path.
constexpr std::uint32_t kLostMask = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT;

// One read() takes this much; 64 KiB holds ~4000 events without names.
constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Reads per wake-up before the loop serves others; the poll is level-triggered
// and comes straight back if more is queued.
constexpr int kMaxReadsPerWakeup = 64;
// Steps of one reconcile: each step follows a directory that appeared or
// vanished while we looked; past this the tree is being churned and the next
// event will reconcile again.
constexpr int kMaxReconcileSteps = 64;

enum Role : unsigned { kTree = 1, kAnchor = 2, kGuard = 4 };

std::uint32_t maskFor(unsigned roles) {
    return ((roles & kTree) ? kContentMask : 0u) | ((roles & kAnchor) ? kAnchorMask : 0u) |
           ((roles & kGuard) ? kSelfMask : 0u);
}

std::string joinPath(const std::string& dir, std::string_view name) {
    std::string out = dir == "/" ? std::string() : dir;
    out += '/';
    out += name;
    return out;
}

// True when `path` is `dir` or lies below it.
bool isUnder(const std::string& path, const std::string& dir) {
    if (dir == "/") return !path.empty() && path[0] == '/';
    return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
           (path.size() == dir.size() || path[dir.size()] == '/');
}

std::string parentOf(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == 0 || slash == std::string::npos) return "/";
    return path.substr(0, slash);
}

// The child of `ancestor` on the way to `path` (which lies strictly below it).
std::string childToward(const std::string& ancestor, const std::string& path) {
    const std::size_t start = ancestor == "/" ? 1 : ancestor.size() + 1;
    const auto end = path.find('/', start);
    return path.substr(0, end);
}

bool isDirectory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string normalizeRoot(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path p(path);
    if (p.is_relative()) {
        std::error_code ec;
        const fs::path cwd = fs::current_path(ec);
        if (!ec) p = cwd / p;
    }
    std::string s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
}

std::optional<std::string_view> silentFilesystemOf(const std::string& path) {
    struct statfs sf {};
    if (::statfs(path.c_str(), &sf) != 0) return std::nullopt;
    return watch_detail::silentFilesystemName(static_cast<std::int64_t>(sf.f_type));
}

bool isWatchLimit(int err) {
    return err == ENOSPC || err == ENOMEM || err == EMFILE;
}

// Subdirectories of `dir` (symlinks not followed); false if it cannot be read.
bool listSubdirectories(const std::string& dir, std::vector<std::string>& out) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return false;
    while (const dirent* e = ::readdir(d)) {
        const std::string_view name(e->d_name);
        if (name == "." || name == "..") continue;
        bool sub = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st {};
            sub = ::lstat(joinPath(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (sub) out.push_back(joinPath(dir, name));
    }
    ::closedir(d);
    return true;
}

// What a stat scan remembers of one path.
struct FileSnap {
    std::int64_t mtimeNs = 0;
    std::int64_t size = 0;
    ino_t ino = 0;
    bool dir = false;
    bool operator==(const FileSnap&) const = default;
};

FileSnap snapOf(const struct stat& st) {
    return FileSnap{
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
        static_cast<std::int64_t>(st.st_size), st.st_ino, S_ISDIR(st.st_mode)};
}

// Every path under `root` (the root followed if a symlink, nothing below it).
void snapshotTree(const std::string& root, std::unordered_map<std::string, FileSnap>& out) {
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    out.emplace(root, snapOf(st));
    std::vector<std::string> stack{root};
    while (!stack.empty()) {
        const std::string dir = std::move(stack.back());
        stack.pop_back();
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;
        while (const dirent* e = ::readdir(d)) {
            const std::string_view name(e->d_name);
            if (name == "." || name == "..") continue;
            std::string path = joinPath(dir, name);
            struct stat est {};
            if (::lstat(path.c_str(), &est) != 0) continue;  // vanished meanwhile
            if (S_ISDIR(est.st_mode)) stack.push_back(path);
            out.emplace(std::move(path), snapOf(est));
        }
        ::closedir(d);
    }
}

}  // namespace

struct Watcher::Impl {
    enum class Mode { Waiting, Events, StatScan };

    struct Root {
        Impl* owner = nullptr;
        std::string path;
        Mode mode = Mode::Waiting;
        std::optional<std::string> lastError;
        std::string anchor;  // waiting: the watched ancestor
        // stat_scan only:
        std::optional<UvHandle<uv_timer_t>> scanTimer;
        std::unordered_map<std::string, FileSnap> snapshot;
        bool scanned = false;  // the first scan reports directories only
    };

    struct Watch {
        std::string path;
        unsigned roles = 0;
    };

    enum class TreeResult { Ok, Missing, Limit, Failed };

    Impl(uv_loop_t* loop, Callbacks callbacks, std::uint64_t settleMs)
        : loop_(loop),
          callbacks_(std::move(callbacks)),
          settleMs_(settleMs),
          readBuffer_(kReadBufferBytes) {
        uv_timer_init(loop_, settle_.get());
        settle_.markInitialized();
        settle_.get()->data = this;
        openInotify();
    }

    ~Impl() { close(); }

    // ---- lifecycle ----

    void openInotify() {
        const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            inotifyError_ = std::string("inotify is unavailable: ") + std::strerror(err) +
                            (err == EMFILE ? " (fs.inotify.max_user_instances)" : "");
            return;
        }
        fd_.reset(fd);
        poll_.emplace();
        if (const int rc = uv_poll_init(loop_, poll_->get(), fd); rc != 0) {
            poll_.reset();
            fd_.reset();
            inotifyError_ = std::string("cannot poll the inotify descriptor: ") + uv_strerror(rc);
            return;
        }
        poll_->markInitialized();
        poll_->get()->data = this;
        uv_poll_start(poll_->get(), UV_READABLE, &Impl::onReadable);
        inotifyError_.reset();
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        settle_.close();
        poll_.reset();  // the handle before its descriptor
        fd_.reset();
        for (auto& r : roots_) r->scanTimer.reset();
        watches_.clear();
        byPath_.clear();
        pending_.clear();
        rescanPending_ = false;
    }

    // Events were lost: a fresh instance, every root reconciled on it, and a
    // rescan requested once that is done.
    void rebuild() {
        if (closed_) return;
        log::debug("watcher: events were lost, rebuilding every watch");
        ++generation_;
        rescanPending_ = true;
        watches_.clear();
        byPath_.clear();
        poll_.reset();
        fd_.reset();
        openInotify();
        for (auto& r : roots_) {
            if (r->mode == Mode::StatScan) continue;
            r->mode = Mode::Waiting;
            r->anchor.clear();
            reconcileOne(*r);
        }
        refreshAux();
        armSettle();
    }

    // ---- roots ----

    void addRoot(const std::string& path) {
        if (closed_) return;
        const std::string p = normalizeRoot(path);
        for (const auto& r : roots_)
            if (r->path == p) return;
        auto root = std::make_unique<Root>();
        root->owner = this;
        root->path = p;
        Root& r = *root;
        roots_.push_back(std::move(root));
        reconcileOne(r);
        refreshAux();
    }

    // Decides a root's mode from what exists now. Watches it leaves behind
    // (an old anchor, guards) are dropped by the refreshAux() that follows.
    void reconcileOne(Root& r) {
        if (closed_ || r.mode == Mode::StatScan) return;
        if (r.mode == Mode::Events) leaveEvents(r);
        r.mode = Mode::Waiting;
        r.anchor.clear();
        if (!fd_.valid()) {
            enterStatScan(r, inotifyError_.value_or("inotify is unavailable"));
            return;
        }
        for (int step = 0; step < kMaxReconcileSteps; ++step) {
            if (isDirectory(r.path)) {
                if (const auto fs = silentFilesystemOf(r.path)) {
                    enterStatScan(r, r.path + " is on " + std::string(*fs) +
                                         ", which reports no change events");
                    return;
                }
                r.lastError.reset();
                int err = 0;
                switch (addTree(r.path, /*followTop=*/true, /*report=*/true, &r, &err)) {
                    case TreeResult::Ok:
                        r.mode = Mode::Events;
                        return;
                    case TreeResult::Missing:
                        leaveEvents(r);
                        continue;  // vanished while we walked it
                    case TreeResult::Limit:
                        leaveEvents(r);
                        enterStatScan(r, limitMessage(err, r.path));
                        return;
                    case TreeResult::Failed:
                        leaveEvents(r);
                        enterStatScan(r, "cannot watch " + r.path + ": " + std::strerror(err));
                        return;
                }
            }
            // Missing: watch the nearest existing ancestor for the next component.
            std::string a = parentOf(r.path);
            while (a != "/" && !isDirectory(a)) a = parentOf(a);
            if (const auto fs = silentFilesystemOf(a)) {
                enterStatScan(
                    r, a + " is on " + std::string(*fs) + ", which reports no change events");
                return;
            }
            if (addWatch(a, kAnchor, /*follow=*/true) < 0) {
                const int err = errno;
                if (err == ENOENT || err == ENOTDIR) continue;  // vanished meanwhile
                enterStatScan(r, isWatchLimit(err)
                                     ? limitMessage(err, a)
                                     : "cannot watch " + a + ": " + std::strerror(err));
                return;
            }
            r.anchor = a;
            struct stat st {};
            if (::stat(r.path.c_str(), &st) == 0)
                r.lastError = r.path + " exists but is not a directory";
            else
                r.lastError.reset();
            // The next component may have appeared between our look and the watch.
            if (isDirectory(childToward(a, r.path))) continue;
            return;
        }
    }

    // The root stops owning its tree; directories another events root also
    // covers stay watched for it.
    void leaveEvents(Root& r) {
        std::vector<int> drop;
        for (const int wd : watchesUnder(r.path)) {
            const auto w = watches_.find(wd);
            if (w == watches_.end() || !(w->second.roles & kTree)) continue;
            bool otherOwner = false;
            for (const auto& o : roots_)
                if (o.get() != &r && o->mode == Mode::Events && isUnder(w->second.path, o->path))
                    otherOwner = true;
            if (!otherOwner) drop.push_back(wd);
        }
        for (const int wd : drop) clearRole(wd, kTree);
    }

    void enterStatScan(Root& r, const std::string& why) {
        leaveEvents(r);
        r.mode = Mode::StatScan;
        r.anchor.clear();
        r.lastError =
            why + "; scanning every " + std::to_string(statScanIntervalMs_) + " ms instead";
        log::debug("watcher: " + *r.lastError);
        r.snapshot.clear();
        r.scanned = false;
        if (!r.scanTimer) {
            r.scanTimer.emplace();
            uv_timer_init(loop_, r.scanTimer->get());
            r.scanTimer->markInitialized();
            r.scanTimer->get()->data = &r;
        }
        uv_timer_start(r.scanTimer->get(), &Impl::onScanTimer, statScanIntervalMs_,
                       statScanIntervalMs_);
        statScan(r);
    }

    static std::string limitMessage(int err, const std::string& dir) {
        if (err == ENOSPC)
            return "inotify watch limit reached (fs.inotify.max_user_watches) at " + dir;
        return "cannot add an inotify watch at " + dir + ": " + std::strerror(err);
    }

    // Anchors and guards follow from the roots' modes; recomputed after any
    // mode change (a handful of roots, a few ancestors each).
    void refreshAux() {
        if (closed_ || !fd_.valid()) return;
        std::set<std::string> anchors, guards;
        for (const auto& r : roots_) {
            std::string base;
            if (r->mode == Mode::Events) {
                base = r->path;
            } else if (r->mode == Mode::Waiting && !r->anchor.empty()) {
                base = r->anchor;
                anchors.insert(r->anchor);
            } else {
                continue;
            }
            for (std::string a = parentOf(base); a != "/"; a = parentOf(a)) guards.insert(a);
        }
        std::vector<std::pair<int, unsigned>> clear;
        for (const auto& [wd, w] : watches_) {
            if ((w.roles & kAnchor) && !anchors.count(w.path)) clear.emplace_back(wd, kAnchor);
            if ((w.roles & kGuard) && !guards.count(w.path)) clear.emplace_back(wd, kGuard);
        }
        for (const auto& [wd, role] : clear) clearRole(wd, role);
        // An anchor that fails here is reconciled by its root's next event;
        // guards are best effort (they only catch a moved ancestor).
        for (const auto& a : anchors)
            if (!hasRole(a, kAnchor)) (void)addWatch(a, kAnchor, true);
        for (const auto& g : guards)
            if (!hasRole(g, kGuard)) (void)addWatch(g, kGuard, true);
    }

    Root* eventsRootOf(const std::string& path) {
        Root* best = nullptr;
        for (const auto& r : roots_)
            if (r->mode == Mode::Events && isUnder(path, r->path) &&
                (!best || r->path.size() > best->path.size()))
                best = r.get();
        return best;
    }

    // ---- watches ----

    bool hasRole(const std::string& path, unsigned role) const {
        const auto it = byPath_.find(path);
        if (it == byPath_.end()) return false;
        const auto w = watches_.find(it->second);
        return w != watches_.end() && (w->second.roles & role);
    }

    // Adds `role` to the watch on `path`: the wd, or -1 with errno set. An
    // *alias is set when the directory is already watched under another path
    // (a bind mount, or two roots reaching it through a symlink).
    int addWatch(const std::string& path, unsigned role, bool follow, bool* alias = nullptr) {
        if (alias) *alias = false;
        if (!fd_.valid()) {
            errno = EBADF;
            return -1;
        }
        const auto known = byPath_.find(path);
        if (known == byPath_.end() && watches_.size() >= maxWatches_) {
            errno = ENOSPC;
            return -1;
        }
        const std::uint32_t mask = maskFor(role) | IN_ONLYDIR | IN_MASK_ADD |
                                   (follow ? 0u : std::uint32_t{IN_DONT_FOLLOW});
        const int wd = ::inotify_add_watch(fd_.get(), path.c_str(), mask);
        if (wd < 0) return -1;
        if (known != byPath_.end() && known->second != wd) {
            // The path now names another directory: the old watch is stale.
            const int old = known->second;
            ::inotify_rm_watch(fd_.get(), old);
            watches_.erase(old);
            byPath_.erase(known);
        }
        auto [it, inserted] = watches_.try_emplace(wd, Watch{path, 0});
        if (!inserted && it->second.path != path) {
            if (alias) *alias = true;
        } else if (inserted) {
            byPath_[path] = wd;
        }
        it->second.roles |= role;
        return wd;
    }

    void clearRole(int wd, unsigned role) {
        const auto it = watches_.find(wd);
        if (it == watches_.end() || !(it->second.roles & role)) return;
        const std::uint32_t before = maskFor(it->second.roles);
        it->second.roles &= ~role;
        if (it->second.roles == 0) {
            dropWatch(wd);
            return;
        }
        const std::uint32_t after = maskFor(it->second.roles);
        if (after == before || !fd_.valid()) return;
        // Narrow the mask (IN_MASK_ADD only widens): an anchor on $HOME that
        // became a guard stops waking us for every file written there. The
        // remaining roles (anchor, guard) follow symlinks.
        const int again =
            ::inotify_add_watch(fd_.get(), it->second.path.c_str(), after | IN_ONLYDIR);
        if (again >= 0 && again != wd && !watches_.count(again))
            ::inotify_rm_watch(fd_.get(), again);  // the path names another directory now
    }

    void dropWatch(int wd) {
        const auto it = watches_.find(wd);
        if (it == watches_.end()) return;
        if (fd_.valid()) ::inotify_rm_watch(fd_.get(), wd);  // EINVAL if the kernel dropped it
        const auto p = byPath_.find(it->second.path);
        if (p != byPath_.end() && p->second == wd) byPath_.erase(p);
        watches_.erase(it);
    }

    // The watches at or below `dir`: `dir` itself, then the paths starting
    // with "dir/", which are contiguous in byPath_ (but not contiguous with
    // `dir`: "dir-x" sorts between them).
    std::vector<int> watchesUnder(const std::string& dir) const {
        std::vector<int> out;
        if (const auto it = byPath_.find(dir); it != byPath_.end()) out.push_back(it->second);
        const std::string prefix = dir == "/" ? "/" : dir + "/";
        for (auto it = byPath_.lower_bound(prefix);
             it != byPath_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
            out.push_back(it->second);
        return out;
    }

    void dropSubtree(const std::string& dir) {
        for (const int wd : watchesUnder(dir)) dropWatch(wd);
    }

    // Watches `top` and every directory below it, each before it is listed,
    // and reports each one watched. A subdirectory that cannot be watched is
    // skipped (noted in `errorsTo`); `top` failing ends the walk.
    TreeResult addTree(const std::string& top, bool followTop, bool reportDirs, Root* errorsTo,
                       int* err) {
        std::vector<std::string> stack{top};
        bool first = true;
        while (!stack.empty()) {
            const std::string dir = std::move(stack.back());
            stack.pop_back();
            bool alias = false;
            const int wd = addWatch(dir, kTree, first && followTop, &alias);
            const bool wasTop = std::exchange(first, false);
            if (wd < 0) {
                const int e = errno;
                if (isWatchLimit(e)) {
                    *err = e;
                    return TreeResult::Limit;
                }
                if (e == ENOENT || e == ENOTDIR) {
                    if (wasTop) return TreeResult::Missing;
                    continue;  // removed while we walked
                }
                if (wasTop && followTop) {
                    *err = e;
                    return TreeResult::Failed;
                }
                if (errorsTo)
                    errorsTo->lastError =
                        "cannot watch " + dir + ": " + std::strerror(e) + ", skipping";
                continue;
            }
            if (alias) continue;  // reached twice: do not walk it again (bind-mount loops)
            if (reportDirs) report(dir);
            listSubdirectories(dir, stack);
        }
        return TreeResult::Ok;
    }

    // ---- events ----

    void readEvents() {
        const std::uint64_t generation = generation_;
        for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
            const ssize_t n = ::read(fd_.get(), readBuffer_.data(), readBuffer_.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                rebuild();
                return;
            }
            if (n == 0) return;
            processEvents(std::string_view(readBuffer_.data(), static_cast<std::size_t>(n)));
            if (closed_ || generation != generation_) return;  // the old descriptor is gone
        }
    }

    void processEvents(std::string_view bytes) {
        for (const InotifyRecord& ev : watch_detail::parseInotifyEvents(bytes)) {
            if (closed_) return;
            if (ev.mask & IN_Q_OVERFLOW) {
                rebuild();  // the rest of this buffer names watches that are gone
                return;
            }
            handleRecord(ev);
        }
    }

    void handleRecord(const InotifyRecord& ev) {
        const auto it = watches_.find(ev.wd);
        if (it == watches_.end()) return;         // a watch dropped before its events were read
        const std::string dir = it->second.path;  // copied: the entry may go
        const unsigned roles = it->second.roles;
        if (ev.mask & kLostMask) {
            lostDirectory(dir, roles);
            return;
        }
        const bool named = !ev.name.empty();
        const std::string full = named ? joinPath(dir, ev.name) : dir;
        if (roles & kTree) treeEvent(full, ev.mask, named);
        if ((roles & kAnchor) && named && (ev.mask & (IN_CREATE | IN_MOVED_TO | IN_ATTRIB)))
            anchorEvent(dir, full);
    }

    void treeEvent(const std::string& full, std::uint32_t mask, bool named) {
        report(full);
        if (!named || !(mask & IN_ISDIR)) return;
        if (mask & (IN_MOVED_FROM | IN_DELETE)) {
            // A moved-out tree keeps its watches, under stale paths; a root
            // nested in it is looked at again.
            lostDirectory(full, kTree);
            return;
        }
        // New (or newly accessible) directory: watched, with all below it,
        // before the owner gets to list it.
        if ((mask & (IN_CREATE | IN_MOVED_TO)) || ((mask & IN_ATTRIB) && !byPath_.count(full))) {
            int err = 0;
            if (addTree(full, false, true, eventsRootOf(full), &err) == TreeResult::Limit) {
                for (const auto& r : roots_)
                    if (r->mode == Mode::Events && isUnder(full, r->path))
                        enterStatScan(*r, limitMessage(err, full));
                refreshAux();
            }
        }
    }

    void anchorEvent(const std::string& dir, const std::string& full) {
        bool changed = false;
        for (const auto& r : roots_) {
            if (r->mode == Mode::Waiting && r->anchor == dir && isUnder(r->path, full)) {
                reconcileOne(*r);
                changed = true;
            }
        }
        if (changed) refreshAux();
    }

    // A watched directory was deleted, moved, or unmounted: what was watched
    // at and below its path no longer is, and every root at or below it (or
    // anchored there) is looked at again.
    void lostDirectory(const std::string& dir, unsigned roles) {
        dropSubtree(dir);
        if (roles & kTree) report(dir);
        bool changed = false;
        for (const auto& r : roots_) {
            if (r->mode == Mode::StatScan) continue;
            const bool below =
                isUnder(r->path, dir) ||
                (r->mode == Mode::Waiting && !r->anchor.empty() && isUnder(r->anchor, dir));
            if (!below) continue;
            if (r->mode == Mode::Events) report(r->path);
            reconcileOne(*r);
            changed = true;
        }
        if (changed) refreshAux();
    }

    // ---- stat scan ----

    void statScan(Root& r) {
        std::unordered_map<std::string, FileSnap> now;
        snapshotTree(r.path, now);
        if (!r.scanned) {
            for (const auto& [path, snap] : now)
                if (snap.dir) report(path);
            r.scanned = true;
        } else {
            for (const auto& [path, snap] : now) {
                const auto old = r.snapshot.find(path);
                if (old == r.snapshot.end() || !(old->second == snap)) report(path);
            }
            for (const auto& [path, snap] : r.snapshot)
                if (!now.count(path)) report(path);
        }
        r.snapshot = std::move(now);
    }

    // ---- delivery ----

    void report(const std::string& path) {
        pending_.insert(path);
        armSettle();
    }

    void armSettle() {
        if (closed_) return;
        if (!uv_is_active(settle_.handle()))
            uv_timer_start(settle_.get(), &Impl::onSettle, settleMs_, 0);
    }

    // The only place the owner is called. The callback is copied first: the
    // owner may destroy the Watcher (and with it callbacks_) from inside it.
    void deliver() {
        if (rescanPending_) {
            rescanPending_ = false;
            pending_.clear();  // the rescan covers them
            if (auto fn = callbacks_.onRescanNeeded) fn();
            return;
        }
        if (pending_.empty()) return;
        std::vector<std::string> changed(pending_.begin(), pending_.end());
        pending_.clear();
        if (auto fn = callbacks_.onChanges) fn(std::move(changed));
    }

    // ---- trampolines ----

    static void onReadable(uv_poll_t* handle, int status, int) noexcept {
        auto* self = static_cast<Impl*>(handle->data);
        if (!self || self->closed_) return;
        try {
            if (status < 0) {
                self->rebuild();  // the descriptor failed: a fresh one, and a rescan
                return;
            }
            self->readEvents();
        } catch (const std::exception& e) {
            log::error(std::string("watcher: handling file events failed: ") + e.what());
            try {
                self->rebuild();  // what was being handled is lost: ask for a rescan
            } catch (...) {
            }
        }
    }

    static void onSettle(uv_timer_t* timer) noexcept {
        auto* self = static_cast<Impl*>(timer->data);
        if (!self || self->closed_) return;
        try {
            self->deliver();
        } catch (const std::exception& e) {
            log::error(std::string("watcher: a change callback failed: ") + e.what());
        } catch (...) {
            log::error("watcher: a change callback failed");
        }
    }

    static void onScanTimer(uv_timer_t* timer) noexcept {
        auto* root = static_cast<Root*>(timer->data);
        if (!root || root->owner->closed_ || root->mode != Mode::StatScan) return;
        try {
            root->owner->statScan(*root);
        } catch (const std::exception& e) {
            log::error(std::string("watcher: a stat scan failed: ") + e.what());
        }
    }

    uv_loop_t* loop_;
    Callbacks callbacks_;
    std::uint64_t settleMs_;
    std::uint64_t statScanIntervalMs_ = kStatScanIntervalMs;
    std::size_t maxWatches_ = SIZE_MAX;
    UniqueFd fd_;  // declared before poll_: closed after it
    std::optional<UvHandle<uv_poll_t>> poll_;
    std::optional<std::string> inotifyError_;  // why fd_ is not valid
    UvHandle<uv_timer_t> settle_;
    std::vector<char> readBuffer_;
    std::unordered_map<int, Watch> watches_;
    std::map<std::string, int> byPath_;  // ordered: a subtree is one range
    std::vector<std::unique_ptr<Root>> roots_;
    std::set<std::string> pending_;  // reported, not yet delivered
    bool rescanPending_ = false;
    std::uint64_t generation_ = 0;  // bumped by rebuild(): reads on the old descriptor stop
    bool closed_ = false;
};

Watcher::Watcher(uv_loop_t* loop, Callbacks callbacks, std::uint64_t settleMs)
    : impl_(std::make_unique<Impl>(loop, std::move(callbacks), settleMs)) {}

Watcher::~Watcher() = default;
Watcher::Watcher(Watcher&&) noexcept = default;

void Watcher::addRoot(const std::string& path) {
    if (impl_) impl_->addRoot(path);
}

void Watcher::dropReported() {
    if (impl_) impl_->pending_.clear();
}

std::vector<WatchRootState> Watcher::roots() const {
    std::vector<WatchRootState> out;
    if (!impl_) return out;
    for (const auto& r : impl_->roots_) {
        const char* mode = r->mode == Impl::Mode::Events     ? "events"
                           : r->mode == Impl::Mode::StatScan ? "stat_scan"
                                                             : "waiting";
        out.push_back(WatchRootState{r->path, mode, r->lastError});
    }
    return out;
}

void Watcher::close() {
    if (impl_) impl_->close();
}

void Watcher::setMaxWatchesForTest(std::size_t n) {
    if (impl_) impl_->maxWatches_ = n;
}

void Watcher::setStatScanIntervalMs(std::uint64_t ms) {
    if (!impl_) return;
    impl_->statScanIntervalMs_ = ms > 0 ? ms : 1;
    for (auto& r : impl_->roots_)
        if (r->scanTimer && r->mode == Impl::Mode::StatScan)
            uv_timer_start(r->scanTimer->get(), &Impl::onScanTimer, impl_->statScanIntervalMs_,
                           impl_->statScanIntervalMs_);
}

void Watcher::injectEventsForTest(std::string_view bytes) {
    if (impl_ && !impl_->closed_) impl_->processEvents(bytes);
}

}  // namespace etld::daemon
