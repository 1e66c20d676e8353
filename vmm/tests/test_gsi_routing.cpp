#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gsi_routing.h"
#include "kvm.h"

using namespace ntc::vmm;

TEST_CASE("the GSI routing table keeps KVM's default entries and adds a route per MSI vector") {
    GsiRouting routing;
    std::vector<kvm_irq_routing_entry> defaults = routing.entries();
    CHECK(defaults.size() == 16 * 2 + 8);
    auto routes_of = [](const std::vector<kvm_irq_routing_entry>& all, uint32_t gsi) {
        std::vector<std::pair<uint32_t, uint32_t>> out;  // irqchip, pin
        for (const auto& e : all)
            if (e.gsi == gsi && e.type == KVM_IRQ_ROUTING_IRQCHIP)
                out.push_back({e.u.irqchip.irqchip, e.u.irqchip.pin});
        std::sort(out.begin(), out.end());
        return out;
    };
    using Pins = std::vector<std::pair<uint32_t, uint32_t>>;
    CHECK(routes_of(defaults, 0) == Pins{{KVM_IRQCHIP_PIC_MASTER, 0}, {KVM_IRQCHIP_IOAPIC, 0}});
    CHECK(routes_of(defaults, 4) == Pins{{KVM_IRQCHIP_PIC_MASTER, 4}, {KVM_IRQCHIP_IOAPIC, 4}});
    CHECK(routes_of(defaults, 9) == Pins{{KVM_IRQCHIP_PIC_SLAVE, 1}, {KVM_IRQCHIP_IOAPIC, 9}});
    CHECK(routes_of(defaults, 16) == Pins{{KVM_IRQCHIP_IOAPIC, 16}});
    CHECK(routes_of(defaults, 23) == Pins{{KVM_IRQCHIP_IOAPIC, 23}});
    CHECK(routes_of(defaults, 24).empty());

    uint32_t a = routing.add_msi(), b = routing.add_msi();
    CHECK(a == 24);
    CHECK(b == 25);
    routing.set_msi(b, {0x1fee01000ull, 0x4031});
    std::vector<kvm_irq_routing_entry> all = routing.entries();
    REQUIRE(all.size() == defaults.size() + 1);  // a GSI nobody routed yet has no entry
    const kvm_irq_routing_entry& msi = all.back();
    CHECK(msi.gsi == b);
    CHECK(msi.type == KVM_IRQ_ROUTING_MSI);
    CHECK(msi.flags == 0);
    CHECK(msi.u.msi.address_lo == 0xfee01000);
    CHECK(msi.u.msi.address_hi == 1);
    CHECK(msi.u.msi.data == 0x4031);
    routing.set_msi(b, {0xfee02000, 0x4041});
    CHECK(routing.entries().size() == all.size());  // replaced, not added

    // The ioctl's argument as the kernel reads it: nr and flags, then the
    // entries at offset 8; and the ioctl number C computes for it.
    std::vector<uint64_t> table = routing.kvm_table();
    KvmIrqRoutingHeader header;
    std::memcpy(&header, table.data(), sizeof(header));
    CHECK(header.nr == all.size());
    CHECK(header.flags == 0);
    kvm_irq_routing_entry last;
    std::memcpy(&last, reinterpret_cast<const uint8_t*>(table.data()) + 8 + (all.size() - 1) * sizeof(last),
                sizeof(last));
    CHECK(last.gsi == b);
    CHECK(last.u.msi.data == 0x4041);
    CHECK(table.size() * 8 == 8 + all.size() * sizeof(kvm_irq_routing_entry));
    CHECK(kKvmSetGsiRouting == 0x4008ae6aul);
}
