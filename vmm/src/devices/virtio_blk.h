#pragma once
// virtio-blk: reads, writes, flush (fdatasync: a checkpoint relies on it),
// get-id; the request's sector range is checked against the disk's size.
// A queue per vCPU (VIRTIO_BLK_F_MQ), each with its own MSI-X vector, so the
// guest can complete a request on the vCPU that made it (vmm.md).
#include <linux/virtio_blk.h>

#include <string>

#include "devices/virtio_device.h"

namespace ntc::vmm {

class VirtioBlock : public VirtioDevice {
public:
    static constexpr uint64_t kFeatureSegMax = 1ull << VIRTIO_BLK_F_SEG_MAX;
    static constexpr uint64_t kFeatureReadOnly = 1ull << VIRTIO_BLK_F_RO;
    static constexpr uint64_t kFeatureFlush = 1ull << VIRTIO_BLK_F_FLUSH;
    static constexpr uint64_t kFeatureIndirect = 1ull << VIRTIO_RING_F_INDIRECT_DESC;
    static constexpr uint64_t kFeatureMultiQueue = 1ull << VIRTIO_BLK_F_MQ;
    static constexpr uint32_t kSegMax = 126;
    // The transport's queue masks and MSI-X table have room for more.
    static constexpr unsigned kMaxQueues = 16;

    // `fd` is borrowed; `id` is what VIRTIO_BLK_T_GET_ID answers (VIRTIO_BLK_ID_BYTES at most);
    // `queues` from 1 to kMaxQueues.
    VirtioBlock(int fd, uint64_t size_bytes, bool read_only, std::string id, unsigned queues);

    uint16_t device_id() const override { return VIRTIO_ID_BLOCK; }
    uint64_t features() const override;
    unsigned queue_count() const override { return queues_; }
    std::vector<uint8_t> config() const override;
    std::string name() const override { return "virtio-blk " + id_; }
    bool process(unsigned index, Virtqueue& queue) override;

private:
    uint8_t serve(const DescriptorChain& chain, uint32_t& written);

    int fd_;
    uint64_t sectors_;
    bool read_only_;
    std::string id_;
    unsigned queues_;
};

}  // namespace ntc::vmm
