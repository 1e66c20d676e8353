#include "vcpu.h"

#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ntc/error.h>

#include "lapic.h"
#include "machine.h"
#include "vcpu_report.h"
#include "vm.h"

namespace ntc::vmm {

namespace {

void on_kick(int) {}

void handle_io(kvm_run* run, const VcpuExits& exits) {
    auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
    uint16_t port = run->io.port;
    unsigned size = run->io.size;
    std::lock_guard lock(exits.io_lock);
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            uint32_t value = 0;
            std::memcpy(&value, data, size);
            exits.ports.write(port, size, value);
        } else {
            uint64_t value = exits.ports.read(port, size);
            std::memcpy(data, &value, size);
        }
    }
}

void handle_mmio(kvm_run* run, const VcpuExits& exits) {
    uint64_t address = run->mmio.phys_addr;
    unsigned size = std::min<unsigned>(run->mmio.len, 8);
    if (run->mmio.is_write) {
        uint64_t value = 0;
        std::memcpy(&value, run->mmio.data, size);
        exits.mmio.write(address, size, value);
    } else {
        uint64_t value = exits.mmio.read(address, size);
        std::memcpy(run->mmio.data, &value, size);
    }
}

// A triple fault that is not a reboot leaves nothing on the guest's
// console.  kvm-amd re-initialises the vCPU before KVM_EXIT_SHUTDOWN
// returns, so its registers then are the reset state and say nothing; the
// guest's RAM (its printk buffer is plain text) and the host kernel's KVM
// tracepoints do.
void report_triple_fault(unsigned index, int vcpu_fd) {
    kvm_regs regs{};
    kvm_sregs sregs{};
    bool have = ::ioctl(vcpu_fd, KVM_GET_REGS, &regs) == 0 && ::ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) == 0;
    if (have && !(regs.rip == 0xfff0 && sregs.cs.base == 0xffff0000))
        std::fprintf(stderr, "ntc-vmm: vCPU %u triple-faulted at RIP %#llx (RSP %#llx, CR2 %#llx, CR3 %#llx)\n", index,
                     (unsigned long long)regs.rip, (unsigned long long)regs.rsp, (unsigned long long)sregs.cr2,
                     (unsigned long long)sregs.cr3);
    else
        std::fprintf(stderr, "ntc-vmm: vCPU %u triple-faulted (KVM reset its registers, so where is unknown)\n", index);
}

}  // namespace

VcpuSupport vcpu_support(const Vm& vm) {
    int run_size = kvm_ioctl(vm.kvm_fd(), KVM_GET_VCPU_MMAP_SIZE, "GET_VCPU_MMAP_SIZE");
    auto cpuid = std::make_unique<KvmCpuid2>();
    cpuid->nent = 256;
    kvm_ioctl(vm.kvm_fd(), kKvmGetSupportedCpuid, "GET_SUPPORTED_CPUID", cpuid.get());
    bool tsc_deadline = ::ioctl(vm.kvm_fd(), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    return {size_t(run_size), {{cpuid->entries, cpuid->entries + cpuid->nent}}, tsc_deadline};
}

void catch_vcpu_kicks() {
    struct sigaction sa {};
    sa.sa_handler = on_kick;
    ::sigaction(SIGUSR1, &sa, nullptr);
}

// Delegating, so that ~Vcpu unmaps the kvm_run area when a step below fails.
Vcpu::Vcpu(const Vm& vm, const VcpuSupport& support, unsigned index, unsigned count)
    : Vcpu(vm, support.run_size, index) {
    CpuidTable table = cpuid_for_vcpu(support.cpuid, index, count, support.tsc_deadline);
    auto cpuid = std::make_unique<KvmCpuid2>();
    cpuid->nent = uint32_t(table.entries.size());
    std::copy(table.entries.begin(), table.entries.end(), cpuid->entries);
    kvm_ioctl(fd_.get(), kKvmSetCpuid2, "SET_CPUID2", cpuid.get());

    // As a PC's firmware leaves them: LINT0 takes the 8259's ExtINT on the
    // boot CPU only (the others keep it masked), LINT1 is NMI.
    kvm_lapic_state lapic;
    kvm_ioctl(fd_.get(), KVM_GET_LAPIC, "GET_LAPIC", &lapic);
    auto set_lvt = [&](size_t offset, uint32_t mode) {
        uint32_t v = lapic::get(lapic, offset);
        lapic::set(lapic, offset, (v & ~lapic::kLvtDeliveryMode & ~lapic::kLvtMasked) | (mode << 8));
    };
    if (index == 0) set_lvt(lapic::kLvt0, lapic::kDeliveryExtInt);
    set_lvt(lapic::kLvt1, lapic::kDeliveryNmi);
    kvm_ioctl(fd_.get(), KVM_SET_LAPIC, "SET_LAPIC", &lapic);

    kvm_fpu fpu{};
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    kvm_ioctl(fd_.get(), KVM_SET_FPU, "SET_FPU", &fpu);
}

Vcpu::Vcpu(const Vm& vm, size_t run_size, unsigned index)
    : index_(index), fd_(kvm_ioctl(vm.fd(), KVM_CREATE_VCPU, "CREATE_VCPU", index)) {
    void* run = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (run == MAP_FAILED) ntc::throw_errno("cannot map vCPU state");
    kvm_run_ = static_cast<kvm_run*>(run);
    run_size_ = run_size;
}

Vcpu::~Vcpu() {
    if (kvm_run_) ::munmap(kvm_run_, run_size_);
}

void Vcpu::set_entry(const EntryRegisters& entry) {
    kvm_regs regs;
    kvm_sregs sregs;
    kvm_ioctl(fd_.get(), KVM_GET_SREGS, "GET_SREGS", &sregs);
    entry(regs, sregs);
    kvm_ioctl(fd_.get(), KVM_SET_SREGS, "SET_SREGS", &sregs);
    kvm_ioctl(fd_.get(), KVM_SET_REGS, "SET_REGS", &regs);
}

void Vcpu::start(std::function<void()> body) {
    thread_ = std::thread(std::move(body));
    // Named, so a hung guest's threads in `ps -L` or /proc say which is which.
    ::pthread_setname_np(thread_.native_handle(), ("vcpu" + std::to_string(index_)).c_str());
}

void Vcpu::run(const VcpuExits& exits) {
    while (!exits.stopping) {
        if (report_requested_.exchange(false)) {
            std::fprintf(stderr, "ntc-vmm: %s\n", describe_vcpu(index_, fd_.get()).c_str());
            if (!exits.stopping) kvm_run_->immediate_exit = 0;
        }
        if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            std::fprintf(stderr, "ntc-vmm: KVM_RUN: %s\n", std::strerror(errno));
            return exits.finish(kExitError);
        }
        switch (kvm_run_->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(kvm_run_, exits);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(kvm_run_, exits);
            break;
        case KVM_EXIT_SHUTDOWN:  // triple fault: the kernel's last way to reboot
            report_triple_fault(index_, fd_.get());
            exits.dump_guest_ram();
            return exits.finish(kExitReboot);
        case KVM_EXIT_SYSTEM_EVENT:
            return exits.finish(kvm_run_->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? kExitPowerOff : kExitReboot);
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_FAIL_ENTRY:
            std::fprintf(stderr, "ntc-vmm: vCPU entry failed (reason 0x%llx)\n",
                         (unsigned long long)kvm_run_->fail_entry.hardware_entry_failure_reason);
            return exits.finish(kExitError);
        case KVM_EXIT_INTERNAL_ERROR:
            std::fprintf(stderr, "ntc-vmm: KVM internal error (suberror %u)\n", kvm_run_->internal.suberror);
            return exits.finish(kExitError);
        default:
            std::fprintf(stderr, "ntc-vmm: unexpected vCPU exit %u\n", kvm_run_->exit_reason);
            return exits.finish(kExitError);
        }
    }
}

void Vcpu::kick() {
    kvm_run_->immediate_exit = 1;
    ::pthread_kill(thread_.native_handle(), SIGUSR1);
}

void Vcpu::request_report() {
    report_requested_ = true;
    kick();
}

void Vcpu::join() { thread_.join(); }

}  // namespace ntc::vmm
