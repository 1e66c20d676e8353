#pragma once
// A virtio 1.x split virtqueue over untrusted guest memory.  pop() walks one
// descriptor chain and turns it into host buffers; anything malformed (index
// out of range, a loop, an address outside RAM, nested indirect tables, more
// available entries than the ring holds) throws GuestError, which the device
// turns into NEEDS_RESET.
#include <sys/uio.h>

// Without the legacy part, which C++ cannot compile (vring_init).
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <cstdint>
#include <ntc/error.h>
#include <optional>
#include <string>
#include <vector>

#include "guest_memory.h"

namespace ntc::vmm {

// A misbehaving guest: it only ever puts the device it talked to into its
// error state (NEEDS_RESET), never ends the VMM as another ntc::Error does.
struct GuestError : ntc::Error {
    using ntc::Error::Error;
};

struct DescriptorChain {
    uint16_t head;
    std::vector<iovec> readable;  // driver -> device, in chain order
    std::vector<iovec> writable;  // device -> driver, in chain order
};

// Bytes in a list of buffers.
uint64_t total(const std::vector<iovec>& buffers);
// `count` bytes of `buffers` starting `skip` bytes in, as a new iovec list
// (shorter when the buffers end first).
std::vector<iovec> slice(const std::vector<iovec>& buffers, uint64_t skip, uint64_t count);
// Copies `size` bytes into `buffers` from their start; returns the bytes
// copied (fewer when the buffers are shorter).
size_t copy_to(const std::vector<iovec>& buffers, const void* data, size_t size);

class Virtqueue {
public:
    static constexpr uint16_t kMaxSize = 256;
    // Bounds the work one chain can ask for, indirect tables included.
    static constexpr size_t kMaxChainDescriptors = 1024;

    explicit Virtqueue(const GuestMemory& memory) : memory_(&memory) {}

    // Driver-visible configuration (virtio common config).
    uint16_t size = kMaxSize;
    uint64_t desc_address = 0;
    uint64_t avail_address = 0;
    uint64_t used_address = 0;
    // VIRTIO_RING_F_EVENT_IDX negotiated: notifications and interrupts are
    // asked for by index (avail_event, used_event) instead of by flags.
    bool event_index = false;
    bool ready() const { return ready_; }

    // Checks the configuration and the rings' placement; throws GuestError.
    void enable();
    void reset();

    // The next available chain, or nullopt when the driver has offered none;
    // then, with event_index, the driver is asked to notify at its next one.
    std::optional<DescriptorChain> pop();
    // Returns a chain to the driver with `written` bytes stored in it.
    void push_used(uint16_t head, uint32_t written);
    // Chains taken since enable(), modulo 2^16.
    uint16_t taken() const { return last_avail_; }
    // Whether the driver wants an interrupt for the chains returned since
    // the last call that said yes (virtio 1.x 2.7.7, 2.7.10).
    bool needs_interrupt();

    // Where driver and device stand, for a guest that hangs: the driver's
    // available index against the chains taken, the used index, the
    // driver's flags.  Called by the thread that serves the queue.
    std::string describe() const;

private:
    uint16_t available_index() const;
    void add_descriptors(DescriptorChain& chain, uint64_t table, uint32_t count, uint16_t first, bool indirect_allowed,
                         size_t& budget) const;

    const GuestMemory* memory_;
    bool ready_ = false;
    uint16_t last_avail_ = 0;
    uint16_t next_used_ = 0;
    // The used index at the last interrupt; none yet after enable().
    std::optional<uint16_t> signalled_used_;
};

}  // namespace ntc::vmm
