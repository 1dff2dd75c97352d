// Helpers of the component tier: a temporary directory per test, child
// processes that hold the instance lock or a writer connection, and a reader
// that runs with its privileges really dropped.
//
// Children talk to the test over two pipes, never through time: a child
// writes one byte when it is ready (the test blocks reading it), then waits
// for the test to close its end of the other pipe (EOF) before it exits. So a
// test knows exactly when a lock is held or a commit is done, and never
// sleeps. A child leaves with _exit(): no destructor, no doctest reporting
// and no SQLite close runs in it — which is also how a "crashed" writer is
// simulated (its connection is never closed, its WAL never checkpointed).
#pragma once

#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include "store/store.h"
#include "util/instance_lock.h"
#include "util/paths.h"

namespace etld::test {

// A fresh directory under $TMPDIR (else /tmp), removed with its contents.
// Mode 0755, so that a reader whose privileges are dropped can enter it but
// not write it. Paths stay short: a socket path must fit in sun_path.
class TempDir {
  public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/etc-XXXXXX";
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
        ::chmod(path_.c_str(), 0755);
    }
    ~TempDir() {
        ::chmod(path_.c_str(), 0755);  // a test may have made it read-only
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

inline bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

inline std::int64_t fileSize(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : -1;
}

// Writes all of `bytes` to fd; false on failure.
inline bool writeAll(int fd, const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads until EOF.
inline std::string readAll(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

// A forked child running `body(fromParent, toParent)`; its return value is
// the exit status. The parent waits for its readiness byte with ready(),
// lets it finish with release() (EOF on its pipe) and reaps it with wait().
//
// SQLite must not be used across fork(): the parent must not have the store
// open when a child that opens it is forked.
class Child {
  public:
    // Descriptors above this are not expected in a test process.
    static constexpr int kMaxInheritedFd = 1024;
    using Body = std::function<int(int fromParent, int toParent)>;

    explicit Child(const Body& body) {
        int down[2], up[2];
        if (::pipe(down) != 0 || ::pipe(up) != 0) throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            // Only its own pipes: an inherited end of another child's pipe
            // would keep that child from seeing EOF.
            for (int fd = 3; fd < kMaxInheritedFd; ++fd)
                if (fd != down[0] && fd != up[1]) ::close(fd);
            int rc = 99;
            try {
                rc = body(down[0], up[1]);
            } catch (...) {
                rc = 98;
            }
            ::_exit(rc);
        }
        ::close(down[0]);
        ::close(up[1]);
        toChild_ = down[1];
        fromChild_ = up[0];
    }
    ~Child() {
        release();
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            wait();
        }
        if (fromChild_ >= 0) ::close(fromChild_);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }

    // Blocks until the child writes its readiness byte; returns it ('\0' if
    // the child exited without writing one).
    char ready() {
        char c = 0;
        for (;;) {
            const ssize_t n = ::read(fromChild_, &c, 1);
            if (n < 0 && errno == EINTR) continue;
            return n == 1 ? c : '\0';
        }
    }
    // Everything the child writes after its readiness byte, until it exits.
    std::string output() { return readAll(fromChild_); }
    // Closes the child's pipe: a child waiting in waitForParent() returns.
    void release() {
        if (toChild_ >= 0) ::close(toChild_);
        toChild_ = -1;
    }
    void killHard() {
        if (pid_ > 0) ::kill(pid_, SIGKILL);
    }
    // Reaps the child; its exit status, or 128 + signal.
    int wait() {
        if (pid_ <= 0) return exitStatus_;
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        exitStatus_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exitStatus_;
    }

    // In the child: blocks until the parent releases it (or dies).
    static void waitForParent(int fromParent) {
        char c;
        for (;;) {
            const ssize_t n = ::read(fromParent, &c, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
        }
    }

  private:
    pid_t pid_ = -1;
    int toChild_ = -1;
    int fromChild_ = -1;
    int exitStatus_ = -1;
};

// A child that takes the store's instance lock ('L' when held, 'E' when it
// could not) and keeps it until released.
inline Child::Body holdLock(const std::string& storePath) {
    return [storePath](int fromParent, int toParent) {
        auto lock = InstanceLock::acquire(lockPathFor(storePath));
        if (!lock) {
            writeAll(toParent, "E");
            return 1;
        }
        writeAll(toParent, "L");
        Child::waitForParent(fromParent);
        return 0;
    };
}

// What a reader saw, reported by a child across a pipe.
struct ReaderOutcome {
    bool ok = false;
    std::string code;     // the error's code when !ok
    std::string message;  // the error's message when !ok
    std::int64_t eventsTotal = -1;
    std::int64_t maxEventId = -1;
};

// Opens the store with openReader() and reads its status input in a child
// whose privileges are really dropped: as root it becomes nobody (65534), who
// cannot write the root-owned 0755 directory; otherwise the directory is made
// read-only for the test's own user. The child first proves it cannot create
// a file there (code "setup" otherwise).
inline ReaderOutcome readAsUnprivileged(const TempDir& dir, const std::string& storePath) {
    const bool root = ::geteuid() == 0;
    if (!root) ::chmod(dir.path().c_str(), 0555);
    Child child([&](int, int toParent) {
        if (root) {
            constexpr gid_t kNobodyGid = 65534;
            constexpr uid_t kNobodyUid = 65534;
            if (::setgroups(0, nullptr) != 0 || ::setgid(kNobodyGid) != 0 ||
                ::setuid(kNobodyUid) != 0)
                return writeAll(toParent, "-setup\tcannot drop privileges\n") ? 0 : 1;
        }
        if (::access(dir.path().c_str(), W_OK) == 0)
            return writeAll(toParent, "-setup\tthe directory is still writable\n") ? 0 : 1;
        std::string line;
        auto db = store::openReader(storePath);
        if (!db) {
            line = "-" + db.error().code + "\t" + db.error().message + "\n";
        } else {
            auto in = store::readStatusInput(*db, storePath);
            if (!in)
                line = "-" + in.error().code + "\t" + in.error().message + "\n";
            else
                line = "+" + std::to_string(in->eventsTotal) + "\t" +
                       std::to_string(in->maxEventId) + "\n";
        }
        return writeAll(toParent, line) ? 0 : 1;
    });
    const std::string out = child.output();
    child.wait();
    if (!root) ::chmod(dir.path().c_str(), 0755);

    ReaderOutcome r;
    if (out.empty()) {
        r.code = "no_output";
        return r;
    }
    const std::string body = out.substr(1, out.size() - 2);  // without the sign and "\n"
    const auto tab = body.find('\t');
    const std::string first = body.substr(0, tab);
    const std::string second = tab == std::string::npos ? "" : body.substr(tab + 1);
    if (out[0] == '+') {
        r.ok = true;
        r.eventsTotal = std::stoll(first);
        r.maxEventId = std::stoll(second);
    } else {
        r.code = first;
        r.message = second;
    }
    return r;
}

}  // namespace etld::test
