#include "eventfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <ntc/error.h>

namespace ntc::vmm {

Fd make_eventfd(const std::string& purpose) {
    Fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (fd.get() < 0) ntc::throw_errno("cannot create an eventfd for " + purpose);
    return fd;
}

void signal_eventfd(int fd) {
    uint64_t one = 1;
    // Fails only when the count would overflow, and then it is signalled already.
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
}

bool take_eventfd(int fd) {
    uint64_t count;
    return ::read(fd, &count, sizeof(count)) == sizeof(count);
}

}  // namespace ntc::vmm
