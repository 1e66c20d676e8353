#pragma once
// A PCI function's MSI-X (PCI Local Bus 3.0, 6.8.2): the capability's
// enable and function-mask bits, the vector table (message address, data and
// mask bit per vector) and the pending bit array, which the owning device
// maps into one of its BARs.  A vector raised while it is masked is pending
// and is delivered when the guest unmasks it.  How a message reaches a CPU
// is the owner's: `route` points the vector at its message (KVM's GSI
// routing), `signal` sends it (an irqfd).
#include <linux/pci_regs.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace ntc::vmm {

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

class MsixTable {
public:
    // Called with the device's lock held.  `route` comes before the first
    // `signal` of a message: a vector is routed when it becomes deliverable
    // (enabled, not masked) with a message not routed yet, so the guest's
    // masked rewrite of an entry costs one route, not one per dword.
    using Route = std::function<void(unsigned vector, const MsiMessage& message)>;
    using Signal = std::function<void(unsigned vector)>;

    static constexpr uint16_t kWritableControl = PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL;

    MsixTable(unsigned vectors, Route route, Signal signal);

    unsigned size() const { return unsigned(routed_.size()); }
    uint64_t table_bytes() const { return uint64_t(size()) * PCI_MSIX_ENTRY_SIZE; }
    uint64_t pba_bytes() const { return 8 * ((uint64_t(size()) + 63) / 64); }

    // The capability as PciConfigSpace::add_capability takes it, with the
    // table and the PBA at these offsets of BAR `bar` (8-byte aligned).
    std::vector<uint8_t> capability(unsigned bar, uint32_t table_offset, uint32_t pba_offset) const;

    // The Message Control register after a guest write to it.
    void set_control(uint16_t control);
    bool enabled() const { return enabled_; }

    // Accesses at an offset into the table or the PBA; the PBA is read-only.
    uint64_t read_table(uint64_t offset, unsigned size) const;
    void write_table(uint64_t offset, unsigned size, uint64_t value);
    uint64_t read_pba(uint64_t offset, unsigned size) const;

    // The device's interrupt on `vector`: signalled now, or pending while the
    // vector or the function is masked.  Nothing while MSI-X is disabled or
    // for a vector the table does not have (VIRTIO_MSI_NO_VECTOR).
    void raise(unsigned vector);

    MsiMessage message(unsigned vector) const;
    bool masked(unsigned vector) const;
    bool pending(unsigned vector) const;

private:
    bool deliverable(unsigned vector) const;
    // Routes the vector if it became deliverable with a new message, and
    // sends what was pending.
    void update(unsigned vector);
    uint32_t entry_field(unsigned vector, unsigned field) const;

    std::vector<uint8_t> table_;  // PCI_MSIX_ENTRY_SIZE bytes per vector, as the guest sees them
    std::vector<std::optional<MsiMessage>> routed_;
    std::vector<bool> pending_;
    bool enabled_ = false;
    bool function_masked_ = false;
    Route route_;
    Signal signal_;
};

}  // namespace ntc::vmm
