#pragma once
// virtio-blk: reads, writes, flush (fdatasync: a checkpoint relies on it),
// get-id; the request's sector range is checked against the disk's size.
//
// Reads, writes and flushes go to an io_uring, so that the requests the
// driver makes available are in flight together, and complete as their
// I/O finishes, in any order; a flush only after every write before it.
// Where the kernel refuses a ring, the same requests run synchronously in
// process(), one after another.
#include <linux/virtio_blk.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "devices/block_io.h"
#include "devices/virtio_device.h"

namespace ntc::vmm {

class VirtioBlock : public VirtioDevice {
public:
    static constexpr uint64_t kFeatureSegMax = 1ull << VIRTIO_BLK_F_SEG_MAX;
    static constexpr uint64_t kFeatureReadOnly = 1ull << VIRTIO_BLK_F_RO;
    static constexpr uint64_t kFeatureFlush = 1ull << VIRTIO_BLK_F_FLUSH;
    static constexpr uint64_t kFeatureIndirect = 1ull << VIRTIO_RING_F_INDIRECT_DESC;
    static constexpr uint32_t kSegMax = 126;

    enum class Io { ring, synchronous };

    // `fd` is borrowed; `id` is what VIRTIO_BLK_T_GET_ID answers
    // (VIRTIO_BLK_ID_BYTES at most).  `io` synchronous skips the ring (the
    // tests' way to the fallback).
    VirtioBlock(int fd, uint64_t size_bytes, bool read_only, std::string id, Io io = Io::ring);
    ~VirtioBlock() override;

    uint16_t device_id() const override { return VIRTIO_ID_BLOCK; }
    uint64_t features() const override;
    unsigned queue_count() const override { return 1; }
    std::vector<uint8_t> config() const override;
    bool process(unsigned index, Virtqueue& queue) override;
    int completion_fd() const override { return ring_ ? ring_->eventfd() : -1; }
    unsigned complete(std::span<Virtqueue> queues) override;
    void drain() noexcept override;

    bool uses_ring() const { return ring_ != nullptr; }

private:
    struct Request {
        uint16_t head;
        uint8_t* status;             // in guest memory
        uint32_t reply_bytes = 0;    // written into the chain on success, the status byte not counted
        uint8_t answer = 0;          // the status, for a request without disk I/O
        std::optional<DiskOp> disk;  // the I/O it needs
    };

    Request parse(const DescriptorChain& chain) const;
    void finish(Virtqueue& queue, const Request& request, uint8_t status);

    int fd_;
    uint64_t sectors_;
    bool read_only_;
    std::string id_;
    std::unique_ptr<DiskRing> ring_;
    std::unordered_map<uint64_t, Request> in_flight_;  // by ring tag; nodes stay put, as the ring needs
    uint64_t next_tag_ = 0;
};

}  // namespace ntc::vmm
