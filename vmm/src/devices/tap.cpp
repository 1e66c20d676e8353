#include "devices/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <ntc/error.h>

namespace ntc::vmm {

Fd open_tap(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        throw ntc::Error("TAP name '" + name + "' must be 1 to " + std::to_string(IFNAMSIZ - 1) + " characters");
    // TUNSETIFF would create a missing interface, down and without an
    // address: a guest on it would reach nothing, so insist on an existing one.
    if (::if_nametoindex(name.c_str()) == 0)
        throw ntc::Error("network interface " + name + " does not exist: create it with 'ip tuntap add dev " + name +
                         " mode tap user $(id -un)', give it an address and bring it up");
    Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT || errno == ENODEV)
            ntc::throw_errno("cannot open /dev/net/tun (load the tun module: modprobe tun)");
        ntc::throw_errno("cannot open /dev/net/tun");
    }
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) {
        switch (errno) {
        case EPERM:
            throw ntc::Error("no permission to attach to TAP " + name + ": recreate it with 'ip tuntap add dev " +
                             name + " mode tap user $(id -un)' or run as root");
        case EBUSY:
            throw ntc::Error("TAP " + name + " is in use by another program (another ntc-vmm?)");
        case EINVAL:
            throw ntc::Error(name + " is not a single-queue TAP interface (make one with 'ip tuntap add dev " + name +
                             " mode tap')");
        default:
            ntc::throw_errno("cannot attach to TAP " + name);
        }
    }
    return fd;
}

}  // namespace ntc::vmm
