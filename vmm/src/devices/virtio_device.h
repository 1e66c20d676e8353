#pragma once
// What a virtio device type (block, ...) provides to the PCI transport.
#include <cstdint>
#include <string>
#include <vector>

#include "virtqueue.h"

namespace ntc::vmm {

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;
    virtual uint16_t device_id() const = 0;  // virtio device type, 1 = network, 2 = block
    virtual uint64_t features() const = 0;
    virtual unsigned queue_count() const = 0;
    virtual std::vector<uint8_t> config() const = 0;  // device-specific config
    // What messages call the device, e.g. "virtio-blk ntc-disk1".
    virtual std::string name() const { return "virtio device " + std::to_string(device_id()); }
    // Serves whatever the driver made available on `queue`, the device's
    // queue number `index`; returns whether used buffers were added.  Throws
    // GuestError for a malformed request.
    virtual bool process(unsigned index, Virtqueue& queue) = 0;
};

}  // namespace ntc::vmm
