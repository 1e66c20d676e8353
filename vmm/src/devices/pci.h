#pragma once
// PCI bus 0 behind configuration mechanism 1 (ports 0xcf8/0xcfc), with a host
// bridge at 00:00.0 and devices at fixed slots.  Config space is 256 bytes of
// storage plus a write mask per byte, so the guest can only change what a
// real device lets it change; BAR sizing falls out of the mask.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace ntc::vmm {

class PciConfigSpace {
public:
    PciConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision);

    uint32_t read(uint8_t offset, unsigned size) const;
    void write(uint8_t offset, unsigned size, uint32_t value);

    // Setup by the device model (not reachable by the guest).
    void set(uint8_t offset, unsigned size, uint32_t value);
    void set_writable(uint8_t offset, unsigned size, uint32_t mask);
    // A 32-bit memory BAR of `size` bytes (a power of two), placed at `address`.
    void add_memory_bar(unsigned index, uint32_t address, uint32_t size);
    // Appends a capability; returns its config-space offset.
    uint8_t add_capability(const std::vector<uint8_t>& body);
    void set_interrupt(uint8_t line, uint8_t pin);

    std::optional<uint32_t> bar_address(unsigned index) const;  // when decoding
    uint32_t bar_size(unsigned index) const { return bar_sizes_[index]; }
    bool memory_enabled() const { return read(0x04, 2) & 0x2; }

private:
    std::array<uint8_t, 256> bytes_{};
    std::array<uint8_t, 256> writable_{};
    std::array<uint32_t, 6> bar_sizes_{};
    uint8_t last_capability_ = 0;
    uint8_t next_capability_ = 0x40;
};

// Config space reads and writes come under the bus's lock; BAR accesses
// come without it, so a device whose BARs other threads reach too (a virtio
// worker) guards them with a lock of its own.
class PciDevice {
public:
    virtual ~PciDevice() = default;
    virtual PciConfigSpace& config() = 0;
    // A guest's config space write; a device that acts on its registers
    // (MSI-X control, BAR moves) overrides it.
    virtual void config_write(uint8_t offset, unsigned size, uint32_t value) { config().write(offset, size, value); }
    virtual uint64_t bar_read(unsigned bar, uint64_t offset, unsigned size) = 0;
    virtual void bar_write(unsigned bar, uint64_t offset, unsigned size, uint64_t value) = 0;
};

// The bus locks itself: the configuration mechanism and BAR decoding under
// its lock, a BAR access after it has let go, so that a vCPU waiting in a
// device's BAR (for a request to complete) holds up no other vCPU.
class PciBus {
public:
    PciBus();
    // Puts `device` at the next free slot (1, 2, ...) and returns the slot.
    unsigned add(std::shared_ptr<PciDevice> device);
    unsigned slots_used() const { return unsigned(devices_.size()) - 1; }

    // Port I/O on 0xcf8..0xcff.
    uint32_t io_read(uint16_t port, unsigned size);
    void io_write(uint16_t port, unsigned size, uint32_t value);

    // MMIO into device BARs; false when no enabled BAR decodes the address.
    bool mmio_read(uint64_t address, unsigned size, uint64_t& value);
    bool mmio_write(uint64_t address, unsigned size, uint64_t value);

private:
    struct Hit {
        PciDevice* device;
        unsigned bar;
        uint64_t offset;
    };
    std::optional<Hit> decode(uint64_t address, unsigned size);
    PciDevice* selected(uint8_t& offset) const;

    std::mutex lock_;
    std::vector<std::shared_ptr<PciDevice>> devices_;  // index = slot
    uint32_t address_ = 0;
};

}  // namespace ntc::vmm
