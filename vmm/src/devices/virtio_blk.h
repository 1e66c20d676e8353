#pragma once
// virtio-blk: reads, writes, flush (fdatasync: a checkpoint relies on it),
// get-id; the request's sector range is checked against the disk's size.
// Reads, writes and flushes go to the disk file through BlockIo, as many in
// flight as the guest offers, and return to the guest in the order they
// complete.  A flush completes once every write that completed before the
// driver sent it is durable: what the guest's block layer relies on
// ("previously completed write requests", the kernel's
// Documentation/block/writeback_cache_control.rst), no more.
// A queue per vCPU (VIRTIO_BLK_F_MQ), each with its own MSI-X vector, so the
// guest can complete a request on the vCPU that made it (vmm.md).
//
// On an overlay (ntc/overlay.h, an instance's disk over a shared disk 2):
// writes go to the overlay file and are marked there once complete; a read
// goes, a run of sectors at a time, to the overlay or the base; a flush
// syncs the overlay's data, then commits the bits of the writes that
// completed before it (in the worker: one small write and a sync).
#include <linux/virtio_blk.h>

#include <cstdint>
#include <functional>
#include <ntc/overlay.h>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/block_io.h"
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
    // A writable disk made of `overlay` (borrowed) over its base.
    VirtioBlock(ntc::Overlay& overlay, std::string id, unsigned queues);

    uint16_t device_id() const override { return VIRTIO_ID_BLOCK; }
    uint64_t features() const override;
    unsigned queue_count() const override { return queues_; }
    std::vector<uint8_t> config() const override;
    std::string name() const override { return "virtio-blk " + id_; }
    bool process(unsigned index, Virtqueue& queue) override;
    int completion_fd() const override { return io_.completion_fd(); }
    unsigned complete(std::span<Virtqueue> queues) override;
    void quiesce() override;
    std::string describe() const override;

    unsigned in_flight() const { return io_.in_flight(); }

    // Called in the worker before each write and flush goes to the disk.
    // Before the worker starts.
    void before_writes(std::function<void()> hook) { before_writes_ = std::move(hook); }

    // A disk served through an overlay for a while (made with the overlay
    // constructor): once `done()` says so, between requests with none in
    // flight, the worker calls `merge()` (which puts the overlay's sectors
    // into the base) and serves the base through `fd`, read-write, from
    // then on.  Before the worker starts.
    void leave_overlay_when(std::function<bool()> done, std::function<void()> merge, int fd);
    // Leaves the overlay now if `done()` says so and nothing is in flight;
    // returns whether the disk is served without it (the worker's check,
    // and the machine's once the worker has stopped).
    bool leave_overlay_if_done();

private:
    // A read, write or flush between its submission and its completion.
    struct Request {
        unsigned queue;
        uint16_t head;
        uint32_t type;            // VIRTIO_BLK_T_*
        uint8_t* status;          // the chain's status byte
        std::vector<iovec> data;  // what is still to transfer
        uint64_t offset;          // on the disk, of data's first byte
        uint32_t bytes_read = 0;  // for the used length
        // On an overlay: the sectors a write covers, marked when it is
        // done; the part of data a read transfers from one file; the
        // sectors a flush commits.
        ntc::SectorRange written{};
        std::vector<iovec> run;
        std::vector<ntc::SectorRange> committing;
    };

    // Serves a request at once (get-id, anything refused), returning its
    // status; or submits it and returns nullopt.
    std::optional<uint8_t> start(unsigned queue, const DescriptorChain& chain, uint32_t& written);
    void submit(uint32_t tag);
    void submit_read(Request& request, uint32_t tag);
    // A completion of request `tag`; returns whether the request is done.
    bool finish(uint32_t tag, int64_t result, uint8_t& status);
    uint8_t finish_flush(Request& request, int64_t result);
    void release(uint32_t tag);

    int fd_;                 // the disk file, or the overlay's base
    ntc::Overlay* overlay_;  // or null
    uint64_t sectors_;
    bool read_only_;
    std::string id_;
    unsigned queues_;
    std::vector<Request> requests_;    // indexed by tag
    std::vector<uint32_t> free_tags_;  // of requests_ not in flight
    std::function<void()> before_writes_;
    struct OverlayExit {
        std::function<bool()> done;
        std::function<void()> merge;
        int fd;
    };
    std::optional<OverlayExit> overlay_exit_;
    BlockIo io_;  // last: its destructor waits for requests_ in flight
};

}  // namespace ntc::vmm
