#include <doctest/doctest.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

uint32_t config_read(PciBus& bus, unsigned slot, uint8_t offset, unsigned size = 4) {
    bus.io_write(0xcf8, 4, 0x80000000u | (slot << 11) | (offset & 0xfc));
    return bus.io_read(uint16_t(0xcfc + (offset & 3)), size);
}

void config_write(PciBus& bus, unsigned slot, uint8_t offset, uint32_t value, unsigned size = 4) {
    bus.io_write(0xcf8, 4, 0x80000000u | (slot << 11) | (offset & 0xfc));
    bus.io_write(uint16_t(0xcfc + (offset & 3)), size, value);
}

struct BlockOnBus {
    FakeRam ram;
    RecordingVm vm;
    PciBus bus;
    std::shared_ptr<VirtioPciDevice> device;
    bool irq = false;
    BlockOnBus() {
        device = std::make_shared<VirtioPciDevice>(
            std::make_unique<VirtioBlock>(-1, 1 << 20, false, "t", 1), ram.memory, 0xe0000000, 16,
            [this](bool on) { irq = on; }, vm);
        bus.add(device);
    }
};

}  // namespace

TEST_CASE("configuration mechanism 1 finds the host bridge and the devices") {
    BlockOnBus b;
    CHECK(b.bus.io_read(0xcf8, 4) == 0);
    CHECK(config_read(b.bus, 0, 0) == 0x0d578086);
    CHECK((config_read(b.bus, 0, 0x08) >> 8) == 0x060000);
    CHECK(config_read(b.bus, 1, 0) == 0x10421af4);
    CHECK(config_read(b.bus, 1, 0x3d, 1) == 1);  // INTA
    CHECK(config_read(b.bus, 1, 0x3c, 1) == 16);
    CHECK(config_read(b.bus, 2, 0) == 0xffffffff);  // empty slot
    // Without the enable bit, or on another bus or function: nothing.
    b.bus.io_write(0xcf8, 4, 1u << 11);
    CHECK(b.bus.io_read(0xcfc, 4) == 0xffffffff);
    b.bus.io_write(0xcf8, 4, 0x80000000u | (1u << 16) | (1u << 11));
    CHECK(b.bus.io_read(0xcfc, 4) == 0xffffffff);
    b.bus.io_write(0xcf8, 4, 0x80000000u | (1u << 11) | (1u << 8));
    CHECK(b.bus.io_read(0xcfc, 4) == 0xffffffff);
    CHECK(b.bus.io_read(0xcfd, 2) == 0xffff);
}

TEST_CASE("read-only config fields stay put; BAR sizing works") {
    BlockOnBus b;
    config_write(b.bus, 1, 0, 0x12345678);
    CHECK(config_read(b.bus, 1, 0) == 0x10421af4);
    CHECK(config_read(b.bus, 1, 0x10) == 0xe0000000);
    config_write(b.bus, 1, 0x10, 0xffffffff);
    CHECK(config_read(b.bus, 1, 0x10) == ~(VirtioPciDevice::kBarSize - 1));
    config_write(b.bus, 1, 0x10, 0xe0010000);
    CHECK(config_read(b.bus, 1, 0x10) == 0xe0010000);
    // Unused BARs read as zero and size to zero.
    config_write(b.bus, 1, 0x14, 0xffffffff);
    CHECK(config_read(b.bus, 1, 0x14) == 0);
}

TEST_CASE("BARs decode only while memory space is enabled") {
    BlockOnBus b;
    uint64_t value = 0;
    CHECK_FALSE(b.bus.mmio_read(0xe0000012, 2, value));
    config_write(b.bus, 1, 0x04, 0x2, 2);
    CHECK(b.bus.mmio_read(0xe0000012, 2, value));
    CHECK(value == 1);  // num_queues
    CHECK(b.bus.mmio_read(0xe0000000 + VirtioPciDevice::kBarSize - 4, 4, value));
    CHECK_FALSE(b.bus.mmio_read(0xe0000000 + VirtioPciDevice::kBarSize, 4, value));
    CHECK_FALSE(b.bus.mmio_read(0xe0000000 + VirtioPciDevice::kBarSize - 2, 4, value));  // straddles the end
}

TEST_CASE("capability list leads to the virtio structures and MSI-X") {
    BlockOnBus b;
    CHECK((config_read(b.bus, 1, 0x06, 2) & 0x10));
    uint8_t cap = uint8_t(config_read(b.bus, 1, 0x34, 1));
    std::vector<unsigned> ids, types;
    for (int n = 0; cap && n < 16; n++) {
        ids.push_back(config_read(b.bus, 1, cap, 1));
        if (ids.back() == 0x09) types.push_back(config_read(b.bus, 1, uint8_t(cap + 3), 1));
        cap = uint8_t(config_read(b.bus, 1, uint8_t(cap + 1), 1));
    }
    CHECK(ids == std::vector<unsigned>{0x09, 0x09, 0x09, 0x09, 0x11});
    CHECK(types == std::vector<unsigned>{1, 2, 3, 4});
}

TEST_CASE("virtio status: feature negotiation and a malformed queue") {
    BlockOnBus b;
    auto& d = *b.device;
    d.bar_write(0, 0x14, 1, 1 | 2);
    d.bar_write(0, 0x08, 4, 1);
    d.bar_write(0, 0x0c, 4, 0);  // no VERSION_1
    d.bar_write(0, 0x14, 1, 1 | 2 | 8);
    CHECK_FALSE((d.bar_read(0, 0x14, 1) & 8));
    d.bar_write(0, 0x14, 1, 0);  // reset
    d.bar_write(0, 0x14, 1, 1 | 2);
    d.bar_write(0, 0x08, 4, 1);
    d.bar_write(0, 0x0c, 4, 1);
    d.bar_write(0, 0x14, 1, 1 | 2 | 8);
    CHECK((d.bar_read(0, 0x14, 1) & 8));
    // Queue 0 with its rings outside RAM: enabling it fails the device only.
    d.bar_write(0, 0x16, 2, 0);
    d.bar_write(0, 0x20, 8, 0xfffff000);
    d.bar_write(0, 0x1c, 2, 1);
    CHECK((d.status() & VirtioPciDevice::kStatusNeedsReset));
    CHECK(b.irq);
    CHECK(d.bar_read(0, 0x1000, 1) == 2);  // config change; reading acknowledges
    CHECK_FALSE(b.irq);
    d.bar_write(0, 0x14, 1, 0);
    CHECK(d.status() == 0);
}
