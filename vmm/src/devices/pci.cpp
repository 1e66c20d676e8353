#include "devices/pci.h"

#include <algorithm>

#include "devices/register_bytes.h"
#include "layout.h"

namespace ntc::vmm {

namespace {

class HostBridge : public PciDevice {
public:
    HostBridge() : config_(layout::kHostBridgeVendor, layout::kHostBridgeDevice, 0x060000, 0) {}
    PciConfigSpace& config() override { return config_; }
    uint64_t bar_read(unsigned, uint64_t, unsigned) override { return ~0ull; }
    void bar_write(unsigned, uint64_t, unsigned, uint64_t) override {}

private:
    PciConfigSpace config_;
};

constexpr uint8_t kCapabilitiesPointer = 0x34;

}  // namespace

PciConfigSpace::PciConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision) {
    set(0x00, 2, vendor);
    set(0x02, 2, device);
    set(0x08, 1, revision);
    set(0x09, 3, class_code);
    // Command: I/O, memory, bus master, INTx disable.
    set_writable(0x04, 2, 0x0407);
    set_writable(0x0c, 1, 0xff);  // cache line size
    set_writable(0x3c, 1, 0xff);  // interrupt line: the OS's scratch byte
}

uint32_t PciConfigSpace::read(uint8_t offset, unsigned size) const {
    return uint32_t(read_le(bytes_, offset, std::min(size, 4u)));
}

void PciConfigSpace::write(uint8_t offset, unsigned size, uint32_t value) {
    write_le_masked(bytes_, offset, std::min(size, 4u), value, [this](uint64_t at) { return writable_[at]; });
}

void PciConfigSpace::set(uint8_t offset, unsigned size, uint32_t value) {
    for (unsigned i = 0; i < size; i++) bytes_[offset + i] = uint8_t(value >> (8 * i));
}

void PciConfigSpace::set_writable(uint8_t offset, unsigned size, uint32_t mask) {
    for (unsigned i = 0; i < size; i++) writable_[offset + i] = uint8_t(mask >> (8 * i));
}

void PciConfigSpace::add_memory_bar(unsigned index, uint32_t address, uint32_t size) {
    uint8_t offset = uint8_t(0x10 + 4 * index);
    bar_sizes_[index] = size;
    set(offset, 4, address & ~(size - 1));  // type bits 0: 32-bit, non-prefetchable
    set_writable(offset, 4, ~(size - 1));
}

uint8_t PciConfigSpace::add_capability(const std::vector<uint8_t>& body) {
    uint8_t offset = next_capability_;
    for (size_t i = 0; i < body.size(); i++) bytes_[offset + i] = body[i];
    bytes_[offset + 1] = 0;
    if (last_capability_) bytes_[last_capability_ + 1] = offset;
    else bytes_[kCapabilitiesPointer] = offset;
    set(0x06, 2, read(0x06, 2) | 0x10);  // status: capabilities list
    last_capability_ = offset;
    next_capability_ = uint8_t((offset + body.size() + 3) & ~3u);
    return offset;
}

void PciConfigSpace::set_interrupt(uint8_t line, uint8_t pin) {
    set(0x3c, 1, line);
    set(0x3d, 1, pin);
}

std::optional<uint32_t> PciConfigSpace::bar_address(unsigned index) const {
    if (index >= 6 || !bar_sizes_[index] || !memory_enabled()) return std::nullopt;
    return read(uint8_t(0x10 + 4 * index), 4) & ~0xfu;
}

PciBus::PciBus() { devices_.push_back(std::make_shared<HostBridge>()); }

unsigned PciBus::add(std::shared_ptr<PciDevice> device) {
    devices_.push_back(std::move(device));
    return unsigned(devices_.size()) - 1;
}

PciDevice* PciBus::selected(uint8_t& offset) const {
    if (!(address_ & 0x80000000u)) return nullptr;
    unsigned bus = (address_ >> 16) & 0xff;
    unsigned slot = (address_ >> 11) & 0x1f;
    unsigned function = (address_ >> 8) & 0x7;
    if (bus != 0 || function != 0 || slot >= devices_.size()) return nullptr;
    offset = uint8_t(address_ & 0xfc);
    return devices_[slot].get();
}

uint32_t PciBus::io_read(uint16_t port, unsigned size) {
    std::lock_guard lock(lock_);
    if (port == 0xcf8 && size == 4) return address_;
    if (port < 0xcfc || port + size > 0xd00) return ~0u >> (32 - 8 * size);
    uint8_t offset;
    PciDevice* device = selected(offset);
    if (!device) return ~0u >> (32 - 8 * size);
    return device->config().read(uint8_t(offset + (port - 0xcfc)), size);
}

void PciBus::io_write(uint16_t port, unsigned size, uint32_t value) {
    std::lock_guard lock(lock_);
    if (port == 0xcf8 && size == 4) {
        address_ = value;
        return;
    }
    if (port < 0xcfc || port + size > 0xd00) return;
    uint8_t offset;
    if (PciDevice* device = selected(offset)) device->config_write(uint8_t(offset + (port - 0xcfc)), size, value);
}

std::optional<PciBus::Hit> PciBus::decode(uint64_t address, unsigned size) {
    std::lock_guard lock(lock_);
    for (auto& device : devices_) {
        for (unsigned bar = 0; bar < 6; bar++) {
            auto base = device->config().bar_address(bar);
            if (!base || address < *base) continue;
            uint64_t offset = address - *base;
            if (offset + size <= device->config().bar_size(bar)) return Hit{device.get(), bar, offset};
        }
    }
    return std::nullopt;
}

bool PciBus::mmio_read(uint64_t address, unsigned size, uint64_t& value) {
    auto hit = decode(address, size);
    if (!hit) return false;
    value = hit->device->bar_read(hit->bar, hit->offset, size);
    return true;
}

bool PciBus::mmio_write(uint64_t address, unsigned size, uint64_t value) {
    auto hit = decode(address, size);
    if (!hit) return false;
    hit->device->bar_write(hit->bar, hit->offset, size, value);
    return true;
}

}  // namespace ntc::vmm
