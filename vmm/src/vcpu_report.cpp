#include "vcpu_report.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "lapic.h"

namespace ntc::vmm {

namespace {

// The vectors set in a 256-bit APIC register (ISR, IRR), as "0x31,0xec".
std::string vectors(const kvm_lapic_state& lapic, size_t base) {
    std::string out;
    for (unsigned vector = 0; vector < 256; vector++) {
        if (!(lapic::get(lapic, base + (vector / 32) * 0x10) & (1u << (vector % 32)))) continue;
        char text[8];
        std::snprintf(text, sizeof(text), "%s%#x", out.empty() ? "" : ",", vector);
        out += text;
    }
    return out.empty() ? "-" : out;
}

const char* mp_state_name(uint32_t state) {
    switch (state) {
    case KVM_MP_STATE_RUNNABLE:
        return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
        return "uninitialized";
    case KVM_MP_STATE_INIT_RECEIVED:
        return "waiting-for-SIPI";
    case KVM_MP_STATE_HALTED:
        return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
        return "SIPI-received";
    default:
        return "other";
    }
}

// On AMD, KVM holds every interrupt while the vCPU's global interrupt flag
// is clear, whatever RFLAGS.IF says; only the nested state tells it.
bool gif_clear(const kvm_nested_state* nested) {
    return nested && nested->format == KVM_STATE_NESTED_FORMAT_SVM && !(nested->flags & KVM_STATE_NESTED_GIF_SET);
}

}  // namespace

std::string describe_vcpu_state(unsigned index, const kvm_regs& regs, const kvm_sregs& sregs, const kvm_mp_state& mp,
                                const kvm_vcpu_events& events, const kvm_lapic_state& lapic,
                                const kvm_nested_state* nested) {
    constexpr uint64_t kInterruptFlag = 1u << 9;
    char text[512];
    std::snprintf(text, sizeof(text),
                  "vCPU %u: %s, RIP %#llx RSP %#llx RFLAGS %#llx (interrupts %s%s%s), CR3 %#llx; "
                  "APIC TPR %#x ISR %s IRR %s, timer LVT %#x count %u of %u; "
                  "pending exception %s, NMI %s",
                  index, mp_state_name(mp.mp_state), (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
                  (unsigned long long)regs.rflags, (regs.rflags & kInterruptFlag) ? "on" : "off",
                  events.interrupt.shadow ? ", in a shadow" : "", gif_clear(nested) ? ", GIF clear" : "",
                  (unsigned long long)sregs.cr3, lapic::get(lapic, lapic::kTpr), vectors(lapic, lapic::kIsr).c_str(),
                  vectors(lapic, lapic::kIrr).c_str(), lapic::get(lapic, lapic::kLvtTimer),
                  lapic::get(lapic, lapic::kTimerCurrent), lapic::get(lapic, lapic::kTimerInitial),
                  events.exception.injected || events.exception.pending ? "yes" : "no",
                  events.nmi.pending || events.nmi.injected ? "pending" : "none");
    return text;
}

std::string describe_vcpu(unsigned index, int vcpu_fd) {
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_mp_state mp{};
    kvm_vcpu_events events{};
    kvm_lapic_state lapic{};
    kvm_nested_state nested{};
    nested.size = sizeof(nested);
    if (::ioctl(vcpu_fd, KVM_GET_REGS, &regs) != 0 || ::ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) != 0 ||
        ::ioctl(vcpu_fd, KVM_GET_MP_STATE, &mp) != 0 || ::ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &events) != 0 ||
        ::ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) != 0)
        return "vCPU " + std::to_string(index) + ": its state cannot be read: " + std::strerror(errno);
    // Without nested virtualisation in the host's KVM there is no nested state (and no GIF to clear).
    bool have_nested = ::ioctl(vcpu_fd, KVM_GET_NESTED_STATE, &nested) == 0;
    return describe_vcpu_state(index, regs, sregs, mp, events, lapic, have_nested ? &nested : nullptr);
}

}  // namespace ntc::vmm
