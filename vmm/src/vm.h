#pragma once
// The KVM VM and its memory: /dev/kvm, the VM with its in-kernel irqchip
// (the 8259s as a PC's firmware leaves them), PIT and kvmclock, and guest RAM
// in KVM's memory slots at the addresses of the fixed memory map.
#include <cstdint>
#include <string>

#include "guest_memory.h"
#include "kvm.h"

namespace ntc::vmm {

class Vm {
public:
    // Throws ntc::Error when KVM lacks what the machine needs or RAM cannot
    // be reserved.
    explicit Vm(uint64_t ram_bytes);
    ~Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    int kvm_fd() const { return kvm_.get(); }  // /dev/kvm
    int fd() const { return vm_.get(); }
    const GuestMemory& memory() const { return memory_; }

    // Guest RAM as one flat file, low part then high part, for a post-mortem.
    void write_ram(const std::string& path) const;

private:
    Fd kvm_, vm_;
    uint64_t ram_bytes_;
    uint8_t* ram_ = nullptr;
    GuestMemory memory_;
};

}  // namespace ntc::vmm
