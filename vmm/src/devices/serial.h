#pragma once
// A 16550A UART (COM1).  Output goes to a sink; input is pushed in by the
// console thread.  Interrupts: received data and transmitter empty, as the
// Linux 8250 driver uses them.
//
// The transmitter drains at once, but the THRE interrupt for bytes just
// written comes only after the guest's next IIR read finds nothing pending,
// as on a real UART, whose FIFO drains while the driver is elsewhere.
// Raised at once instead, it keeps the 8250 driver's interrupt handler
// refilling the FIFO for up to 512 rounds (8 KiB) with interrupts off; at
// nested-virtualization exit costs that held a vCPU for seconds and
// brought RCU stall reports (Documentation/testing.md).
#include <cstdint>
#include <deque>
#include <functional>

namespace ntc::vmm {

class Serial {
public:
    using Output = std::function<void(uint8_t)>;
    using InterruptLine = std::function<void(bool asserted)>;

    Serial(Output output, InterruptLine interrupt);

    uint8_t read(uint16_t reg);
    void write(uint16_t reg, uint8_t value);
    void receive(uint8_t byte);
    bool can_receive() const { return rx_.size() < kFifoSize; }

private:
    static constexpr size_t kFifoSize = 64;
    uint8_t pending_interrupt() const;
    void update_interrupt();

    Output output_;
    InterruptLine interrupt_;
    std::deque<uint8_t> rx_;
    uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
    uint8_t dll_ = 0x0c, dlm_ = 0;
    bool thr_interrupt_ = false;  // THRE raised and not yet acknowledged
    bool thr_refilled_ = false;   // bytes written since; THRE follows an idle IIR read
};

}  // namespace ntc::vmm
