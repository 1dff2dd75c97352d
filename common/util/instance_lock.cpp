#include "util/instance_lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace etld {
namespace {

// Lock files (device, inode) this process holds, with the pid that took
// each: a child forked later inherits this memory but not the record locks,
// so it must not answer for them. Any thread may ask.
std::mutex gHeldMutex;
std::map<std::pair<dev_t, ino_t>, pid_t>& heldLocks() {
    static std::map<std::pair<dev_t, ino_t>, pid_t> held;
    return held;
}

flock wholeFileWriteLock() {
    flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;  // to the end of the file, however it grows
    return fl;
}

}  // namespace

Result<InstanceLock> InstanceLock::acquire(const std::string& lockPath) {
    UniqueFd fd(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid())
        return Error{"lock_io", "cannot open lock file " + lockPath + ": " + std::strerror(errno)};
    flock fl = wholeFileWriteLock();
    if (fcntl(fd.get(), F_SETLK, &fl) != 0) {
        if (errno == EACCES || errno == EAGAIN) {
            const auto holder = lockHolder(lockPath);
            return Error{"locked", "another etld" +
                                       (holder ? " (pid " + std::to_string(*holder) + ")"
                                               : std::string()) +
                                       " already serves this store (lock " + lockPath + ")"};
        }
        return Error{"lock_io", "cannot lock " + lockPath + ": " + std::strerror(errno)};
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0)
        return Error{"lock_io", "cannot stat lock file " + lockPath + ": " + std::strerror(errno)};
    return InstanceLock(std::move(fd), lockPath, st.st_dev, st.st_ino);
}

InstanceLock::InstanceLock(UniqueFd fd, std::string path, dev_t dev, ino_t ino)
    : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {
    std::lock_guard<std::mutex> guard(gHeldMutex);
    heldLocks()[{dev_, ino_}] = ::getpid();
}

InstanceLock::InstanceLock(InstanceLock&& other) noexcept
    : fd_(std::move(other.fd_)), path_(std::move(other.path_)), dev_(other.dev_), ino_(other.ino_) {}

InstanceLock& InstanceLock::operator=(InstanceLock&& other) noexcept {
    if (this != &other) {
        forget();
        fd_ = std::move(other.fd_);
        path_ = std::move(other.path_);
        dev_ = other.dev_;
        ino_ = other.ino_;
    }
    return *this;
}

InstanceLock::~InstanceLock() { forget(); }

void InstanceLock::forget() {
    if (!fd_.valid()) return;  // moved from: the registry entry moved too
    std::lock_guard<std::mutex> guard(gHeldMutex);
    heldLocks().erase({dev_, ino_});
}

std::optional<pid_t> lockHolder(const std::string& lockPath) {
    // Ours: answering must not open and close the file, which would drop it.
    if (struct stat st {}; stat(lockPath.c_str(), &st) == 0) {
        std::lock_guard<std::mutex> guard(gHeldMutex);
        const auto it = heldLocks().find({st.st_dev, st.st_ino});
        if (it != heldLocks().end() && it->second == ::getpid()) return it->second;
    }
    UniqueFd fd(::open(lockPath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    flock fl = wholeFileWriteLock();
    if (fcntl(fd.get(), F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return std::nullopt;
    return fl.l_pid;
}

}  // namespace etld
