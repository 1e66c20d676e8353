#include "vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <ntc/error.h>
#include <tuple>
#include <vector>

#include "e820.h"
#include "layout.h"

namespace ntc::vmm {

namespace {

// The 8259 pair as a PC's firmware leaves it: vectors 0x08 and 0x70, every
// line masked but the cascade.  KVM creates it uninitialised, all lines open
// at vector 0; a kernel resumed without booting never programs it until its
// own syscore resume, so it must not meet that state.
void initialise_pic(int vm_fd) {
    for (auto [chip, base, mask] :
         {std::tuple{KVM_IRQCHIP_PIC_MASTER, 0x08, 0xfb}, {KVM_IRQCHIP_PIC_SLAVE, 0x70, 0xff}}) {
        kvm_irqchip state{};
        state.chip_id = uint32_t(chip);
        kvm_ioctl(vm_fd, KVM_GET_IRQCHIP, "GET_IRQCHIP", &state);
        state.chip.pic.irq_base = uint8_t(base);
        state.chip.pic.imr = uint8_t(mask);
        state.chip.pic.init_state = 0;
        state.chip.pic.init4 = 1;
        kvm_ioctl(vm_fd, KVM_SET_IRQCHIP, "SET_IRQCHIP", &state);
    }
}

// Guest RAM on a 2 MiB boundary and advised for transparent huge pages, as
// QEMU maps it: KVM then maps the guest's memory with 2 MiB nested pages from
// the first touch on (a tenth of the nested page faults and TLB misses), and
// khugepaged never collapses pages under a running guest.
uint8_t* map_guest_ram(uint64_t bytes) {
    constexpr uint64_t kHuge = 2 * layout::kMiB;
    void* area =
        ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) ntc::throw_errno("cannot reserve guest RAM");
    auto start = reinterpret_cast<uintptr_t>(area);
    uintptr_t aligned = (start + kHuge - 1) & ~(kHuge - 1);
    if (aligned > start) ::munmap(area, aligned - start);
    if (uintptr_t end = start + bytes + kHuge; end > aligned + bytes)
        ::munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
    // Without THP in the host kernel this fails, and RAM is simply 4 KiB pages.
    ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
    return reinterpret_cast<uint8_t*>(aligned);
}

}  // namespace

Vm::Vm(uint64_t ram_bytes) : ram_bytes_(ram_bytes) {
    kvm_ = Fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (kvm_.get() < 0) ntc::throw_errno("cannot open /dev/kvm");
    if (kvm_ioctl(kvm_.get(), KVM_GET_API_VERSION, "GET_API_VERSION") != KVM_API_VERSION)
        throw ntc::Error("unsupported KVM API version");
    for (auto [cap, name] : {std::pair{KVM_CAP_IRQCHIP, "IRQCHIP"},
                             {KVM_CAP_PIT2, "PIT2"},
                             {KVM_CAP_USER_MEMORY, "USER_MEMORY"},
                             {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"},
                             {KVM_CAP_IRQ_ROUTING, "IRQ_ROUTING"},
                             {KVM_CAP_IRQFD, "IRQFD"},
                             {KVM_CAP_IOEVENTFD, "IOEVENTFD"}})
        if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, cap) <= 0)
            throw ntc::Error(std::string("KVM lacks the ") + name + " capability");
    vm_ = Fd(kvm_ioctl(kvm_.get(), KVM_CREATE_VM, "CREATE_VM"));
    kvm_ioctl(vm_.get(), KVM_SET_TSS_ADDR, "SET_TSS_ADDR", layout::kTssAddress);
    uint64_t identity_map = layout::kIdentityMapAddress;
    kvm_ioctl(vm_.get(), KVM_SET_IDENTITY_MAP_ADDR, "SET_IDENTITY_MAP_ADDR", &identity_map);
    kvm_ioctl(vm_.get(), KVM_CREATE_IRQCHIP, "CREATE_IRQCHIP");
    initialise_pic(vm_.get());
    kvm_pit_config pit{};
    kvm_ioctl(vm_.get(), KVM_CREATE_PIT2, "CREATE_PIT2", &pit);
    // kvmclock counts from the host's wall clock, not from zero.  A restored
    // kernel's pvclock never goes below the last value it read (without
    // PVCLOCK_TSC_STABLE_BIT, which nested hosts do not give), so the clock
    // of a machine that resumes a checkpoint must start ahead of the clock of
    // the machine that took it, or the guest's time stands still until it
    // catches up.  Wall clocks move forward from checkpoint to resume.
    // It starts a day behind the wall clock: KVM gives the guest the wall
    // clock at kvmclock zero as an unsigned 32-bit second count of host time
    // minus kvmclock, and a kvmclock that has run the least bit ahead of the
    // host's time (they drift apart by parts per million) made that 2^64 ns
    // in seconds mod 2^32: 1266874889 s, 40 years, added to the guest's time.
    if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK) > 0) {
        constexpr uint64_t kKvmclockBehindWallClockNs = 86400ull * 1000000000ull;
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        kvm_clock_data clock{};
        clock.clock = uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec) - kKvmclockBehindWallClockNs;
        kvm_ioctl(vm_.get(), KVM_SET_CLOCK, "SET_CLOCK", &clock);
    }

    ram_ = map_guest_ram(ram_bytes_);
    auto [low, high] = split_ram(ram_bytes_);
    std::vector<MemoryRegion> regions = {{0, low, ram_}};
    if (high) regions.push_back({layout::kHighRamStart, high, ram_ + low});
    for (uint32_t slot = 0; slot < regions.size(); slot++) {
        kvm_userspace_memory_region region{};
        region.slot = slot;
        region.guest_phys_addr = regions[slot].guest_address;
        region.memory_size = regions[slot].size;
        region.userspace_addr = reinterpret_cast<uint64_t>(regions[slot].host);
        kvm_ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, "SET_USER_MEMORY_REGION", &region);
    }
    memory_ = GuestMemory(std::move(regions));
}

Vm::~Vm() {
    if (ram_) ::munmap(ram_, ram_bytes_);
}

uint32_t Vm::add_irqfd(int eventfd) {
    std::lock_guard lock(routing_lock_);
    kvm_irqfd irqfd{};
    irqfd.fd = uint32_t(eventfd);
    irqfd.gsi = routing_.add_msi();
    kvm_ioctl(vm_.get(), KVM_IRQFD, "IRQFD", &irqfd);
    return irqfd.gsi;
}

void Vm::route_msi(uint32_t gsi, const MsiMessage& message) {
    std::lock_guard lock(routing_lock_);
    routing_.set_msi(gsi, message);
    std::vector<uint64_t> table = routing_.kvm_table();
    kvm_ioctl(vm_.get(), kKvmSetGsiRouting, "SET_GSI_ROUTING", table.data());
}

// MMIO, any value: each queue has an address of its own.
void Vm::add_ioeventfd(uint64_t address, unsigned length, int eventfd) {
    kvm_ioeventfd ioeventfd{};
    ioeventfd.addr = address;
    ioeventfd.len = length;
    ioeventfd.fd = eventfd;
    kvm_ioctl(vm_.get(), KVM_IOEVENTFD, "IOEVENTFD", &ioeventfd);
}

void Vm::remove_ioeventfd(uint64_t address, unsigned length, int eventfd) {
    kvm_ioeventfd ioeventfd{};
    ioeventfd.addr = address;
    ioeventfd.len = length;
    ioeventfd.fd = eventfd;
    ioeventfd.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
    kvm_ioctl(vm_.get(), KVM_IOEVENTFD, "IOEVENTFD (deassign)", &ioeventfd);
}

void Vm::write_ram(const std::string& path) const {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) ntc::throw_errno("cannot create crash dump " + path);
    uint64_t done = 0;
    while (done < ram_bytes_) {
        ssize_t n = ::write(fd, ram_ + done, size_t(std::min<uint64_t>(ram_bytes_ - done, 1 << 20)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ntc::Error error(ntc::errno_text("cannot write crash dump " + path));
            ::close(fd);
            throw error;
        }
        done += uint64_t(n);
    }
    ::close(fd);
}

}  // namespace ntc::vmm
