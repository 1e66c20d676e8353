// libFuzzer target: an adversarial guest driving the PCI bus, a virtio-blk
// device (slot 1) and a virtio-net device (slot 2, its wire a socketpair the
// fuzzer also writes frames into) over fake guest RAM, MSI-X included.
// Input: u16 length of an operation stream (its top bit set: the disk is an
// instance's overlay over a base file, else a plain memfd), the operations,
// then the initial RAM contents.  AddressSanitizer catches any access outside the RAM buffer,
// which is allocated to its exact size.  There is no worker thread: after
// each operation the fuzzer serves what was notified, as a worker would.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <ntc/overlay.h>
#include <string>
#include <vector>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "guest_memory.h"

using namespace ntc::vmm;

namespace {

constexpr size_t kRamSize = 64 * 1024;
constexpr uint64_t kBar = 0xe0000000;

struct Reader {
    const uint8_t* p;
    size_t n;
    template <typename T>
    T take() {
        T v{};
        size_t k = std::min(sizeof(T), n);
        std::memcpy(&v, p, k);
        p += k;
        n -= k;
        return v;
    }
};

int disk_fd() {
    static int fd = [] {
        int f = ::memfd_create("fuzz-disk", 0);
        if (::ftruncate(f, 64 * 1024) != 0) __builtin_trap();
        return f;
    }();
    return fd;
}

// An instance's disk: an overlay over a 64 KiB base, both files removed at
// once (the descriptors keep them).
ntc::Overlay& overlay_disk() {
    static ntc::Overlay overlay = [] {
        char dir[] = "/tmp/ntc-fuzz-XXXXXX";
        if (!::mkdtemp(dir)) __builtin_trap();
        std::string base = std::string(dir) + "/base.img", cow = std::string(dir) + "/instance.cow";
        ntc::DiskFile::create_sparse(base, 64 * 1024);
        ntc::Overlay made = ntc::Overlay::create(cow, ntc::DiskFile(base, ntc::DiskFile::Mode::read));
        ::unlink(cow.c_str());
        ::unlink(base.c_str());
        ::rmdir(dir);
        return made;
    }();
    return overlay;
}

// [0] is the net device's end, [1] the wire's.
const int* wire() {
    static int fds[2] = {-1, -1};
    if (fds[0] < 0 && ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, fds) != 0) __builtin_trap();
    return fds;
}

// KVM's side, with nothing behind it: GSIs are handed out, the rest is
// dropped (the notify eventfds are signalled by the notify writes instead).
struct NoKvm : VmEventfds {
    uint32_t next_gsi = 24;
    uint32_t add_irqfd(int) override { return next_gsi++; }
    void route_msi(uint32_t, const MsiMessage&) override {}
    void add_ioeventfd(uint64_t, unsigned, int) override {}
    void remove_ioeventfd(uint64_t, unsigned, int) override {}
};

// A driver's bring-up in one step: reset, features, then every queue with
// fuzzed size and ring placement, DRIVER_OK.
void bring_up(VirtioPciDevice& d, Reader& ops) {
    d.config_write(0x04, 2, 0x6);
    d.bar_write(0, 0x14, 1, 0);
    d.bar_write(0, 0x14, 1, 3);
    d.bar_write(0, 0x08, 4, 0);
    d.bar_write(0, 0x0c, 4, uint32_t(d.device().features()));
    d.bar_write(0, 0x08, 4, 1);
    d.bar_write(0, 0x0c, 4, 1);
    d.bar_write(0, 0x14, 1, 11);
    for (unsigned queue = 0; queue < d.device().queue_count(); queue++) {
        uint16_t queue_size = ops.take<uint16_t>();
        uint64_t desc = ops.take<uint16_t>(), avail = ops.take<uint16_t>(), used = ops.take<uint16_t>();
        d.bar_write(0, 0x16, 2, queue);
        d.bar_write(0, 0x18, 2, queue_size);
        d.bar_write(0, 0x20, 8, desc);
        d.bar_write(0, 0x28, 8, avail);
        d.bar_write(0, 0x30, 8, used);
        d.bar_write(0, 0x1c, 2, 1);
    }
    d.bar_write(0, 0x14, 1, 15);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Reader in{data, size};
    uint16_t ops_len = in.take<uint16_t>();
    bool on_overlay = ops_len & 0x8000;
    ops_len &= 0x7fff;
    Reader ops{in.p, std::min<size_t>(ops_len, in.n)};
    in.p += ops.n;
    in.n -= ops.n;

    std::unique_ptr<uint8_t[]> ram(new uint8_t[kRamSize]());
    std::memcpy(ram.get(), in.p, std::min(in.n, kRamSize));
    GuestMemory memory({{0, kRamSize, ram.get()}});

    NoKvm kvm;
    PciBus bus;
    auto block = on_overlay ? std::make_unique<VirtioBlock>(overlay_disk(), "fuzz", 2)
                            : std::make_unique<VirtioBlock>(disk_fd(), 64 * 1024, false, "fuzz", 2);
    auto device = std::make_shared<VirtioPciDevice>(
        std::move(block), memory, uint32_t(kBar), 16, [](bool) {}, kvm);
    bus.add(device);
    auto net = std::make_shared<VirtioPciDevice>(
        std::make_unique<VirtioNet>(wire()[0], MacAddress{2, 0, 0, 0, 0, 1}), memory,
        uint32_t(kBar + VirtioPciDevice::kBarSize), 17, [](bool) {}, kvm);
    bus.add(net);
    // Frames left on the wire by the previous input.
    char drain[70000];
    while (::read(wire()[0], drain, sizeof(drain)) > 0 || ::read(wire()[1], drain, sizeof(drain)) > 0) {}

    while (ops.n) {
        uint8_t op = ops.take<uint8_t>() % 10;
        switch (op) {
        case 0: {  // config write through 0xcf8/0xcfc
            uint32_t address = ops.take<uint32_t>();
            uint8_t port = ops.take<uint8_t>() % 8;
            uint8_t width = uint8_t(1u << (ops.take<uint8_t>() % 3));
            bus.io_write(0xcf8, 4, address);
            bus.io_write(uint16_t(0xcf8 + port), width, ops.take<uint32_t>());
            break;
        }
        case 1: {  // config read
            uint32_t address = ops.take<uint32_t>();
            uint8_t port = ops.take<uint8_t>() % 8;
            uint8_t width = uint8_t(1u << (ops.take<uint8_t>() % 3));
            bus.io_write(0xcf8, 4, address);
            bus.io_read(uint16_t(0xcf8 + port), width);
            break;
        }
        case 2: {  // MMIO write near the BAR
            uint32_t offset = ops.take<uint16_t>();
            uint8_t width = uint8_t(1u << (ops.take<uint8_t>() % 4));
            bus.mmio_write(kBar + offset, width, ops.take<uint64_t>());
            break;
        }
        case 3: {  // MMIO read
            uint32_t offset = ops.take<uint16_t>();
            uint8_t width = uint8_t(1u << (ops.take<uint8_t>() % 4));
            uint64_t value;
            bus.mmio_read(kBar + offset, width, value);
            break;
        }
        case 4:  // notify queue 0
            bus.mmio_write(kBar + VirtioPciDevice::kNotifyOffset, 2, 0);
            break;
        case 5: {  // the guest changes RAM under the device
            uint16_t at = ops.take<uint16_t>() % (kRamSize - 8);
            uint64_t value = ops.take<uint64_t>();
            std::memcpy(ram.get() + at, &value, 8);
            break;
        }
        case 6:  // a driver's bring-up of the block device
            bring_up(*device, ops);
            break;
        case 7:  // a driver's bring-up of the network device
            bring_up(*net, ops);
            break;
        case 8:  // notify a network queue
            net->notify(ops.take<uint8_t>() % 2);
            break;
        case 9: {  // a frame arrives from the wire
            size_t length = std::min<size_t>(ops.take<uint16_t>() % 2048, ops.n);
            [[maybe_unused]] ssize_t n = ::write(wire()[1], ops.p, length);
            ops.p += length;
            ops.n -= length;
            break;
        }
        }
        device->serve_notified();
        net->serve_notified();
    }
    return 0;
}
