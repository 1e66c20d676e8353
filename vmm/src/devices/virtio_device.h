#pragma once
// What a virtio device type (block, ...) provides to the PCI transport.
#include <cstdint>
#include <span>
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
    // Serves whatever the driver made available on `queue`, the device's
    // queue number `index`; returns whether used buffers were added.  Throws
    // GuestError for a malformed request.
    virtual bool process(unsigned index, Virtqueue& queue) = 0;

    // A device may leave requests process() popped in flight and complete
    // them later.  Its eventfd, signalled as their I/O finishes, or -1 when
    // process() completes every request it pops.
    virtual int completion_fd() const { return -1; }
    // Completes the requests whose I/O has finished, on the device's
    // `queues`; returns the queues that got used buffers, a bit each.
    virtual unsigned complete(std::span<Virtqueue> queues) {
        (void)queues;
        return 0;
    }
    // Waits for the I/O of every request in flight and forgets them, their
    // guest buffers no longer touched; for a reset, which discards the
    // queues they would complete on, and for the end of the VM.
    virtual void drain() noexcept {}
};

}  // namespace ntc::vmm
