// it_probe: a tiny helper the integration tests run under setpriv, to see
// exactly what an unprivileged process meets (an errno, or the daemon's
// words) without going through etlctl's interpretation.
//
//   it_probe connect <socket>   connects; prints "connected" and then every
//                               line the daemon sends unprompted until it
//                               closes (or 5 s pass): exit 0. Prints the
//                               errno's name (EACCES, ...) on failure: exit 1.
//   it_probe create <path>      tries to create <path> (O_EXCL); prints
//                               "created" (and removes it again): exit 0, or
//                               the errno's name: exit 1.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

// How long `connect` waits for the daemon to speak and close: generous; the
// daemon refuses a peer at once.
constexpr int kReadDeadlineMs = 5000;

int failWith(int err) {
    const char* name = strerrorname_np(err);
    std::printf("%s\n", name ? name : std::to_string(err).c_str());
    return 1;
}

int probeConnect(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return failWith(ENAMETOOLONG);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return failWith(errno);
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return failWith(errno);
    std::printf("connected\n");
    std::fflush(stdout);
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, kReadDeadlineMs) <= 0) break;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
    }
    ::close(fd);
    return 0;
}

int probeCreate(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return failWith(errno);
    ::close(fd);
    ::unlink(path.c_str());
    std::printf("created\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::strcmp(argv[1], "connect") == 0) return probeConnect(argv[2]);
    if (argc == 3 && std::strcmp(argv[1], "create") == 0) return probeCreate(argv[2]);
    std::fprintf(stderr, "usage: it_probe connect <socket> | create <path>\n");
    return 2;
}
