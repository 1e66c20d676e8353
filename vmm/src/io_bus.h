#pragma once
// An address space that devices claim ranges of: the port I/O space or the
// MMIO space of the machine (Firecracker's Bus, kvmtool's ioport/mmio
// registration).  An access goes to the device whose range holds its first
// byte; the device sees the offset from the start of that range and decides
// what an access running past the range's end does.  An access no device
// claims reads as all ones and a write to it is dropped, as on a PC.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace ntc::vmm {

struct BusDevice {
    std::function<uint64_t(uint64_t offset, unsigned size)> read;
    std::function<void(uint64_t offset, unsigned size, uint64_t value)> write;
};

class IoBus {
public:
    struct Hit {
        const BusDevice* device;
        uint64_t offset;
    };

    // Claims [base, base + length) for `device`; `name` is for messages.
    // Throws ntc::Error for an empty or wrapping range, or one that overlaps a
    // range already claimed.
    void add(uint64_t base, uint64_t length, BusDevice device, std::string name);

    std::optional<Hit> find(uint64_t address) const;

    // `size` bytes at `address`, little-endian in the low bytes of the result.
    uint64_t read(uint64_t address, unsigned size) const;
    void write(uint64_t address, unsigned size, uint64_t value) const;

private:
    struct Range {
        uint64_t length;
        BusDevice device;
        std::string name;
    };
    std::map<uint64_t, Range> ranges_;  // by base
};

}  // namespace ntc::vmm
