#include "devices/virtio_blk.h"

#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ntc::vmm {

namespace {

constexpr uint64_t kSector = 512;

// Drops the first `bytes` bytes of `buffers`.
void advance(std::vector<iovec>& buffers, uint64_t bytes) {
    size_t first = 0;
    while (first < buffers.size() && bytes >= buffers[first].iov_len) bytes -= buffers[first++].iov_len;
    buffers.erase(buffers.begin(), buffers.begin() + ptrdiff_t(first));
    if (bytes && !buffers.empty()) {
        buffers[0].iov_base = static_cast<uint8_t*>(buffers[0].iov_base) + bytes;
        buffers[0].iov_len -= bytes;
    }
}

// The last device-writable byte of the chain (start() checked there is one).
uint8_t* status_byte(const std::vector<iovec>& writable) {
    for (auto it = writable.rbegin(); it != writable.rend(); ++it)
        if (it->iov_len) return static_cast<uint8_t*>(it->iov_base) + it->iov_len - 1;
    return nullptr;
}

unsigned checked_queues(unsigned queues) {
    if (queues < 1 || queues > VirtioBlock::kMaxQueues)
        throw ntc::Error("virtio-blk takes 1 to " + std::to_string(VirtioBlock::kMaxQueues) + " queues, not " +
                         std::to_string(queues));
    return queues;
}

}  // namespace

VirtioBlock::VirtioBlock(int fd, uint64_t size_bytes, bool read_only, std::string id, unsigned queues)
    : fd_(fd), overlay_(nullptr), sectors_(size_bytes / kSector), read_only_(read_only), id_(std::move(id)),
      queues_(queues), io_(checked_queues(queues) * Virtqueue::kMaxSize, name()) {}

VirtioBlock::VirtioBlock(ntc::Overlay& overlay, std::string id, unsigned queues)
    : VirtioBlock(overlay.base().fd(), overlay.size(), false, std::move(id), queues) {
    overlay_ = &overlay;
}

uint64_t VirtioBlock::features() const {
    return kFeatureSegMax | kFeatureFlush | kFeatureIndirect | kFeatureMultiQueue | (read_only_ ? kFeatureReadOnly : 0);
}

std::vector<uint8_t> VirtioBlock::config() const {
    virtio_blk_config c{};
    c.capacity = sectors_;
    c.seg_max = kSegMax;
    c.num_queues = uint16_t(queues_);
    auto bytes = reinterpret_cast<const uint8_t*>(&c);
    return {bytes, bytes + sizeof(c)};
}

std::optional<uint8_t> VirtioBlock::start(unsigned queue, const DescriptorChain& chain, uint32_t& written) {
    virtio_blk_outhdr header;
    auto header_buffers = slice(chain.readable, 0, sizeof(header));
    if (total(header_buffers) < sizeof(header) || chain.writable.empty() || total(chain.writable) < 1)
        throw GuestError("block request without header or status byte");
    uint8_t* dst = reinterpret_cast<uint8_t*>(&header);
    for (const auto& b : header_buffers) {
        std::memcpy(dst, b.iov_base, b.iov_len);
        dst += b.iov_len;
    }
    uint64_t in_bytes = total(chain.writable) - 1;  // the last byte is the status
    auto in_data = slice(chain.writable, 0, in_bytes);
    uint64_t out_bytes = total(chain.readable) - sizeof(header);

    auto in_range = [&](uint64_t bytes) {
        return bytes % kSector == 0 && header.sector <= sectors_ && bytes / kSector <= sectors_ - header.sector;
    };
    auto submitted = [&](std::vector<iovec> data) -> std::optional<uint8_t> {
        if (data.empty() && header.type != VIRTIO_BLK_T_FLUSH) return VIRTIO_BLK_S_OK;  // nothing to move
        uint32_t tag;
        if (free_tags_.empty()) {
            tag = uint32_t(requests_.size());
            requests_.emplace_back();
        } else {
            tag = free_tags_.back();
            free_tags_.pop_back();
        }
        uint64_t sectors = total(data) / kSector;
        requests_[tag] = {
            queue, chain.head, header.type, status_byte(chain.writable), std::move(data), header.sector * kSector};
        requests_[tag].written = {header.sector, sectors};
        submit(tag);
        return std::nullopt;
    };
    switch (header.type) {
    case VIRTIO_BLK_T_IN:
        if (!in_range(in_bytes)) return VIRTIO_BLK_S_IOERR;
        return submitted(std::move(in_data));
    case VIRTIO_BLK_T_OUT:
        if (read_only_ || !in_range(out_bytes)) return VIRTIO_BLK_S_IOERR;
        if (before_writes_) before_writes_();
        return submitted(slice(chain.readable, sizeof(header), out_bytes));
    case VIRTIO_BLK_T_FLUSH:
        if (before_writes_) before_writes_();
        return submitted({});
    case VIRTIO_BLK_T_GET_ID: {
        uint64_t n = std::min<uint64_t>({in_bytes, uint64_t(VIRTIO_BLK_ID_BYTES), uint64_t(id_.size())});
        uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
        std::memcpy(id, id_.data(), n);
        written = uint32_t(copy_to(in_data, id, std::min<uint64_t>(in_bytes, VIRTIO_BLK_ID_BYTES)));
        return VIRTIO_BLK_S_OK;
    }
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

void VirtioBlock::submit(uint32_t tag) {
    Request& request = requests_[tag];
    if (!overlay_) {
        if (request.type == VIRTIO_BLK_T_FLUSH) io_.flush(tag, fd_);
        else if (request.type == VIRTIO_BLK_T_IN) io_.read(tag, fd_, request.data, request.offset);
        else io_.write(tag, fd_, request.data, request.offset);
        return;
    }
    int overlay_fd = overlay_->file().fd();
    if (request.type == VIRTIO_BLK_T_FLUSH) {
        request.committing = overlay_->take_marked();
        io_.flush(tag, overlay_fd);
    } else if (request.type == VIRTIO_BLK_T_IN) {
        submit_read(request, tag);
    } else {
        io_.write(tag, overlay_fd, request.data, overlay_->data_offset() + request.offset);
    }
}

void VirtioBlock::submit_read(Request& request, uint32_t tag) {
    // A short transfer may stop inside a sector; its rest comes from the
    // same file.
    uint64_t sector = request.offset / kSector;
    uint64_t skip = request.offset % kSector;
    auto run = overlay_->run(sector, (skip + total(request.data) + kSector - 1) / kSector);
    request.run = slice(request.data, 0, run.sectors * kSector - skip);
    if (run.in_overlay) io_.read(tag, overlay_->file().fd(), request.run, overlay_->data_offset() + request.offset);
    else io_.read(tag, fd_, request.run, request.offset);
}

uint8_t VirtioBlock::finish_flush(Request& request, int64_t result) {
    if (!overlay_) return result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
    if (result < 0) {
        overlay_->defer(std::move(request.committing));
        return VIRTIO_BLK_S_IOERR;
    }
    try {
        overlay_->commit(request.committing);
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-vmm: %s: %s\n", name().c_str(), e.what());
        return VIRTIO_BLK_S_IOERR;
    }
    return VIRTIO_BLK_S_OK;
}

bool VirtioBlock::finish(uint32_t tag, int64_t result, uint8_t& status) {
    Request& request = requests_[tag];
    status = VIRTIO_BLK_S_OK;
    if (request.type == VIRTIO_BLK_T_FLUSH) {
        status = finish_flush(request, result);
        return true;
    }
    // A transfer ends short after IOV_MAX buffers, or at the file's end (it
    // shrank under the VMM): the rest is submitted again, and where nothing
    // more comes the request fails.
    if (result <= 0) {
        status = VIRTIO_BLK_S_IOERR;
        return true;
    }
    advance(request.data, uint64_t(result));
    request.offset += uint64_t(result);
    if (request.type == VIRTIO_BLK_T_IN) request.bytes_read += uint32_t(result);
    if (request.data.empty()) {
        if (overlay_ && request.type == VIRTIO_BLK_T_OUT) overlay_->mark(request.written.first, request.written.count);
        return true;
    }
    submit(tag);
    return false;
}

void VirtioBlock::release(uint32_t tag) {
    requests_[tag].data.clear();
    requests_[tag].run.clear();
    requests_[tag].committing.clear();
    free_tags_.push_back(tag);
}

void VirtioBlock::leave_overlay_when(std::function<bool()> done, std::function<void()> merge, int fd) {
    overlay_exit_ = OverlayExit{std::move(done), std::move(merge), fd};
}

bool VirtioBlock::leave_overlay_if_done() {
    if (!overlay_exit_) return true;
    if (io_.in_flight() || !overlay_exit_->done()) return false;
    overlay_exit_->merge();
    overlay_ = nullptr;
    fd_ = overlay_exit_->fd;
    overlay_exit_.reset();
    return true;
}

bool VirtioBlock::process(unsigned index, Virtqueue& queue) {
    leave_overlay_if_done();
    bool used = false;
    while (auto chain = queue.pop()) {
        uint32_t written = 0;
        std::optional<uint8_t> status = start(index, *chain, written);
        if (!status) continue;
        *status_byte(chain->writable) = *status;
        queue.push_used(chain->head, written + 1);
        used = true;
    }
    io_.submit();
    return used;
}

unsigned VirtioBlock::complete(std::span<Virtqueue> queues) {
    unsigned used = 0;
    // A request that goes on (a short transfer) may be done at once again.
    for (auto completions = io_.take_completions(); !completions.empty(); completions = io_.take_completions()) {
        for (const auto& completion : completions) {
            uint32_t tag = uint32_t(completion.tag);
            uint8_t status;
            if (!finish(tag, completion.result, status)) continue;
            const Request& request = requests_[tag];
            *request.status = status;
            uint32_t written = status == VIRTIO_BLK_S_OK ? request.bytes_read : 0;
            queues[request.queue].push_used(request.head, written + 1);
            used |= 1u << request.queue;
            release(tag);
        }
    }
    io_.submit();
    leave_overlay_if_done();
    return used;
}

std::string VirtioBlock::describe() const {
    return std::to_string(io_.in_flight()) + " requests in flight, " + std::to_string(io_.in_ring()) +
           " of them waiting in io_uring";
}

void VirtioBlock::quiesce() {
    for (const auto& completion : io_.wait_all()) {
        uint32_t tag = uint32_t(completion.tag);
        // Writes the guest was told of wait for the next flush.
        if (overlay_ && requests_[tag].type == VIRTIO_BLK_T_FLUSH)
            overlay_->defer(std::move(requests_[tag].committing));
        release(tag);
    }
}

}  // namespace ntc::vmm
