#include <doctest/doctest.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <vector>

#include "devices/msix.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

// An MsixTable whose routes and signals are written down.
struct Recorded {
    std::vector<std::pair<unsigned, MsiMessage>> routes;
    std::vector<unsigned> signals;
    MsixTable table{3,
                    [this](unsigned v, const MsiMessage& m) {
                        routes.push_back({v, m});
                    },
                    [this](unsigned v) { signals.push_back(v); }};

    void write_entry(unsigned v, MsiMessage m) {
        uint64_t at = uint64_t(v) * PCI_MSIX_ENTRY_SIZE;
        table.write_table(at + PCI_MSIX_ENTRY_LOWER_ADDR, 4, uint32_t(m.address));
        table.write_table(at + PCI_MSIX_ENTRY_UPPER_ADDR, 4, uint32_t(m.address >> 32));
        table.write_table(at + PCI_MSIX_ENTRY_DATA, 4, m.data);
    }
    void set_mask(unsigned v, bool masked) {
        table.write_table(uint64_t(v) * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked ? 1 : 0);
    }
};

constexpr MsiMessage kMessage{0xfee01000, 0x4031};
constexpr MsiMessage kOther{0xfee02000, 0x4041};

uint8_t find_msix(PciConfigSpace& config) {
    for (uint8_t cap = uint8_t(config.read(PCI_CAPABILITY_LIST, 1)); cap; cap = uint8_t(config.read(cap + 1, 1)))
        if (config.read(cap, 1) == PCI_CAP_ID_MSIX) return cap;
    return 0;
}

}  // namespace

TEST_CASE("the MSI-X capability puts a vector per queue and one for configuration in BAR 0") {
    FakeRam ram;
    RecordingVm vm;
    VirtioPciDevice d(std::make_unique<VirtioBlock>(-1, 1 << 20, false, "t", 1), ram.memory, 0xe0000000, 16, nullptr,
                      vm);
    uint8_t cap = find_msix(d.config());
    REQUIRE(cap);
    CHECK(d.msix_vectors() == 2);
    CHECK((d.config().read(cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) == 1);         // N - 1
    CHECK(d.config().read(cap + PCI_MSIX_TABLE, 4) == VirtioPciDevice::kMsixTableOffset);  // BIR 0
    CHECK(d.config().read(cap + PCI_MSIX_PBA, 4) == VirtioPciDevice::kMsixPbaOffset);
    CHECK(VirtioPciDevice::kMsixPbaOffset + 8 <= VirtioPciDevice::kBarSize);
    // Only enable and function mask are the guest's.
    d.config_write(uint8_t(cap + PCI_MSIX_FLAGS), 2, 0xffff);
    CHECK(d.config().read(cap + PCI_MSIX_FLAGS, 2) == (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 1));
    d.config_write(uint8_t(cap + PCI_MSIX_TABLE), 4, 0x12345678);
    CHECK(d.config().read(cap + PCI_MSIX_TABLE, 4) == VirtioPciDevice::kMsixTableOffset);
    // Every vector's irqfd is bound, none routed before the guest says where.
    CHECK(vm.irqfds.size() == 2);
    CHECK(vm.routes.empty());
}

TEST_CASE("MSI-X table entries keep address and data; of vector control only the mask bit") {
    Recorded r;
    for (unsigned v = 0; v < 3; v++) {
        CHECK(r.table.read_table(v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4) == PCI_MSIX_ENTRY_CTRL_MASKBIT);
        CHECK(r.table.masked(v));
    }
    r.table.write_table(16, 8, 0x00000001fee0100cull);  // a qword: address low and high
    r.table.write_table(16 + PCI_MSIX_ENTRY_DATA, 4, 0x4031);
    CHECK(r.table.read_table(16, 4) == 0xfee0100c);
    CHECK(r.table.read_table(20, 4) == 1);
    CHECK(r.table.read_table(16, 8) == 0x00000001fee0100cull);
    CHECK(r.table.message(1) == MsiMessage{0x1fee0100cull, 0x4031});
    r.table.write_table(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0xfffffffe);
    CHECK(r.table.read_table(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4) == 0);
    r.table.write_table(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0xffffffff);
    CHECK(r.table.read_table(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4) == 1);
    CHECK(r.table.message(0) == MsiMessage{});  // its neighbours are untouched
    CHECK(r.table.message(2) == MsiMessage{});
    CHECK(r.table.read_table(r.table.table_bytes(), 4) == 0);  // past the table
    r.table.write_table(r.table.table_bytes(), 4, 0xffffffff);
    CHECK(r.table.pba_bytes() == 8);
}

TEST_CASE("a masked vector is pending, in the PBA, until it is unmasked; then it is delivered once") {
    Recorded r;
    r.table.set_control(PCI_MSIX_FLAGS_ENABLE);
    r.write_entry(1, kMessage);
    r.table.raise(1);  // masked since reset
    CHECK(r.signals.empty());
    CHECK(r.table.pending(1));
    CHECK(r.table.read_pba(0, 8) == 0b010);
    r.set_mask(1, false);
    CHECK(r.routes == std::vector<std::pair<unsigned, MsiMessage>>{{1, kMessage}});  // routed before it is sent
    CHECK(r.signals == std::vector<unsigned>{1});
    CHECK(r.table.read_pba(0, 8) == 0);
    r.table.raise(1);
    CHECK(r.signals == std::vector<unsigned>{1, 1});

    SUBCASE("the function mask holds every vector") {
        r.table.set_control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
        r.table.raise(1);
        CHECK(r.signals.size() == 2);
        CHECK(r.table.read_pba(0, 1) == 0b010);
        r.table.set_control(PCI_MSIX_FLAGS_ENABLE);
        CHECK(r.signals == std::vector<unsigned>{1, 1, 1});
        CHECK(r.table.read_pba(0, 1) == 0);
    }
    SUBCASE("with MSI-X disabled a vector is neither sent nor pending") {
        r.table.set_control(0);
        r.table.raise(1);
        CHECK(r.signals.size() == 2);
        CHECK_FALSE(r.table.pending(1));
    }
    SUBCASE("a vector the table does not have is nothing") {
        r.table.raise(VIRTIO_MSI_NO_VECTOR);
        r.table.raise(3);
        CHECK(r.signals.size() == 2);
        CHECK(r.table.read_pba(0, 8) == 0);
    }
}

TEST_CASE("a vector is routed when it becomes deliverable with a new message, not once per dword") {
    Recorded r;
    r.write_entry(0, kMessage);
    r.set_mask(0, false);
    CHECK(r.routes.empty());  // MSI-X is not enabled yet
    r.table.set_control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    CHECK(r.routes.empty());
    r.table.set_control(PCI_MSIX_FLAGS_ENABLE);
    CHECK(r.routes == std::vector<std::pair<unsigned, MsiMessage>>{{0, kMessage}});
    // The kernel's rewrite of an entry (a new CPU for it): masked, three
    // dwords, unmasked.
    r.set_mask(0, true);
    r.write_entry(0, kOther);
    CHECK(r.routes.size() == 1);
    r.set_mask(0, false);
    CHECK(r.routes == std::vector<std::pair<unsigned, MsiMessage>>{{0, kMessage}, {0, kOther}});
    // Masking and unmasking with the same message routes nothing again.
    r.set_mask(0, true);
    r.set_mask(0, false);
    CHECK(r.routes.size() == 2);
    // A write while unmasked (undefined in PCI, but not ignored) routes at once.
    r.table.write_table(PCI_MSIX_ENTRY_DATA, 4, 0x4051);
    CHECK(r.routes.back() == std::pair<unsigned, MsiMessage>{0, {kOther.address, 0x4051}});
}

TEST_CASE("a table entry the guest writes becomes its vector's KVM route when unmasked") {
    FakeRam ram;
    RecordingVm vm;
    VirtioPciDevice d(std::make_unique<VirtioBlock>(-1, 1 << 20, false, "t", 1), ram.memory, 0xe0000000, 16, nullptr,
                      vm);
    uint8_t cap = find_msix(d.config());
    // As Linux's msix_capability_init: enabled with the function masked,
    // entries written, then the function unmasked; request_irq() unmasks
    // the vector.
    d.config_write(uint8_t(cap + PCI_MSIX_FLAGS), 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    uint64_t entry = VirtioPciDevice::kMsixTableOffset + PCI_MSIX_ENTRY_SIZE;  // vector 1
    d.bar_write(0, entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4, 0xfee01000);
    d.bar_write(0, entry + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
    d.bar_write(0, entry + PCI_MSIX_ENTRY_DATA, 4, 0x4031);
    d.config_write(uint8_t(cap + PCI_MSIX_FLAGS), 2, PCI_MSIX_FLAGS_ENABLE);
    CHECK(vm.routes.empty());
    CHECK(d.bar_read(0, entry + PCI_MSIX_ENTRY_DATA, 4) == 0x4031);
    d.bar_write(0, entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
    REQUIRE(vm.routes.size() == 1);
    uint32_t gsi = vm.routes[0].first;
    CHECK(vm.irqfds.count(gsi));
    CHECK(gsi == std::next(vm.irqfds.begin())->first);  // vector 1's irqfd
    CHECK(vm.routes[0].second == kMessage);
    // The PBA sits where the capability says, read-only.
    CHECK(d.bar_read(0, VirtioPciDevice::kMsixPbaOffset, 8) == 0);
    d.bar_write(0, VirtioPciDevice::kMsixPbaOffset, 8, ~0ull);
    CHECK(d.bar_read(0, VirtioPciDevice::kMsixPbaOffset, 8) == 0);

    // The driver maps events to vectors; one the table lacks reads back as
    // NO_VECTOR, which is how the driver learns the mapping failed.
    d.bar_write(0, offsetof(virtio_pci_common_cfg, msix_config), 2, 0);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, msix_config), 2) == 0);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2, 1);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2) == 1);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2, 2);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2) == VIRTIO_MSI_NO_VECTOR);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_select), 2, 1);  // no such queue
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2, 0);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2) == VIRTIO_MSI_NO_VECTOR);
    // A reset unmaps every event (virtio 1.x 4.1.5.1.2.1).
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_select), 2, 0);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2, 1);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, msix_config), 2, 1);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2) == 1);
    d.bar_write(0, offsetof(virtio_pci_common_cfg, device_status), 1, 0);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, msix_config), 2) == VIRTIO_MSI_NO_VECTOR);
    CHECK(d.bar_read(0, offsetof(virtio_pci_common_cfg, queue_msix_vector), 2) == VIRTIO_MSI_NO_VECTOR);
}
