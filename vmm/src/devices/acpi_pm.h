#pragma once
// The ACPI fixed hardware the FADT points at: PM1 event and control blocks,
// and the PM timer; plus the two legacy reset ports the kernel's reboot path
// tries.  Writing SLP_TYP=S5 with SLP_EN is poweroff.
#include <chrono>
#include <cstdint>
#include <functional>

namespace ntcvmm {

enum class GuestRequest { PowerOff, Reboot };

class AcpiPm {
public:
    // `how` names the register the guest wrote, for the VMM's message.
    using Request = std::function<void(GuestRequest, const char* how)>;
    explicit AcpiPm(Request request);

    // Whether the port is one of this device's; `value` is the result.
    bool read(uint16_t port, unsigned size, uint32_t& value);
    bool write(uint16_t port, unsigned size, uint32_t value);

private:
    Request request_;
    std::chrono::steady_clock::time_point start_;
    uint16_t pm1_status_ = 0;
    uint16_t pm1_enable_ = 0;
    uint16_t pm1_control_ = 1;  // SCI_EN: always in ACPI mode
};

}  // namespace ntcvmm
