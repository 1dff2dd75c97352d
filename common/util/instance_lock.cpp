#include "util/instance_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace etld {
namespace {

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
    return InstanceLock(std::move(fd), lockPath);
}

std::optional<pid_t> lockHolder(const std::string& lockPath) {
    UniqueFd fd(::open(lockPath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;
    flock fl = wholeFileWriteLock();
    if (fcntl(fd.get(), F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK) return std::nullopt;
    return fl.l_pid;
}

}  // namespace etld
