#pragma once
// The VM's GSI routing table.  KVM takes it only whole: KVM_SET_GSI_ROUTING
// replaces every entry, the ones KVM_CREATE_IRQCHIP installed included (GSIs
// 0-15 to both 8259s and the IOAPIC, 16-23 to the IOAPIC), and without them
// the serial port's, the timer's and the PCI INTx lines would reach nothing.
// So the VM keeps one table: those defaults, as KVM has them, and a GSI
// routed to an MSI message per device vector.
#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <vector>

#include "devices/msix.h"

namespace ntc::vmm {

kvm_irq_routing_entry msi_routing_entry(uint32_t gsi, const MsiMessage& message);

class GsiRouting {
public:
    // Above the IOAPIC's pins, the GSIs the default entries use.
    static constexpr uint32_t kFirstMsiGsi = KVM_IOAPIC_NUM_PINS;

    // A new GSI for an MSI source; unrouted until set_msi().
    uint32_t add_msi();
    void set_msi(uint32_t gsi, const MsiMessage& message);

    // The irqchip's default entries, then each routed MSI GSI.
    std::vector<kvm_irq_routing_entry> entries() const;
    // KVM_SET_GSI_ROUTING's argument (kKvmSetGsiRouting): the header, then entries().
    std::vector<uint64_t> kvm_table() const;

private:
    uint32_t next_gsi_ = kFirstMsiGsi;
    std::map<uint32_t, MsiMessage> msi_;
};

}  // namespace ntc::vmm
