#pragma once
// What a vCPU is doing, in one line, for a guest that hangs: where it runs,
// whether it can take interrupts, and what its local APIC holds pending.
#include <linux/kvm.h>

#include <string>

namespace ntc::vmm {

// The state of vCPU `index` (its fd), read with KVM's GET ioctls; those
// wait for KVM_RUN to return, so the vCPU's own thread calls this.
std::string describe_vcpu(unsigned index, int vcpu_fd);

// The part of that line that depends only on the state read, so tests reach
// it; `nested` is null where KVM has no nested state to give.
std::string describe_vcpu_state(unsigned index, const kvm_regs& regs, const kvm_sregs& sregs, const kvm_mp_state& mp,
                                const kvm_vcpu_events& events, const kvm_lapic_state& lapic,
                                const kvm_nested_state* nested);

}  // namespace ntc::vmm
