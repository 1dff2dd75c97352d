// The daemon's single-instance lock: a POSIX record lock (fcntl F_SETLK) on a
// file beside the store. A record lock, not flock, because readers can ask
// who holds it (F_GETLK) without taking it — so a status probe can never make
// a daemon that starts at that moment fail. The kernel drops the lock when
// the holder dies, however it dies.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace etld {

class InstanceLock {
public:
    // Takes the lock or fails with code "locked" naming the holder's pid.
    static Result<InstanceLock> acquire(const std::string& lockPath);
    const std::string& path() const { return path_; }

private:
    InstanceLock(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
    UniqueFd fd_;
    std::string path_;
};

// The pid holding the lock, or nullopt when nobody holds it (or the lock
// file does not exist). Never takes the lock. A lock held by the calling
// process itself is not reported (POSIX record-lock semantics).
std::optional<pid_t> lockHolder(const std::string& lockPath);

}  // namespace etld
