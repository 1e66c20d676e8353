#include "machine.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ntc/error.h>
#include <thread>
#include <tuple>
#include <utility>

#include "builder.h"
#include "console_input.h"
#include "console_output.h"
#include "devices/acpi_pm.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/tap.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "io_bus.h"
#include "kvm.h"
#include "layout.h"
#include "loading_overlay.h"
#include "machine_model.h"
#include "vcpu.h"
#include "vm.h"

namespace ntc::vmm {

namespace {

// Level-triggered lines into the in-kernel irqchip, by KVM_IRQ_LINE: a
// plain irqfd only pulses a line, and one with a resamplefd comes back to
// the VMM at each EOI anyway.  A GSI shared by several sources is asserted
// while any of them asserts it.  The UART and the virtio devices set lines
// from different threads under different locks, hence a lock.
class InterruptLines {
public:
    explicit InterruptLines(int vm_fd) : vm_fd_(vm_fd) {}
    void set(uint32_t gsi, unsigned source, bool asserted) {
        std::lock_guard lock(lock_);
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
    std::mutex lock_;
    std::map<uint32_t, uint64_t> asserted_;
};

// A scratch file that goes when its holder does.
struct RemovedFile {
    std::string path;
    ~RemovedFile() {
        if (!path.empty()) ::unlink(path.c_str());
    }
};

class Machine {
public:
    explicit Machine(const MachineConfig& config);
    ~Machine();
    int run();

private:
    void create_devices();
    void create_vcpus();
    void make_loading_overlay();
    void merge_loading_overlay();
    void retire_resumed_image();
    void dump_guest_ram();
    void report_state();
    void report_silent_vcpus();
    void finish(int status);
    template <typename Body>
    void guarded(const char* thread, Body body);

    const MachineConfig& config_;
    std::unique_ptr<Vm> vm_;
    // Serves the image's pages while the resumed guest runs, until all are in.
    std::unique_ptr<ImagePager> pager_;
    // Disk 2 resumed in place takes the guest's writes in this overlay
    // until the image is in and checked (image_pager.h).
    std::unique_ptr<ntc::Overlay> loading_overlay_;
    RemovedFile loading_file_;
    VirtioBlock* first_disk_ = nullptr;
    std::mutex retire_lock_;
    bool image_retired_ = false;
    // In config_.disks' order; an instance's disk is an overlay.
    std::vector<ntc::DiskFile> disks_;
    std::vector<std::unique_ptr<ntc::Overlay>> overlays_;
    Fd tap_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    // A report (SIGQUIT, from the console thread) against the end of the
    // vCPU threads: a signal to a joined thread is a crash.
    std::mutex vcpus_lock_;
    std::atomic<bool> vcpus_ended_{false};

    // The port devices' state (UART, PM, PCI configuration) is touched by
    // vCPU threads and the console thread under this lock; no I/O is done
    // while holding it.  The PCI bus and each virtio device lock themselves.
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

    std::mutex exit_lock_;
    std::condition_variable exit_cv_;
    std::optional<int> exit_status_;
    std::atomic<bool> stopping_{false};
};

Machine::Machine(const MachineConfig& config) : config_(config) {
    if (auto why = kvm_unusable_reason()) throw ntc::Error(*why);
    // Disks first: a locked disk is the likeliest refusal, and cheap to detect.
    for (const auto& spec : config_.disks) {
        if (spec.overlay) overlays_.push_back(std::make_unique<ntc::Overlay>(open_vm_overlay(*spec.overlay)));
        else disks_.push_back(open_vm_disk(spec.path, spec.read_only));
    }
    if (config_.image && config_.lazy_image && !config_.disks.front().overlay) make_loading_overlay();
    if (config_.net) tap_ = open_tap(config_.net->tap);
    if (config_.console_log) {
        console_out_ = ::open(config_.console_log->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (console_out_ < 0) ntc::throw_errno("cannot create console log " + *config_.console_log);
    }
    vm_ = std::make_unique<Vm>(config_.ram_bytes);
    create_devices();
    create_vcpus();
}

Machine::~Machine() {
    console_output_.reset();  // writes out what is left while the file is open
    if (config_.console_log && console_out_ >= 0) ::close(console_out_);
}

void Machine::create_devices() {
    irqs_ = std::make_unique<InterruptLines>(vm_->fd());
    // Source 0 on each line is the serial port or the SCI; virtio devices are 1 + index.
    console_output_ = std::make_unique<ConsoleOutput>(console_out_);
    serial_ = std::make_unique<Serial>([this](uint8_t b) { console_output_->put(b); },
                                       [this](bool on) { irqs_->set(layout::kCom1Irq, 0, on); });
    pm_ = std::make_unique<AcpiPm>(
        [this](GuestRequest r, const char* how) {
            if (r == GuestRequest::Reboot) std::fprintf(stderr, "ntc-vmm: the guest asked for a reset (%s)\n", how);
            finish(r == GuestRequest::PowerOff ? kExitPowerOff : kExitReboot);
        },
        [this](bool on) { irqs_->set(layout::kSciIrq, 0, on); });
    pci_ = std::make_unique<PciBus>();
    // Device i (disks, then the NIC) sits in slot i + 1 with BAR i and
    // interrupt source i + 1 on its line.
    auto add_virtio = [this](std::unique_ptr<VirtioDevice> device) {
        size_t i = pci_->slots_used();
        uint32_t gsi = layout::pci_gsi(unsigned(i) + 1);
        auto pci_device = std::make_shared<VirtioPciDevice>(
            std::move(device), vm_->memory(), uint32_t(layout::kPciMmioBase + i * VirtioPciDevice::kBarSize),
            uint8_t(gsi), [this, gsi, source = unsigned(i) + 1](bool on) { irqs_->set(gsi, source, on); }, *vm_);
        pci_->add(pci_device);
        virtio_.push_back(pci_device);
        return pci_device;
    };
    unsigned disk_queues = std::min(config_.cpus, VirtioBlock::kMaxQueues);
    size_t plain = 0, overlaid = 0;
    for (size_t i = 0; i < config_.disks.size(); i++) {
        std::string id = "ntc-disk" + std::to_string(i);
        std::unique_ptr<VirtioBlock> block;
        if (config_.disks[i].overlay) {
            block = std::make_unique<VirtioBlock>(*overlays_[overlaid++], id, disk_queues);
            // An instance's image is retired in its overlay, before its
            // first write there; disk 2 itself never changes.
            if (i == 0 && config_.image) block->before_writes([this] { retire_resumed_image(); });
        } else if (i == 0 && loading_overlay_) {
            block = std::make_unique<VirtioBlock>(*loading_overlay_, id, disk_queues);
            block->leave_overlay_when([this] { return !pager_ || pager_->loaded(); },
                                      [this] { merge_loading_overlay(); }, disks_[plain++].fd());
        } else {
            const ntc::DiskFile& disk = disks_[plain++];
            block = std::make_unique<VirtioBlock>(disk.fd(), disk.size(), disk.read_only(), id, disk_queues);
        }
        if (i == 0 && config_.image) first_disk_ = block.get();
        add_virtio(std::move(block));
    }
    if (config_.net) {
        auto net = std::make_unique<VirtioNet>(tap_.get(), card_mac(config_));
        net_ = net.get();
        net_pci_ = add_virtio(std::move(net));
    }
    map_devices(ports_, mmio_, *serial_, *pci_, *pm_);
}

void Machine::create_vcpus() {
    VcpuSupport support = vcpu_support(*vm_);
    EntryRegisters entry;
    if (config_.image) {
        // The guest ran on pages that turned out bad: nothing of it may
        // reach a disk, and its disk 2 has not been written.
        auto failed = [loading = loading_file_.path](const std::string& why) {
            if (!loading.empty()) ::unlink(loading.c_str());
            std::fprintf(stderr,
                         "ntc-vmm: %s\nntc-vmm: the resumed machine ran on these pages and stops here; "
                         "disk 2 was not written.\n",
                         why.c_str());
            std::_Exit(kExitError);
        };
        bool lazy = config_.lazy_image && (loading_overlay_ || config_.disks.front().overlay);
        ResumeEntry resume = build_for_resume(vm_->memory(), config_, pci_->slots_used(), lazy, failed);
        entry = std::move(resume.entry);
        pager_ = std::move(resume.pager);
    } else {
        entry = build_for_boot(vm_->memory(), config_, pci_->slots_used());
    }
    // Both wrote a new VM generation ID; a booting kernel reads it anyway.
    if (config_.image) pm_->announce_vm_generation(true);
    for (unsigned i = 0; i < config_.cpus; i++) {
        auto vcpu = std::make_unique<Vcpu>(*vm_, support, i, config_.cpus);
        // The boot CPU starts at the kernel's entry, or the image kernel's;
        // the others wait in KVM for the kernel's INIT/SIPI.
        if (i == 0) vcpu->set_entry(entry);
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

void Machine::make_loading_overlay() {
    const std::string& disk = config_.disks.front().path;
    std::string path = loading_overlay_path(disk);
    try {
        loading_overlay_ =
            std::make_unique<ntc::Overlay>(ntc::Overlay::create(path, ntc::DiskFile(disk, ntc::DiskFile::Mode::read)));
        loading_file_.path = path;
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-vmm: %s; loading the whole image first\n", e.what());
    }
}

// In the worker of disk 2, between requests, or in the main thread once it
// has stopped.  Marked merging before the image is retired: from there on
// a crash leaves a disk that settle_loading_overlay() finishes.
void Machine::merge_loading_overlay() {
    loading_overlay_->begin_merge();
    // From here on the overlay is what finishes the disk: kept if this fails.
    std::string path = std::exchange(loading_file_.path, {});
    retire_resumed_image();
    loading_overlay_->copy_into(disks_.front());
    ::unlink(path.c_str());
}

void Machine::retire_resumed_image() {
    std::lock_guard lock(retire_lock_);
    if (image_retired_) return;
    retire_image(*config_.image, config_.disks.front().overlay ? overlays_.front().get() : nullptr);
    image_retired_ = true;
}

void Machine::finish(int status) {
    std::lock_guard lock(exit_lock_);
    if (!exit_status_) exit_status_ = status;
    stopping_ = true;
    exit_cv_.notify_all();
}

void Machine::dump_guest_ram() {
    if (!config_.crash_dump) return;
    try {
        vm_->write_ram(*config_.crash_dump);
        std::fprintf(stderr, "ntc-vmm: guest RAM written to %s\n", config_.crash_dump->c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ntc-vmm: %s\n", e.what());
    }
}

// Each vCPU and each virtio device's worker prints its own state; guest RAM
// goes to the crash dump file for its kernel log, written last (the lab
// waits for its line).
void Machine::report_state() {
    {
        // Not waiting for the lock: a vCPU that does not leave KVM_RUN holds
        // the join, and the devices and RAM must still be reported.
        std::unique_lock lock(vcpus_lock_, std::try_to_lock);
        const bool ask_vcpus = lock.owns_lock() && !vcpus_ended_;
        if (ask_vcpus)
            for (auto& vcpu : vcpus_) vcpu->request_report();
        else
            std::fprintf(stderr, "ntc-vmm: the vCPUs %s; the machine is shutting down%s\n",
                         vcpus_ended_ ? "have stopped" : "are being stopped",
                         pager_ && !pager_->loaded() ? " once its image is all in" : "");
        for (auto& device : virtio_) device->request_report();
        if (ask_vcpus) report_silent_vcpus();
    }
    dump_guest_ram();
}

// A vCPU's silence is evidence too: the kick did not bring its thread out
// of KVM_RUN, so the host kernel keeps it in the guest or never runs it
// (Documentation/testing.md, "Known failure modes" 16).
void Machine::report_silent_vcpus() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (unsigned i = 0; i < vcpus_.size(); i++) {
        while (vcpus_[i]->report_pending() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (vcpus_[i]->report_pending())
            std::fprintf(stderr,
                         "ntc-vmm: vCPU %u: no report within 3 s of the kick: its thread has not left KVM_RUN\n", i);
    }
}

int Machine::run() {
    ConsoleInput console_input(
        io_lock_, *serial_, stopping_, [this] { finish(kExitQuit); }, [this] { report_state(); });
    catch_vcpu_kicks();
    console_input.catch_signals();
    console_input.attach_terminal();
    // Last before the guest runs, after every step that can still fail:
    // from here on the image is used up.  A lazily loaded one is retired
    // once all of it is in and checked, before disk 2 changes.
    if (config_.image && !pager_) retire_resumed_image();
    if (pager_)
        pager_->start_loading([](const ImagePager::Loaded& l) {
            std::fprintf(stderr,
                         "ntc-vmm: image loaded in %.2f s while the guest ran (%llu of %llu pages on first touch)\n",
                         l.seconds, (unsigned long long)l.on_first_touch, (unsigned long long)l.pages);
        });
    std::thread console([&] { guarded("console", [&] { console_input.run(); }); });
    // Disk and network I/O run in the devices' workers: a vCPU that notifies
    // a queue never waits for the host's disk or TAP.
    for (auto& device : virtio_) device->start_worker();
    if (net_) net_->start_input([this] { net_pci_->notify(VirtioNet::kRxQueue); });
    VcpuExits exits{
        io_lock_, ports_, mmio_, stopping_, [this](int status) { finish(status); }, [this] { dump_guest_ram(); }};
    for (auto& vcpu : vcpus_) vcpu->start([this, &exits, v = vcpu.get()] { guarded("vCPU", [&] { v->run(exits); }); });

    {
        std::unique_lock lock(exit_lock_);
        exit_cv_.wait(lock, [this] { return exit_status_.has_value(); });
    }
    stopping_ = true;
    {
        std::lock_guard lock(vcpus_lock_);
        for (auto& vcpu : vcpus_) vcpu->kick();
        for (auto& vcpu : vcpus_) vcpu->join();
        vcpus_ended_ = true;
    }
    if (net_) net_->stop_input();
    for (auto& device : virtio_) device->stop_worker();
    // The guest's writes reach disk 2 once its image is checked (a damaged
    // one ends the process from the loader); and the guest ran: its image
    // is used up even if it never wrote.
    if (pager_ && !pager_->loaded())
        std::fprintf(stderr, "ntc-vmm: the guest stopped before its image was all in: loading the rest, "
                             "then disk 2 takes the guest's writes\n");
    if (pager_) pager_->wait_until_loaded();
    if (config_.image) {
        try {
            first_disk_->leave_overlay_if_done();
            retire_resumed_image();
        } catch (const ntc::Error& e) {
            std::fprintf(stderr, "ntc-vmm: %s\n", e.what());
        }
    }
    if (pager_) pager_->stop();
    console_input.stop();
    console.join();
    console_output_->drain();
    if (uint64_t lost = console_output_->dropped())
        std::fprintf(stderr, "ntc-vmm: %llu bytes of console output were dropped (nobody read them)\n",
                     (unsigned long long)lost);
    for (auto& disk : disks_)
        if (!disk.read_only()) ::fdatasync(disk.fd());
    for (auto& overlay : overlays_) {
        try {
            overlay->sync();
        } catch (const ntc::Error& e) {
            std::fprintf(stderr, "ntc-vmm: %s\n", e.what());
        }
    }
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
    ports.add(
        kCom1, 8,
        {[&serial](uint64_t offset, unsigned) { return uint64_t(serial.read(uint16_t(offset))); },
         [&serial](uint64_t offset, unsigned, uint64_t value) { serial.write(uint16_t(offset), uint8_t(value)); }},
        "COM1");

    PortRead pm_read = [&pm](uint16_t port, unsigned size) { return pm.read(port, size); };
    PortWrite pm_write = [&pm](uint16_t port, unsigned size, uint32_t value) { pm.write(port, size, value); };
    for (auto [base, length, name] : {std::tuple<uint16_t, uint64_t, const char*>{kPm1EventBlock, 4, "PM1 event block"},
                                      {kPm1ControlBlock, 2, "PM1 control block"},
                                      {kPmTimer, 4, "PM timer"},
                                      {kGpe0Block, 2, "GPE0 block"},
                                      {kI8042Command, 1, "i8042 command port"},
                                      {kResetControl, 1, "reset control register"}})
        ports.add(base, length, by_port(base, pm_read, pm_write), name);

    // Configuration mechanism 1 (PciBus decodes the ports).  The address
    // register answers only whole-dword accesses, and those start at 0xcf8,
    // so its range is that one port: 0xcf9 is the reset control register
    // (above).
    PortRead pci_read = [&pci](uint16_t port, unsigned size) { return pci.io_read(port, size); };
    PortWrite pci_write = [&pci](uint16_t port, unsigned size, uint32_t value) { pci.io_write(port, size, value); };
    ports.add(kPciConfigAddress, 1, by_port(kPciConfigAddress, pci_read, pci_write), "PCI configuration address");
    ports.add(kPciConfigData, 4, by_port(kPciConfigData, pci_read, pci_write), "PCI configuration data");

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
        throw ntc::Error("--cpus must be between 1 and " + std::to_string(kMaxCpus));
    if (config.disks.empty()) throw ntc::Error("no disk given");
    if (config.disks.size() > kMaxDisks) throw ntc::Error("at most " + std::to_string(kMaxDisks) + " disks");
    if (config.ram_bytes < layout::kMinRam) throw ntc::Error("--mem must be at least 64M");
    if (config.ram_bytes % (2 * layout::kMiB)) throw ntc::Error("--mem must be a multiple of 2 MiB");
    struct sysinfo info {};
    if (::sysinfo(&info) == 0) {
        uint64_t host = uint64_t(info.totalram) * info.mem_unit;
        if (config.ram_bytes > host)
            throw ntc::Error("--mem " + std::to_string(config.ram_bytes >> 20) + " MiB is more than this host's " +
                             std::to_string(host >> 20) + " MiB of RAM");
    }
}

int run_machine(const MachineConfig& config) {
    check_machine_config(config);
    Machine machine(config);
    return machine.run();
}

}  // namespace ntc::vmm
