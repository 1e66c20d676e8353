#pragma once
// The ACPI fixed hardware the FADT points at: PM1 event and control blocks,
// and the PM timer; plus the two legacy reset ports the kernel's reboot path
// tries.  Writing SLP_TYP=S5 with SLP_EN is poweroff.
#include <chrono>
#include <cstdint>
#include <functional>

namespace ntc::vmm {

enum class GuestRequest { PowerOff, Reboot };

class AcpiPm {
public:
    // `how` names the register the guest wrote, for the VMM's message.
    using Request = std::function<void(GuestRequest, const char* how)>;
    explicit AcpiPm(Request request);

    // `port` is one of the ports the machine maps to this device
    // (map_devices()); any other reads as all ones and ignores writes.  The
    // reset control register 0xcf9 answers byte accesses only, as on Intel
    // chipsets, where it shares a dword with the PCI address register.
    uint32_t read(uint16_t port, unsigned size);
    void write(uint16_t port, unsigned size, uint32_t value);

private:
    Request request_;
    std::chrono::steady_clock::time_point start_;
    uint16_t pm1_status_ = 0;
    uint16_t pm1_enable_ = 0;
    uint16_t pm1_control_ = 1;  // SCI_EN: always in ACPI mode
};

}  // namespace ntc::vmm
