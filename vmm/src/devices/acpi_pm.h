#pragma once
// The ACPI fixed hardware the FADT points at: PM1 event and control blocks,
// the PM timer, and a GPE block (status and enable bytes for GPEs 0-7,
// status bits write-one-to-clear) whose enabled status raises the SCI; plus
// the two legacy reset ports the kernel's reboot path tries.  Writing
// SLP_TYP=S5 with SLP_EN is poweroff.
#include <chrono>
#include <cstdint>
#include <functional>

namespace ntc::vmm {

enum class GuestRequest { PowerOff, Reboot };

class AcpiPm {
public:
    // `how` names the register the guest wrote, for the VMM's message.
    using Request = std::function<void(GuestRequest, const char* how)>;
    // The SCI, level-triggered.
    using InterruptLine = std::function<void(bool asserted)>;
    AcpiPm(Request request, InterruptLine sci);

    // `port` is one of the ports the machine maps to this device
    // (map_devices()); any other reads as all ones and ignores writes.  The
    // reset control register 0xcf9 answers byte accesses only, as on Intel
    // chipsets, where it shares a dword with the PCI address register.
    uint32_t read(uint16_t port, unsigned size);
    void write(uint16_t port, unsigned size, uint32_t value);

    // A new VM generation ID is in guest memory (vm_generation.h): sets
    // GPE layout::kGpeVmGeneration's status.  A resumed kernel enabled that
    // GPE when it booted, on a machine whose registers its image does not
    // hold, so for `resumed` the enable bit is set too, as it left it.
    void announce_vm_generation(bool resumed);

private:
    void update_sci();

    Request request_;
    InterruptLine sci_;
    std::chrono::steady_clock::time_point start_;
    uint16_t pm1_status_ = 0;
    uint16_t pm1_enable_ = 0;
    uint16_t pm1_control_ = 1;  // SCI_EN: always in ACPI mode
    uint8_t gpe_status_ = 0;
    uint8_t gpe_enable_ = 0;
};

}  // namespace ntc::vmm
