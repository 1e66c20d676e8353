#include "devices/serial.h"

#include <linux/serial_reg.h>

namespace ntc::vmm {

namespace {
// IIR bits 7:6 with the FIFOs on; <linux/serial_reg.h> of Linux 6.1 has no name for them.
constexpr uint8_t kIirFifosEnabled = 0xc0;
constexpr uint8_t kIerMask = UART_IER_MSI | UART_IER_RLSI | UART_IER_THRI | UART_IER_RDI;
constexpr uint8_t kMcrMask = UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_OUT1 | UART_MCR_RTS | UART_MCR_DTR;
}  // namespace

Serial::Serial(Output output, InterruptLine interrupt) : output_(std::move(output)), interrupt_(std::move(interrupt)) {}

uint8_t Serial::pending_interrupt() const {
    if ((ier_ & UART_IER_RDI) && !rx_.empty()) return UART_IIR_RDI;
    if ((ier_ & UART_IER_THRI) && thr_interrupt_) return UART_IIR_THRI;
    return UART_IIR_NO_INT;
}

void Serial::update_interrupt() {
    // OUT2 gates the interrupt line on PCs.
    if (interrupt_) interrupt_((mcr_ & UART_MCR_OUT2) && pending_interrupt() != UART_IIR_NO_INT);
}

void Serial::receive(uint8_t byte) {
    if (rx_.size() < kFifoSize) rx_.push_back(byte);
    update_interrupt();
}

uint8_t Serial::read(uint16_t reg) {
    uint8_t value = 0;
    switch (reg) {
    case UART_RX:
        if (lcr_ & UART_LCR_DLAB) return dll_;
        if (!rx_.empty()) {
            value = rx_.front();
            rx_.pop_front();
        }
        break;
    case UART_IER:
        return (lcr_ & UART_LCR_DLAB) ? dlm_ : ier_;
    case UART_IIR: {
        uint8_t source = pending_interrupt();
        if (source == UART_IIR_THRI) {
            thr_interrupt_ = false;  // reading IIR acknowledges THRE
        } else if (source == UART_IIR_NO_INT && thr_refilled_) {
            thr_refilled_ = false;
            thr_interrupt_ = true;
        }
        value = source | ((fcr_ & UART_FCR_ENABLE_FIFO) ? kIirFifosEnabled : 0);
        break;
    }
    case UART_LCR:
        return lcr_;
    case UART_MCR:
        return mcr_;
    case UART_LSR:
        return uint8_t((rx_.empty() ? 0 : UART_LSR_DR) | UART_LSR_THRE | UART_LSR_TEMT);
    case UART_MSR:
        // In loopback the modem inputs follow the outputs; otherwise a modem
        // that is present and ready.
        if (mcr_ & UART_MCR_LOOP)
            return uint8_t(((mcr_ & UART_MCR_DTR) ? UART_MSR_DSR : 0) | ((mcr_ & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
                           ((mcr_ & UART_MCR_OUT1) ? UART_MSR_RI : 0) | ((mcr_ & UART_MCR_OUT2) ? UART_MSR_DCD : 0));
        return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    case UART_SCR:
        return scr_;
    }
    update_interrupt();
    return value;
}

void Serial::write(uint16_t reg, uint8_t value) {
    switch (reg) {
    case UART_TX:
        if (lcr_ & UART_LCR_DLAB) {
            dll_ = value;
            return;
        }
        if (mcr_ & UART_MCR_LOOP) {
            if (rx_.size() < kFifoSize) rx_.push_back(value);
        } else if (output_) {
            output_(value);
        }
        thr_interrupt_ = false;
        thr_refilled_ = true;
        break;
    case UART_IER:
        if (lcr_ & UART_LCR_DLAB) {
            dlm_ = value;
            return;
        }
        // Enabling THRE interrupts with an empty transmitter raises one.
        if ((value & UART_IER_THRI) && !(ier_ & UART_IER_THRI)) {
            thr_interrupt_ = true;
            thr_refilled_ = false;
        }
        ier_ = value & kIerMask;
        break;
    case UART_FCR:
        fcr_ = value;
        if (value & UART_FCR_CLEAR_RCVR) rx_.clear();
        break;
    case UART_LCR:
        lcr_ = value;
        return;
    case UART_MCR:
        mcr_ = value & kMcrMask;
        break;
    case UART_SCR:
        scr_ = value;
        return;
    default:
        return;
    }
    update_interrupt();
}

}  // namespace ntc::vmm
