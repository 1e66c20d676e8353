#include "gsi_routing.h"

#include <cstring>

#include "kvm.h"

namespace ntc::vmm {

namespace {

kvm_irq_routing_entry irqchip_entry(uint32_t gsi, uint32_t irqchip, uint32_t pin) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = irqchip;
    e.u.irqchip.pin = pin;
    return e;
}

}  // namespace

kvm_irq_routing_entry msi_routing_entry(uint32_t gsi, const MsiMessage& message) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = uint32_t(message.address);
    e.u.msi.address_hi = uint32_t(message.address >> 32);
    e.u.msi.data = message.data;
    return e;
}

uint32_t GsiRouting::add_msi() { return next_gsi_++; }

void GsiRouting::set_msi(uint32_t gsi, const MsiMessage& message) { msi_[gsi] = message; }

std::vector<kvm_irq_routing_entry> GsiRouting::entries() const {
    // KVM's own default table (kvm_setup_default_irq_routing), entry for entry.
    std::vector<kvm_irq_routing_entry> out;
    for (uint32_t gsi = 0; gsi < KVM_IOAPIC_NUM_PINS; gsi++) {
        out.push_back(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi));
        if (gsi < 16)
            out.push_back(irqchip_entry(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
    }
    for (const auto& [gsi, message] : msi_) out.push_back(msi_routing_entry(gsi, message));
    return out;
}

std::vector<uint64_t> GsiRouting::kvm_table() const {
    static_assert(sizeof(KvmIrqRoutingHeader) % 8 == 0 && sizeof(kvm_irq_routing_entry) % 8 == 0);
    std::vector<kvm_irq_routing_entry> all = entries();
    std::vector<uint64_t> table((sizeof(KvmIrqRoutingHeader) + all.size() * sizeof(kvm_irq_routing_entry)) / 8);
    KvmIrqRoutingHeader header{uint32_t(all.size()), 0};
    std::memcpy(table.data(), &header, sizeof(header));
    std::memcpy(reinterpret_cast<uint8_t*>(table.data()) + sizeof(header), all.data(),
                all.size() * sizeof(kvm_irq_routing_entry));
    return table;
}

}  // namespace ntc::vmm
