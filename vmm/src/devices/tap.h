#pragma once
// A host TAP interface, the wire behind virtio-net.  Opened through
// /dev/net/tun with IFF_TAP | IFF_NO_PI and without IFF_VNET_HDR: one read or
// write is one plain Ethernet frame (no packet-information prefix, no
// virtio-net header: ntc-vmm offers no offloads, so there is nothing to pass
// through).  The descriptor is non-blocking.
#include <string>

#include "kvm.h"

namespace ntc::vmm {

// Attaches to the existing TAP interface `name` (ip tuntap add dev NAME mode
// tap); throws ntc::Error saying what to do when it is missing, busy or not
// ours to use.
Fd open_tap(const std::string& name);

}  // namespace ntc::vmm
