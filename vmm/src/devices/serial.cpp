#include "devices/serial.h"

namespace ntcvmm {

namespace {
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kIerRx = 0x01;
constexpr uint8_t kIerThr = 0x02;
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThr = 0x02;
constexpr uint8_t kIirRx = 0x04;
constexpr uint8_t kIirFifo = 0xc0;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
}  // namespace

Serial::Serial(Output output, InterruptLine interrupt)
    : output_(std::move(output)), interrupt_(std::move(interrupt)) {}

uint8_t Serial::pending_interrupt() const {
    if ((ier_ & kIerRx) && !rx_.empty()) return kIirRx;
    if ((ier_ & kIerThr) && thr_interrupt_) return kIirThr;
    return kIirNone;
}

void Serial::update_interrupt() {
    // OUT2 gates the interrupt line on PCs.
    if (interrupt_) interrupt_((mcr_ & 0x08) && pending_interrupt() != kIirNone);
}

void Serial::receive(uint8_t byte) {
    if (rx_.size() < kFifoSize) rx_.push_back(byte);
    update_interrupt();
}

uint8_t Serial::read(uint16_t reg) {
    uint8_t value = 0;
    switch (reg) {
    case 0:
        if (lcr_ & kLcrDlab) return dll_;
        if (!rx_.empty()) {
            value = rx_.front();
            rx_.pop_front();
        }
        break;
    case 1:
        return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case 2:
        value = pending_interrupt() | ((fcr_ & 1) ? kIirFifo : 0);
        if (value & kIirThr) thr_interrupt_ = false;  // reading IIR acknowledges THRE
        break;
    case 3:
        return lcr_;
    case 4:
        return mcr_;
    case 5:
        return uint8_t((rx_.empty() ? 0 : kLsrDataReady) | kLsrThrEmpty | kLsrIdle);
    case 6:
        // In loopback the modem inputs follow the outputs; otherwise a modem
        // that is present and ready (DCD, DSR, CTS).
        if (mcr_ & kMcrLoop)
            return uint8_t(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
        return 0xb0;
    case 7:
        return scr_;
    }
    update_interrupt();
    return value;
}

void Serial::write(uint16_t reg, uint8_t value) {
    switch (reg) {
    case 0:
        if (lcr_ & kLcrDlab) {
            dll_ = value;
            return;
        }
        if (mcr_ & kMcrLoop) {
            if (rx_.size() < kFifoSize) rx_.push_back(value);
        } else if (output_) {
            output_(value);
        }
        thr_interrupt_ = true;  // the byte left at once
        break;
    case 1:
        if (lcr_ & kLcrDlab) {
            dlm_ = value;
            return;
        }
        // Enabling THRE interrupts with an empty transmitter raises one.
        if ((value & kIerThr) && !(ier_ & kIerThr)) thr_interrupt_ = true;
        ier_ = value & 0x0f;
        break;
    case 2:
        fcr_ = value;
        if (value & 0x02) rx_.clear();
        break;
    case 3:
        lcr_ = value;
        return;
    case 4:
        mcr_ = value & 0x1f;
        break;
    case 7:
        scr_ = value;
        return;
    default:
        return;
    }
    update_interrupt();
}

}  // namespace ntcvmm
