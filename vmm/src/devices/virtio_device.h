#pragma once
// What a virtio device type (block, ...) provides to the PCI transport.
#include <cstdint>
#include <span>
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
    // GuestError for a malformed request.  A request may also be left in
    // flight, to be returned by complete().
    virtual bool process(unsigned index, Virtqueue& queue) = 0;

    // For a device that leaves requests in flight: an fd that is readable
    // when some have completed, or -1.
    virtual int completion_fd() const { return -1; }
    // Returns the requests that completed to their queues, the device's
    // queues in order; returns a bit per queue to which used buffers were added.
    virtual unsigned complete(std::span<Virtqueue>) { return 0; }
    // The driver resets the device: waits for the requests in flight to end
    // and drops them, so that none touches guest memory afterwards.
    virtual void quiesce() {}
    // What a hang report adds about the device's own state (its requests
    // in flight), or nothing; called by the thread that serves the queues.
    virtual std::string describe() const { return {}; }
};

}  // namespace ntc::vmm
