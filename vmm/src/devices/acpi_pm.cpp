#include "devices/acpi_pm.h"

#include "acpi.h"
#include "layout.h"

namespace ntc::vmm {

namespace {
constexpr uint16_t kSleepEnable = 1u << 13;
constexpr uint64_t kPmTimerHz = 3579545;

// An event block (PM1's, GPE0's): a status half, then an enable half of the
// same width; `offset` is the accessed byte's within the block.
template <typename Half>
uint32_t read_event_block(Half status, Half enable, unsigned offset) {
    uint64_t block = status | (uint64_t(enable) << (8 * sizeof(Half)));
    return uint32_t(block >> (8 * offset));
}

// Status bits are write-one-to-clear, enable bits plain.
template <typename Half>
void write_event_block(Half& status, Half& enable, unsigned offset, unsigned size, uint32_t value) {
    constexpr unsigned kHalfBits = 8 * sizeof(Half);
    uint64_t mask = (size >= 4 ? 0xffffffffull : ((1ull << (8 * size)) - 1)) << (8 * offset);
    uint64_t v = (uint64_t(value) << (8 * offset)) & mask;
    status &= Half(~v);
    enable = Half((enable & ~(mask >> kHalfBits)) | (v >> kHalfBits));
}
}  // namespace

AcpiPm::AcpiPm(Request request, InterruptLine sci)
    : request_(std::move(request)), sci_(std::move(sci)), start_(std::chrono::steady_clock::now()) {}

void AcpiPm::announce_vm_generation(bool resumed) {
    gpe_status_ |= 1u << layout::kGpeVmGeneration;
    if (resumed) gpe_enable_ |= 1u << layout::kGpeVmGeneration;
    update_sci();
}

void AcpiPm::update_sci() {
    if (sci_) sci_((pm1_status_ & pm1_enable_) || (gpe_status_ & gpe_enable_));
}

uint32_t AcpiPm::read(uint16_t port, unsigned size) {
    using namespace layout;
    uint32_t value = ~0u;
    if (port >= kPmTimer && port < kPmTimer + 4) {
        auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
        uint32_t ticks = uint32_t((unsigned __int128)ns * kPmTimerHz / 1000000000u) & 0xffffff;
        value = ticks >> (8 * (port - kPmTimer));
    } else if (port >= kPm1EventBlock && port < kPm1EventBlock + 4) {
        value = read_event_block(pm1_status_, pm1_enable_, port - kPm1EventBlock);
    } else if (port >= kPm1ControlBlock && port < kPm1ControlBlock + 2) {
        value = pm1_control_ >> (8 * (port - kPm1ControlBlock));
    } else if (port >= kGpe0Block && port < kGpe0Block + 2) {
        value = read_event_block(gpe_status_, gpe_enable_, port - kGpe0Block);
    } else if (port == kI8042Command) {
        value = 0;  // input buffer empty: the reset command can be sent
    } else if (port == kResetControl && size == 1) {
        value = 0;
    }
    if (size < 4) value &= (1u << (8 * size)) - 1;
    return value;
}

void AcpiPm::write(uint16_t port, unsigned size, uint32_t value) {
    using namespace layout;
    if (port >= kPm1EventBlock && port < kPm1EventBlock + 4) {
        write_event_block(pm1_status_, pm1_enable_, port - kPm1EventBlock, size, value);
        update_sci();
    } else if (port >= kGpe0Block && port < kGpe0Block + 2) {
        write_event_block(gpe_status_, gpe_enable_, port - kGpe0Block, size, value);
        update_sci();
    } else if (port >= kPm1ControlBlock && port < kPm1ControlBlock + 2) {
        unsigned shift = 8 * (port - kPm1ControlBlock);
        uint32_t mask = (size >= 2 ? 0xffffu : 0xffu) << shift;
        uint16_t v = uint16_t(((pm1_control_ & ~mask) | ((value << shift) & mask)));
        if ((v & kSleepEnable) && ((v >> 10) & 7) == kSleepTypeS5) request_(GuestRequest::PowerOff, "ACPI S5");
        pm1_control_ = uint16_t((v & ~kSleepEnable) | 1);
    } else if (port == kI8042Command) {
        if ((value & 0xff) == 0xfe) request_(GuestRequest::Reboot, "port 0x64, command 0xfe");  // pulse reset line
    } else if (port == kResetControl && size == 1) {
        if (value & 0x04) request_(GuestRequest::Reboot, "port 0xcf9");
    }
}

}  // namespace ntc::vmm
