#pragma once
// A vCPU: created with CPUID, local APIC and FPU as a PC's firmware leaves
// them, and its exit loop: KVM_RUN, port and MMIO exits on the machine's
// buses, the exits that end the VM, and the state report asked for by SIGQUIT.
#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>

#include "io_bus.h"
#include "kvm.h"

namespace ntc::vmm {

class Vm;

// What KVM gives every vCPU on this host, asked once per machine.
struct VcpuSupport {
    size_t run_size;    // of the kvm_run area shared with KVM
    CpuidTable cpuid;   // KVM_GET_SUPPORTED_CPUID
    bool tsc_deadline;  // KVM emulates the TSC-deadline timer
};

VcpuSupport vcpu_support(const Vm& vm);

// The boot CPU's state at its entry, written over the registers KVM gives a
// new vCPU (the special registers it leaves alone keep KVM's values).
using EntryRegisters = std::function<void(kvm_regs& regs, kvm_sregs& sregs)>;

// What a running vCPU reaches outside itself.
// MMIO exits take no lock of the VMM's: the MMIO bus is fixed once the
// machine is built, and its one device, the PCI bus, locks itself.
struct VcpuExits {
    std::mutex& io_lock;  // held around each port exit
    const IoBus& ports;
    const IoBus& mmio;
    const std::atomic<bool>& stopping;       // the machine is ending
    std::function<void(int status)> finish;  // ends the VM with this exit status
    std::function<void()> dump_guest_ram;    // after a triple fault's report
};

// kick() interrupts KVM_RUN with SIGUSR1: this gives it a handler that does
// nothing, so the signal ends the ioctl and not the process.
void catch_vcpu_kicks();

class Vcpu {
public:
    // vCPU `index` of `count`.  Unless it is given an entry it waits in KVM
    // for the kernel's INIT/SIPI.
    Vcpu(const Vm& vm, const VcpuSupport& support, unsigned index, unsigned count);
    ~Vcpu();
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;

    void set_entry(const EntryRegisters& entry);

    // Runs `body` in the vCPU's own thread, the one kick() interrupts;
    // `body` calls run().
    void start(std::function<void()> body);
    // The exit loop, until the machine stops or an exit ends the VM.
    void run(const VcpuExits& exits);
    // From another thread: run() leaves KVM_RUN at once.
    void kick();
    // From another thread: the vCPU prints its state and runs on.  It prints
    // it itself because KVM's GET ioctls wait for KVM_RUN to return.
    void request_report();
    // Whether a report asked for has not been printed yet: the thread has
    // not left KVM_RUN since.
    bool report_pending() const { return report_requested_; }
    void join();

private:
    Vcpu(const Vm& vm, size_t run_size, unsigned index);

    unsigned index_;
    Fd fd_;
    kvm_run* kvm_run_ = nullptr;
    size_t run_size_ = 0;
    std::thread thread_;
    std::atomic<bool> report_requested_{false};
};

}  // namespace ntc::vmm
