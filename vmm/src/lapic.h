#pragma once
// The local APIC's registers as KVM_GET_LAPIC/KVM_SET_LAPIC carry them: the
// APIC page, one 32-bit register every 16 bytes (offsets as in the SDM).
#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ntc::vmm::lapic {

constexpr size_t kTpr = 0x80, kIsr = 0x100, kIrr = 0x200, kLvtTimer = 0x320, kLvt0 = 0x350, kLvt1 = 0x360,
                 kTimerInitial = 0x380, kTimerCurrent = 0x390;
constexpr uint32_t kLvtDeliveryMode = 0x700, kLvtMasked = 1u << 16;
constexpr uint32_t kDeliveryNmi = 4, kDeliveryExtInt = 7;

inline uint32_t get(const kvm_lapic_state& state, size_t offset) {
    uint32_t value;
    std::memcpy(&value, &state.regs[offset], 4);
    return value;
}

inline void set(kvm_lapic_state& state, size_t offset, uint32_t value) { std::memcpy(&state.regs[offset], &value, 4); }

}  // namespace ntc::vmm::lapic
