#pragma once
// What KVM does for a device through eventfds, with no exit to the VMM: a
// guest write to an address signals an eventfd (ioeventfd), and a write to
// an eventfd injects an MSI (irqfd on a GSI routed to the message).  Vm
// implements it with KVM's ioctls; the unit tests record what a device asks.
#include <cstdint>

#include "devices/msix.h"

namespace ntc::vmm {

class VmEventfds {
public:
    virtual ~VmEventfds() = default;
    // A GSI of its own, unrouted until route_msi(), that every write to
    // `eventfd` injects (KVM_IRQFD); returns the GSI.
    virtual uint32_t add_irqfd(int eventfd) = 0;
    // `gsi` now delivers `message` (KVM_SET_GSI_ROUTING).
    virtual void route_msi(uint32_t gsi, const MsiMessage& message) = 0;
    // A guest write of `length` bytes to MMIO `address` signals `eventfd`
    // instead of exiting (KVM_IOEVENTFD); and no longer.
    virtual void add_ioeventfd(uint64_t address, unsigned length, int eventfd) = 0;
    virtual void remove_ioeventfd(uint64_t address, unsigned length, int eventfd) = 0;
};

}  // namespace ntc::vmm
