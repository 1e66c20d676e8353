#include "machine.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>

#include "boot_loader.h"
#include "console_output.h"
#include "devices/acpi_pm.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/tap.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "disk_image.h"
#include "e820.h"
#include "error.h"
#include "io_bus.h"
#include "kvm.h"
#include "layout.h"
#include "machine_model.h"
#include "vcpu_report.h"

namespace ntcvmm {

namespace {

constexpr uint8_t kEscape = 0x01;  // Ctrl-A, then 'x' quits

// Local APIC registers (offsets in its page) and LVT fields.
constexpr size_t kApicLvt0 = 0x350, kApicLvt1 = 0x360;
constexpr uint32_t kLvtDeliveryMode = 0x700, kLvtMasked = 1u << 16;
constexpr uint32_t kDeliveryNmi = 4, kDeliveryExtInt = 7;

// The 8259 pair as a PC's firmware leaves it: vectors 0x08 and 0x70, every
// line masked but the cascade.  KVM creates it uninitialised, all lines open
// at vector 0; a kernel resumed without booting never programs it until its
// own syscore resume, so it must not meet that state.
void initialise_pic(int vm_fd) {
    for (auto [chip, base, mask] : {std::tuple{KVM_IRQCHIP_PIC_MASTER, 0x08, 0xfb}, {KVM_IRQCHIP_PIC_SLAVE, 0x70, 0xff}}) {
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

int signal_pipe[2] = {-1, -1};

// SIGQUIT asks for a state report (a hung guest's evidence); the others end the VM.
constexpr char kSignalReport = 'r', kSignalQuit = 'q';

void on_signal(int signal) {
    char c = signal == SIGQUIT ? kSignalReport : kSignalQuit;
    [[maybe_unused]] ssize_t n = ::write(signal_pipe[1], &c, 1);
}

void on_kick(int) {}

// Guest RAM on a 2 MiB boundary and advised for transparent huge pages, as
// QEMU maps it: KVM then maps the guest's memory with 2 MiB nested pages from
// the first touch on (a tenth of the nested page faults and TLB misses), and
// khugepaged never collapses pages under a running guest.
uint8_t* map_guest_ram(uint64_t bytes) {
    constexpr uint64_t kHuge = 2 * layout::kMiB;
    void* area = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                        -1, 0);
    if (area == MAP_FAILED) throw UserError(errno_text("cannot reserve guest RAM"));
    auto start = reinterpret_cast<uintptr_t>(area);
    uintptr_t aligned = (start + kHuge - 1) & ~(kHuge - 1);
    if (aligned > start) ::munmap(area, aligned - start);
    if (uintptr_t end = start + bytes + kHuge; end > aligned + bytes)
        ::munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
    // Without THP in the host kernel this fails, and RAM is simply 4 KiB pages.
    ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
    return reinterpret_cast<uint8_t*>(aligned);
}

// Puts the terminal into raw mode for the guest and restores it.
class RawTerminal {
public:
    explicit RawTerminal(int fd) : fd_(fd) {
        if (::tcgetattr(fd_, &saved_) != 0) return;
        termios raw = saved_;
        ::cfmakeraw(&raw);
        active_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
    }
    ~RawTerminal() {
        if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
    }

private:
    int fd_;
    termios saved_{};
    bool active_ = false;
};

// Level-triggered lines into the in-kernel irqchip; a GSI shared by several
// sources is asserted while any of them asserts it.
class InterruptLines {
public:
    explicit InterruptLines(int vm_fd) : vm_fd_(vm_fd) {}
    void set(uint32_t gsi, unsigned source, bool asserted) {
        uint64_t& sources = asserted_[gsi];
        uint64_t before = sources;
        if (asserted) sources |= 1ull << source;
        else sources &= ~(1ull << source);
        if (bool(before) == bool(sources)) return;
        kvm_irq_level level{};
        level.irq = gsi;
        level.level = sources ? 1 : 0;
        ::ioctl(vm_fd_, KVM_IRQ_LINE, &level);
    }

private:
    int vm_fd_;
    std::map<uint32_t, uint64_t> asserted_;
};

struct Vcpu {
    Fd fd;
    kvm_run* run = nullptr;
    size_t run_size = 0;
    std::thread thread;
    std::atomic<bool> report_requested{false};
    ~Vcpu() {
        if (run) ::munmap(run, run_size);
    }
};

class Machine {
public:
    explicit Machine(const MachineConfig& config);
    ~Machine();
    int run();

private:
    void create_vm();
    void create_devices();
    void create_vcpus();
    void vcpu_loop(unsigned index, Vcpu& vcpu);
    void report_triple_fault(unsigned index, const Vcpu& vcpu);
    void dump_guest_ram();
    void write_guest_ram(const std::string& path);
    void report_state();
    void handle_io(kvm_run* run);
    void handle_mmio(kvm_run* run);
    void console_loop();
    void finish(int status);
    template <typename Body>
    void guarded(const char* thread, Body body);

    const MachineConfig& config_;
    Fd kvm_, vm_;
    uint8_t* ram_ = nullptr;
    GuestMemory memory_;
    std::vector<std::unique_ptr<DiskImage>> disks_;
    Fd tap_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;

    // Device state is touched by vCPU threads, the console thread and the
    // virtio workers under this one lock; no I/O is done while holding it.
    std::mutex io_lock_;
    IoBus ports_, mmio_;
    std::unique_ptr<InterruptLines> irqs_;
    std::unique_ptr<Serial> serial_;
    std::unique_ptr<PciBus> pci_;
    std::unique_ptr<AcpiPm> pm_;
    VirtioNet* net_ = nullptr;  // owned by its PCI device
    std::shared_ptr<VirtioPciDevice> net_pci_;
    std::vector<std::shared_ptr<VirtioPciDevice>> virtio_;

    int console_out_ = STDOUT_FILENO;
    std::unique_ptr<ConsoleOutput> console_output_;
    int console_wake_[2] = {-1, -1};

    std::mutex exit_lock_;
    std::condition_variable exit_cv_;
    std::optional<int> exit_status_;
    std::atomic<bool> stopping_{false};
};

Machine::Machine(const MachineConfig& config) : config_(config) {
    if (auto why = kvm_unusable_reason()) throw UserError(*why);
    // Disks first: a locked disk is the likeliest refusal, and cheap to detect.
    for (const auto& spec : config_.disks) disks_.push_back(std::make_unique<DiskImage>(spec.path, spec.read_only));
    if (config_.net) tap_ = open_tap(config_.net->tap);
    if (config_.console_log) {
        console_out_ = ::open(config_.console_log->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (console_out_ < 0) throw UserError(errno_text("cannot create console log " + *config_.console_log));
    }
    create_vm();
    create_devices();
    create_vcpus();
}

Machine::~Machine() {
    console_output_.reset();  // writes out what is left while the file is open
    if (ram_) ::munmap(ram_, config_.ram_bytes);
    if (config_.console_log && console_out_ >= 0) ::close(console_out_);
    for (int fd : console_wake_)
        if (fd >= 0) ::close(fd);
}

void Machine::create_vm() {
    kvm_ = Fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    if (kvm_.get() < 0) throw UserError(errno_text("cannot open /dev/kvm"));
    if (kvm_ioctl(kvm_.get(), KVM_GET_API_VERSION, "GET_API_VERSION") != KVM_API_VERSION)
        throw UserError("unsupported KVM API version");
    for (auto [cap, name] : {std::pair{KVM_CAP_IRQCHIP, "IRQCHIP"}, {KVM_CAP_PIT2, "PIT2"},
                             {KVM_CAP_USER_MEMORY, "USER_MEMORY"}, {KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT"}})
        if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, cap) <= 0)
            throw UserError(std::string("KVM lacks the ") + name + " capability");
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
    if (::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK) > 0) {
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        kvm_clock_data clock{};
        clock.clock = uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec);
        kvm_ioctl(vm_.get(), KVM_SET_CLOCK, "SET_CLOCK", &clock);
    }

    ram_ = map_guest_ram(config_.ram_bytes);
    auto [low, high] = split_ram(config_.ram_bytes);
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

void Machine::create_devices() {
    irqs_ = std::make_unique<InterruptLines>(vm_.get());
    // Source 0 on each line is the serial port; virtio devices are 1 + index.
    console_output_ = std::make_unique<ConsoleOutput>(console_out_);
    serial_ = std::make_unique<Serial>([this](uint8_t b) { console_output_->put(b); },
                                       [this](bool on) { irqs_->set(layout::kCom1Irq, 0, on); });
    pm_ = std::make_unique<AcpiPm>([this](GuestRequest r, const char* how) {
        if (r == GuestRequest::Reboot) std::fprintf(stderr, "ntc-vmm: the guest asked for a reset (%s)\n", how);
        finish(r == GuestRequest::PowerOff ? kExitPowerOff : kExitReboot);
    });
    pci_ = std::make_unique<PciBus>();
    // Device i (disks, then the NIC) sits in slot i + 1 with BAR i and
    // interrupt source i + 1 on its line.
    auto add_virtio = [this](std::unique_ptr<VirtioDevice> device) {
        size_t i = pci_->slots_used();
        uint32_t gsi = layout::pci_gsi(unsigned(i) + 1);
        auto pci_device = std::make_shared<VirtioPciDevice>(
            std::move(device), memory_, uint32_t(layout::kPciMmioBase + i * VirtioPciDevice::kBarSize), uint8_t(gsi),
            [this, gsi, source = unsigned(i) + 1](bool on) { irqs_->set(gsi, source, on); });
        pci_->add(pci_device);
        virtio_.push_back(pci_device);
        return pci_device;
    };
    for (size_t i = 0; i < disks_.size(); i++)
        add_virtio(std::make_unique<VirtioBlock>(disks_[i]->fd(), disks_[i]->size(), disks_[i]->read_only(),
                                                 "ntc-disk" + std::to_string(i)));
    if (config_.net) {
        auto net = std::make_unique<VirtioNet>(tap_.get(), card_mac(config_));
        net_ = net.get();
        net_pci_ = add_virtio(std::move(net));
    }
    map_devices(ports_, mmio_, *serial_, *pci_, *pm_);
}

void Machine::create_vcpus() {
    int run_size = kvm_ioctl(kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, "GET_VCPU_MMAP_SIZE");
    auto cpuid = std::make_unique<KvmCpuid2>();
    cpuid->nent = 256;
    kvm_ioctl(kvm_.get(), kKvmGetSupportedCpuid, "GET_SUPPORTED_CPUID", cpuid.get());
    CpuidTable supported{{cpuid->entries, cpuid->entries + cpuid->nent}};
    bool tsc_deadline = ::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

    std::optional<BootState> boot;
    std::optional<RestoreEntry> restore;
    if (config_.image) {
        load_firmware_tables(memory_, config_.cpus, pci_->slots_used());
        auto start = std::chrono::steady_clock::now();
        restore = load_image(*config_.image, memory_, config_.ram_bytes);
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        std::fprintf(stderr, "ntc-vmm: image of %.1f MiB loaded in %.2f s; resuming\n",
                     double(restore->image_bytes) / double(1 << 20), took.count());
    } else {
        boot = load_boot(memory_, config_.ram_bytes, config_.cpus, pci_->slots_used(), config_.boot);
    }

    for (unsigned i = 0; i < config_.cpus; i++) {
        auto vcpu = std::make_unique<Vcpu>();
        vcpu->fd = Fd(kvm_ioctl(vm_.get(), KVM_CREATE_VCPU, "CREATE_VCPU", i));
        void* run = ::mmap(nullptr, size_t(run_size), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd.get(), 0);
        if (run == MAP_FAILED) throw UserError(errno_text("cannot map vCPU state"));
        vcpu->run = static_cast<kvm_run*>(run);
        vcpu->run_size = size_t(run_size);

        CpuidTable table = cpuid_for_vcpu(supported, i, config_.cpus, tsc_deadline);
        cpuid->nent = uint32_t(table.entries.size());
        std::copy(table.entries.begin(), table.entries.end(), cpuid->entries);
        kvm_ioctl(vcpu->fd.get(), kKvmSetCpuid2, "SET_CPUID2", cpuid.get());

        // As a PC's firmware leaves them: LINT0 takes the 8259's ExtINT on
        // the boot CPU only (the others keep it masked), LINT1 is NMI.
        kvm_lapic_state lapic;
        kvm_ioctl(vcpu->fd.get(), KVM_GET_LAPIC, "GET_LAPIC", &lapic);
        auto set_lvt = [&](size_t offset, uint32_t mode) {
            uint32_t v;
            std::memcpy(&v, &lapic.regs[offset], 4);
            v = (v & ~kLvtDeliveryMode & ~kLvtMasked) | (mode << 8);
            std::memcpy(&lapic.regs[offset], &v, 4);
        };
        if (i == 0) set_lvt(kApicLvt0, kDeliveryExtInt);
        set_lvt(kApicLvt1, kDeliveryNmi);
        kvm_ioctl(vcpu->fd.get(), KVM_SET_LAPIC, "SET_LAPIC", &lapic);

        kvm_fpu fpu{};
        fpu.fcw = 0x37f;
        fpu.mxcsr = 0x1f80;
        kvm_ioctl(vcpu->fd.get(), KVM_SET_FPU, "SET_FPU", &fpu);

        // The boot CPU starts at the kernel's entry, or the image kernel's;
        // the others wait in KVM for the kernel's INIT/SIPI.
        if (i == 0) {
            kvm_regs regs;
            kvm_sregs sregs;
            kvm_ioctl(vcpu->fd.get(), KVM_GET_SREGS, "GET_SREGS", &sregs);
            if (restore) restore_cpu_registers(*restore, regs, sregs);
            else boot_cpu_registers(*boot, regs, sregs);
            kvm_ioctl(vcpu->fd.get(), KVM_SET_SREGS, "SET_SREGS", &sregs);
            kvm_ioctl(vcpu->fd.get(), KVM_SET_REGS, "SET_REGS", &regs);
        }
        vcpus_.push_back(std::move(vcpu));
    }
}

template <typename Body>
void Machine::guarded(const char* thread, Body body) {
    // An exception must end the VM with an error, not std::terminate it.
    try {
        body();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ntc-vmm: %s thread failed: %s\n", thread, e.what());
        finish(kExitError);
    }
}

void Machine::finish(int status) {
    std::lock_guard lock(exit_lock_);
    if (!exit_status_) exit_status_ = status;
    stopping_ = true;
    exit_cv_.notify_all();
}

void Machine::handle_io(kvm_run* run) {
    auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
    uint16_t port = run->io.port;
    unsigned size = run->io.size;
    std::lock_guard lock(io_lock_);
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            uint32_t value = 0;
            std::memcpy(&value, data, size);
            ports_.write(port, size, value);
        } else {
            uint64_t value = ports_.read(port, size);
            std::memcpy(data, &value, size);
        }
    }
}

void Machine::handle_mmio(kvm_run* run) {
    uint64_t address = run->mmio.phys_addr;
    unsigned size = std::min<unsigned>(run->mmio.len, 8);
    std::lock_guard lock(io_lock_);
    if (run->mmio.is_write) {
        uint64_t value = 0;
        std::memcpy(&value, run->mmio.data, size);
        mmio_.write(address, size, value);
    } else {
        uint64_t value = mmio_.read(address, size);
        std::memcpy(run->mmio.data, &value, size);
    }
}

// A triple fault that is not a reboot leaves nothing on the guest's
// console.  kvm-amd re-initialises the vCPU before KVM_EXIT_SHUTDOWN
// returns, so its registers then are the reset state and say nothing; the
// guest's RAM (its printk buffer is plain text) and the host kernel's KVM
// tracepoints do.
void Machine::report_triple_fault(unsigned index, const Vcpu& vcpu) {
    kvm_regs regs{};
    kvm_sregs sregs{};
    bool have = ::ioctl(vcpu.fd.get(), KVM_GET_REGS, &regs) == 0 && ::ioctl(vcpu.fd.get(), KVM_GET_SREGS, &sregs) == 0;
    if (have && !(regs.rip == 0xfff0 && sregs.cs.base == 0xffff0000))
        std::fprintf(stderr, "ntc-vmm: vCPU %u triple-faulted at RIP %#llx (RSP %#llx, CR2 %#llx, CR3 %#llx)\n", index,
                     (unsigned long long)regs.rip, (unsigned long long)regs.rsp, (unsigned long long)sregs.cr2,
                     (unsigned long long)sregs.cr3);
    else
        std::fprintf(stderr, "ntc-vmm: vCPU %u triple-faulted (KVM reset its registers, so where is unknown)\n", index);
    dump_guest_ram();
}

void Machine::dump_guest_ram() {
    if (!config_.crash_dump) return;
    try {
        write_guest_ram(*config_.crash_dump);
        std::fprintf(stderr, "ntc-vmm: guest RAM written to %s\n", config_.crash_dump->c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ntc-vmm: %s\n", e.what());
    }
}

// Guest RAM as one flat file, low part then high part, for a post-mortem.
void Machine::write_guest_ram(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw UserError(errno_text("cannot create crash dump " + path));
    uint64_t done = 0;
    while (done < config_.ram_bytes) {
        ssize_t n = ::write(fd, ram_ + done, size_t(std::min<uint64_t>(config_.ram_bytes - done, 1 << 20)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            UserError error(errno_text("cannot write crash dump " + path));
            ::close(fd);
            throw error;
        }
        done += uint64_t(n);
    }
    ::close(fd);
}

// Each vCPU leaves KVM_RUN and prints its own state (KVM's GET ioctls wait
// for KVM_RUN); guest RAM goes to the crash dump file for its kernel log.
void Machine::report_state() {
    for (auto& vcpu : vcpus_) {
        vcpu->report_requested = true;
        vcpu->run->immediate_exit = 1;
        ::pthread_kill(vcpu->thread.native_handle(), SIGUSR1);
    }
    dump_guest_ram();
}

void Machine::vcpu_loop(unsigned index, Vcpu& vcpu) {
    kvm_run* run = vcpu.run;
    while (!stopping_) {
        if (vcpu.report_requested.exchange(false)) {
            std::fprintf(stderr, "ntc-vmm: %s\n", describe_vcpu(index, vcpu.fd.get()).c_str());
            if (!stopping_) run->immediate_exit = 0;
        }
        if (::ioctl(vcpu.fd.get(), KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            std::fprintf(stderr, "ntc-vmm: KVM_RUN: %s\n", std::strerror(errno));
            return finish(kExitError);
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(run);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(run);
            break;
        case KVM_EXIT_SHUTDOWN:  // triple fault: the kernel's last way to reboot
            report_triple_fault(index, vcpu);
            return finish(kExitReboot);
        case KVM_EXIT_SYSTEM_EVENT:
            return finish(run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? kExitPowerOff : kExitReboot);
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_FAIL_ENTRY:
            std::fprintf(stderr, "ntc-vmm: vCPU entry failed (reason 0x%llx)\n",
                         (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return finish(kExitError);
        case KVM_EXIT_INTERNAL_ERROR:
            std::fprintf(stderr, "ntc-vmm: KVM internal error (suberror %u)\n", run->internal.suberror);
            return finish(kExitError);
        default:
            std::fprintf(stderr, "ntc-vmm: unexpected vCPU exit %u\n", run->exit_reason);
            return finish(kExitError);
        }
    }
}

void Machine::console_loop() {
    bool tty = ::isatty(STDIN_FILENO);
    bool input_open = true;
    bool escape_pending = false;
    std::vector<uint8_t> pending;
    while (!stopping_) {
        // A closed input is left out altogether: a hung-up pipe would
        // otherwise report POLLHUP forever.
        pollfd fds[3] = {{console_wake_[0], POLLIN, 0}, {signal_pipe[0], POLLIN, 0},
                         {input_open ? STDIN_FILENO : -1, short(pending.empty() ? POLLIN : 0), 0}};
        // Bytes the UART's FIFO could not take yet are retried shortly.
        int r = ::poll(fds, 3, pending.empty() ? -1 : 2);
        if (r < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        if (fds[1].revents) {
            char c = kSignalQuit;
            if (::read(signal_pipe[0], &c, 1) == 1 && c == kSignalReport) {
                report_state();
            } else {
                finish(kExitQuit);
                break;
            }
        }
        if (fds[2].revents) {
            uint8_t buf[256];
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                if (n == 0 || errno != EINTR) input_open = false;
            }
            for (ssize_t i = 0; i < n; i++) {
                if (tty && escape_pending) {
                    escape_pending = false;
                    if (buf[i] == 'x') {
                        finish(kExitQuit);
                        return;
                    }
                    if (buf[i] != kEscape) pending.push_back(kEscape);
                } else if (tty && buf[i] == kEscape) {
                    escape_pending = true;
                    continue;
                }
                pending.push_back(buf[i]);
            }
        }
        std::lock_guard lock(io_lock_);
        size_t taken = 0;
        while (taken < pending.size() && serial_->can_receive()) serial_->receive(pending[taken++]);
        pending.erase(pending.begin(), pending.begin() + ptrdiff_t(taken));
    }
}

int Machine::run() {
    if (::pipe2(console_wake_, O_CLOEXEC) != 0 || (signal_pipe[0] < 0 && ::pipe2(signal_pipe, O_CLOEXEC) != 0))
        throw UserError(errno_text("pipe"));
    struct sigaction sa{};
    sa.sa_handler = on_kick;
    ::sigaction(SIGUSR1, &sa, nullptr);
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    ::sigaction(SIGQUIT, &sa, nullptr);
    // A console reader that goes away must not kill the VM with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    if (!::isatty(STDIN_FILENO)) ::sigaction(SIGINT, &sa, nullptr);

    std::optional<RawTerminal> raw;
    if (::isatty(STDIN_FILENO)) {
        raw.emplace(STDIN_FILENO);
        std::fprintf(stderr, "ntc-vmm: console attached; Ctrl-A x quits\r\n");
    }
    // Last before the guest runs, after every step that can still fail:
    // from here on the image is used up.
    if (config_.image) retire_image(*config_.image);
    std::thread console([this] { guarded("console", [this] { console_loop(); }); });
    // Disk and network I/O run in the devices' workers: a vCPU that notifies
    // a queue never waits for the host's disk or TAP.
    for (auto& device : virtio_) device->start_worker(io_lock_);
    if (net_)
        net_->start_input([this] {
            std::lock_guard lock(io_lock_);
            net_pci_->notify(VirtioNet::kRxQueue);
        });
    for (unsigned i = 0; i < vcpus_.size(); i++)
        vcpus_[i]->thread = std::thread([this, i, v = vcpus_[i].get()] { guarded("vCPU", [&] { vcpu_loop(i, *v); }); });

    {
        std::unique_lock lock(exit_lock_);
        exit_cv_.wait(lock, [this] { return exit_status_.has_value(); });
    }
    stopping_ = true;
    for (auto& vcpu : vcpus_) {
        vcpu->run->immediate_exit = 1;
        ::pthread_kill(vcpu->thread.native_handle(), SIGUSR1);
    }
    for (auto& vcpu : vcpus_) vcpu->thread.join();
    if (net_) net_->stop_input();
    for (auto& device : virtio_) device->stop_worker();
    char c = 0;
    [[maybe_unused]] ssize_t n = ::write(console_wake_[1], &c, 1);
    console.join();
    console_output_->drain();
    if (uint64_t lost = console_output_->dropped())
        std::fprintf(stderr, "ntc-vmm: %llu bytes of console output were dropped (nobody read them)\n",
                     (unsigned long long)lost);
    for (auto& disk : disks_)
        if (!disk->read_only()) ::fdatasync(disk->fd());
    return *exit_status_;
}

// For a device that decodes whole port numbers itself, on one of its ranges.
using PortRead = std::function<uint32_t(uint16_t port, unsigned size)>;
using PortWrite = std::function<void(uint16_t port, unsigned size, uint32_t value)>;
BusDevice by_port(uint16_t base, PortRead read, PortWrite write) {
    return {[base, read](uint64_t offset, unsigned size) { return uint64_t(read(uint16_t(base + offset), size)); },
            [base, write](uint64_t offset, unsigned size, uint64_t value) {
                write(uint16_t(base + offset), size, uint32_t(value));
            }};
}

}  // namespace

void map_devices(IoBus& ports, IoBus& mmio, Serial& serial, PciBus& pci, AcpiPm& pm) {
    using namespace layout;
    ports.add(kCom1, 8,
              {[&serial](uint64_t offset, unsigned) { return uint64_t(serial.read(uint16_t(offset))); },
               [&serial](uint64_t offset, unsigned, uint64_t value) {
                   serial.write(uint16_t(offset), uint8_t(value));
               }},
              "COM1");

    PortRead pm_read = [&pm](uint16_t port, unsigned size) {
        uint32_t value = ~0u;
        pm.read(port, size, value);
        return value;
    };
    PortWrite pm_write = [&pm](uint16_t port, unsigned size, uint32_t value) { pm.write(port, size, value); };
    for (auto [base, length, name] : {std::tuple<uint16_t, uint64_t, const char*>{kPm1EventBlock, 4, "PM1 event block"},
                                      {kPm1ControlBlock, 2, "PM1 control block"},
                                      {kPmTimer, 4, "PM timer"},
                                      {kI8042Command, 1, "i8042 command port"}})
        ports.add(base, length, by_port(base, pm_read, pm_write), name);

    // Configuration mechanism 1 (PciBus decodes the ports).  The address
    // register answers only whole-dword accesses, and those start at 0xcf8,
    // so its range is that one port: 0xcf9 is the reset control register,
    // which answers byte accesses only, as on Intel chipsets.
    PortRead pci_read = [&pci](uint16_t port, unsigned size) { return pci.io_read(port, size); };
    PortWrite pci_write = [&pci](uint16_t port, unsigned size, uint32_t value) { pci.io_write(port, size, value); };
    ports.add(kPciConfigAddress, 1, by_port(kPciConfigAddress, pci_read, pci_write), "PCI configuration address");
    ports.add(kPciConfigData, 4, by_port(kPciConfigData, pci_read, pci_write), "PCI configuration data");
    PortRead reset_read = [pm_read](uint16_t port, unsigned size) { return size == 1 ? pm_read(port, size) : ~0u; };
    PortWrite reset_write = [pm_write](uint16_t port, unsigned size, uint32_t value) {
        if (size == 1) pm_write(port, size, value);
    };
    ports.add(kResetControl, 1, by_port(kResetControl, reset_read, reset_write), "reset control register");

    // The guest can move a BAR (its address bits are writable) and switch
    // decoding off, so BARs are not claimed one by one: the PCI bus takes the
    // whole memory window the DSDT gives it and decodes the BARs itself.  A
    // BAR moved outside the window is not reached, as behind a host bridge
    // that forwards only its window.
    mmio.add(kPciMmioBase, kPciMmioEnd - kPciMmioBase,
             {[&pci](uint64_t offset, unsigned size) {
                  uint64_t value = ~0ull;
                  pci.mmio_read(kPciMmioBase + offset, size, value);
                  return value;
              },
              [&pci](uint64_t offset, unsigned size, uint64_t value) {
                  pci.mmio_write(kPciMmioBase + offset, size, value);
              }},
             "PCI memory window");
}

void check_machine_config(const MachineConfig& config) {
    if (config.cpus < 1 || config.cpus > kMaxCpus)
        throw UserError("--cpus must be between 1 and " + std::to_string(kMaxCpus));
    if (config.disks.empty()) throw UserError("no disk given");
    if (config.disks.size() > kMaxDisks) throw UserError("at most " + std::to_string(kMaxDisks) + " disks");
    if (config.ram_bytes < layout::kMinRam) throw UserError("--mem must be at least 64M");
    if (config.ram_bytes % (2 * layout::kMiB)) throw UserError("--mem must be a multiple of 2 MiB");
    struct sysinfo info{};
    if (::sysinfo(&info) == 0) {
        uint64_t host = uint64_t(info.totalram) * info.mem_unit;
        if (config.ram_bytes > host)
            throw UserError("--mem " + std::to_string(config.ram_bytes >> 20) + " MiB is more than this host's " +
                            std::to_string(host >> 20) + " MiB of RAM");
    }
}

int run_machine(const MachineConfig& config) {
    check_machine_config(config);
    Machine machine(config);
    return machine.run();
}

}  // namespace ntcvmm
