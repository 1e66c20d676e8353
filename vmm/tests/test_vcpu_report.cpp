#include <doctest/doctest.h>

#include "lapic.h"
#include "vcpu_report.h"

using namespace ntc::vmm;

TEST_CASE("a vCPU's report says where it runs, whether it takes interrupts, and what its APIC holds") {
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_mp_state mp{};
    kvm_vcpu_events events{};
    kvm_lapic_state lapic{};
    regs.rip = 0xffffffff81e3c4a5;
    regs.rflags = 0x246;
    sregs.cr3 = 0x10a000;
    mp.mp_state = KVM_MP_STATE_HALTED;
    lapic::set(lapic, lapic::kIrr + 7 * 0x10, 1u << (0xec % 32));  // IRR: vector 0xec
    lapic::set(lapic, lapic::kLvtTimer, 0x400ec);                  // timer: TSC deadline, 0xec
    std::string text = describe_vcpu_state(1, regs, sregs, mp, events, lapic, nullptr);
    CHECK(text.find("vCPU 1: halted") == 0);
    CHECK(text.find("RIP 0xffffffff81e3c4a5") != std::string::npos);
    CHECK(text.find("(interrupts on)") != std::string::npos);
    kvm_nested_state nested{};
    nested.format = KVM_STATE_NESTED_FORMAT_SVM;
    nested.flags = KVM_STATE_NESTED_GIF_SET;
    CHECK(describe_vcpu_state(1, regs, sregs, mp, events, lapic, &nested).find("(interrupts on)") != std::string::npos);
    nested.flags = 0;
    CHECK(describe_vcpu_state(1, regs, sregs, mp, events, lapic, &nested).find("(interrupts on, GIF clear)") !=
          std::string::npos);
    nested.format = KVM_STATE_NESTED_FORMAT_VMX;  // VMX has no GIF
    CHECK(describe_vcpu_state(1, regs, sregs, mp, events, lapic, &nested).find("(interrupts on)") != std::string::npos);
    CHECK(text.find("ISR - IRR 0xec, timer") != std::string::npos);
    CHECK(text.find("timer LVT 0x400ec") != std::string::npos);

    regs.rflags = 0x46;
    mp.mp_state = KVM_MP_STATE_INIT_RECEIVED;
    lapic::set(lapic, lapic::kIsr + 1 * 0x10, 1u << (0x31 % 32));  // ISR: vector 0x31
    text = describe_vcpu_state(0, regs, sregs, mp, events, lapic, nullptr);
    CHECK(text.find("vCPU 0: waiting-for-SIPI") == 0);
    CHECK(text.find("(interrupts off)") != std::string::npos);
    CHECK(text.find("ISR 0x31 IRR 0xec, timer") != std::string::npos);
}
