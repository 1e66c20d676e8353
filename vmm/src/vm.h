#pragma once
// The KVM VM and its memory: /dev/kvm, the VM with its in-kernel irqchip
// (the 8259s as a PC's firmware leaves them), PIT and kvmclock, guest RAM
// in KVM's memory slots at the addresses of the fixed memory map, and the
// devices' eventfds in KVM (ioeventfds, irqfds and their GSI routes).
#include <cstdint>
#include <mutex>
#include <string>

#include "gsi_routing.h"
#include "guest_memory.h"
#include "kvm.h"
#include "vm_eventfds.h"

namespace ntc::vmm {

class Vm : public VmEventfds {
public:
    // Throws ntc::Error when KVM lacks what the machine needs or RAM cannot
    // be reserved.
    explicit Vm(uint64_t ram_bytes);
    ~Vm() override;
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    int kvm_fd() const { return kvm_.get(); }  // /dev/kvm
    int fd() const { return vm_.get(); }
    const GuestMemory& memory() const { return memory_; }

    // Guest RAM as one flat file, low part then high part, for a post-mortem.
    void write_ram(const std::string& path) const;

    // Throw ntc::Error when KVM refuses.  An ioeventfd stays until removed,
    // an irqfd until its eventfd is closed, both at most as long as the VM.
    uint32_t add_irqfd(int eventfd) override;
    void route_msi(uint32_t gsi, const MsiMessage& message) override;
    void add_ioeventfd(uint64_t address, unsigned length, int eventfd) override;
    void remove_ioeventfd(uint64_t address, unsigned length, int eventfd) override;

private:
    Fd kvm_, vm_;
    uint64_t ram_bytes_;
    uint8_t* ram_ = nullptr;
    GuestMemory memory_;
    // Devices route their vectors from several vCPU threads; each change
    // sends the whole table, so changes must not interleave.
    std::mutex routing_lock_;
    GsiRouting routing_;
};

}  // namespace ntc::vmm
