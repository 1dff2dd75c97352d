// The daemon's single-instance lock: a POSIX record lock (fcntl F_SETLK) on a
// file beside the store. A record lock, not flock, because readers can ask
// who holds it (F_GETLK) without taking it — so a status probe can never make
// a daemon that starts at that moment fail. The kernel drops the lock when
// the holder dies, however it dies.
//
// The trap of record locks: closing *any* descriptor of the lock file drops
// every record lock the process holds on it. So the process holding the lock
// must never open and close the file again; lockHolder() knows which lock
// files this process holds (by device and inode) and answers for those
// without touching the file.
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

    InstanceLock(InstanceLock&& other) noexcept;
    InstanceLock& operator=(InstanceLock&& other) noexcept;
    InstanceLock(const InstanceLock&) = delete;
    InstanceLock& operator=(const InstanceLock&) = delete;
    ~InstanceLock();

private:
    InstanceLock(UniqueFd fd, std::string path, dev_t dev, ino_t ino);
    void forget();  // removes this lock from the process's registry
    UniqueFd fd_;
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

// The pid holding the lock, or nullopt when nobody holds it (or the lock
// file does not exist). Never takes the lock, and never drops one: for a lock
// this process holds it answers its own pid without opening the file.
std::optional<pid_t> lockHolder(const std::string& lockPath);

}  // namespace etld
