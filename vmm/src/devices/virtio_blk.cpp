#include "devices/virtio_blk.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace ntc::vmm {

namespace {

constexpr uint64_t kSector = 512;
constexpr unsigned kRequestQueue = 0;

// The last device-writable byte of the chain (parse() checked there is one).
uint8_t* status_byte(const std::vector<iovec>& writable) {
    for (auto it = writable.rbegin(); it != writable.rend(); ++it)
        if (it->iov_len) return static_cast<uint8_t*>(it->iov_base) + it->iov_len - 1;
    return nullptr;
}

// The ring, or null with a word on stderr (once for all disks) that
// requests run synchronously.
std::unique_ptr<DiskRing> open_ring() {
    try {
        // As deep as the largest queue: every request the driver can
        // offer at once is in flight at once.
        return std::make_unique<DiskRing>(Virtqueue::kMaxSize);
    } catch (const ntc::Error& e) {
        static std::once_flag said;
        std::call_once(said, [&] {
            std::fprintf(stderr, "ntc-vmm: %s; virtio-blk serves one request at a time instead\n", e.what());
        });
        return nullptr;
    }
}

}  // namespace

VirtioBlock::VirtioBlock(int fd, uint64_t size_bytes, bool read_only, std::string id, Io io)
    : fd_(fd), sectors_(size_bytes / kSector), read_only_(read_only), id_(std::move(id)),
      ring_(io == Io::ring ? open_ring() : nullptr) {}

VirtioBlock::~VirtioBlock() { drain(); }

uint64_t VirtioBlock::features() const {
    return kFeatureSegMax | kFeatureFlush | kFeatureIndirect | (read_only_ ? kFeatureReadOnly : 0);
}

std::vector<uint8_t> VirtioBlock::config() const {
    virtio_blk_config c{};
    c.capacity = sectors_;
    c.seg_max = kSegMax;
    auto bytes = reinterpret_cast<const uint8_t*>(&c);
    return {bytes, bytes + sizeof(c)};
}

// What `chain` asks: disk I/O, or an answer right away (get-id, which
// needs no I/O, is answered here).  Throws GuestError.
VirtioBlock::Request VirtioBlock::parse(const DescriptorChain& chain) const {
    virtio_blk_outhdr header;
    auto header_buffers = slice(chain.readable, 0, sizeof(header));
    if (total(header_buffers) < sizeof(header) || chain.writable.empty() || total(chain.writable) < 1)
        throw GuestError("block request without header or status byte");
    uint8_t* dst = reinterpret_cast<uint8_t*>(&header);
    for (const auto& b : header_buffers) {
        std::memcpy(dst, b.iov_base, b.iov_len);
        dst += b.iov_len;
    }
    Request request{chain.head, status_byte(chain.writable)};
    uint64_t in_bytes = total(chain.writable) - 1;  // the last byte is the status
    auto in_data = slice(chain.writable, 0, in_bytes);
    uint64_t out_bytes = total(chain.readable) - sizeof(header);
    auto out_data = slice(chain.readable, sizeof(header), out_bytes);

    auto in_range = [&](uint64_t bytes) {
        return bytes % kSector == 0 && header.sector <= sectors_ && bytes / kSector <= sectors_ - header.sector;
    };
    request.answer = VIRTIO_BLK_S_IOERR;
    switch (header.type) {
    case VIRTIO_BLK_T_IN:
        if (!in_range(in_bytes)) return request;
        request.disk = DiskOp{DiskOp::Kind::read, std::move(in_data), header.sector * kSector};
        request.reply_bytes = uint32_t(in_bytes);
        return request;
    case VIRTIO_BLK_T_OUT:
        if (read_only_ || !in_range(out_bytes)) return request;
        request.disk = DiskOp{DiskOp::Kind::write, std::move(out_data), header.sector * kSector};
        return request;
    case VIRTIO_BLK_T_FLUSH:
        request.disk = DiskOp{DiskOp::Kind::flush, {}, 0};
        return request;
    case VIRTIO_BLK_T_GET_ID: {
        uint64_t n = std::min<uint64_t>({in_bytes, uint64_t(VIRTIO_BLK_ID_BYTES), uint64_t(id_.size())});
        uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
        std::memcpy(id, id_.data(), n);
        uint64_t copied = 0;
        for (const auto& b : in_data) {
            uint64_t step = std::min<uint64_t>(b.iov_len, std::min<uint64_t>(in_bytes, VIRTIO_BLK_ID_BYTES) - copied);
            std::memcpy(b.iov_base, id + copied, step);
            copied += step;
        }
        request.reply_bytes = uint32_t(copied);
        request.answer = VIRTIO_BLK_S_OK;
        return request;
    }
    default:
        request.answer = VIRTIO_BLK_S_UNSUPP;
        return request;
    }
}

void VirtioBlock::finish(Virtqueue& queue, const Request& request, uint8_t status) {
    *request.status = status;
    queue.push_used(request.head, (status == VIRTIO_BLK_S_OK ? request.reply_bytes : 0) + 1);
}

bool VirtioBlock::process(unsigned, Virtqueue& queue) {
    bool used = false;
    try {
        while (auto chain = queue.pop()) {
            Request request = parse(*chain);
            if (request.disk && ring_) {
                uint64_t tag = next_tag_++;
                auto queued = in_flight_.emplace(tag, std::move(request)).first;
                if (ring_->queue(fd_, *queued->second.disk, tag)) continue;
                finish(queue, queued->second, VIRTIO_BLK_S_IOERR);
                in_flight_.erase(queued);
                used = true;
                continue;
            }
            uint8_t status = request.answer;
            if (request.disk) status = run_synchronously(fd_, *request.disk) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
            finish(queue, request, status);
            used = true;
        }
    } catch (const GuestError&) {
        // The requests before the malformed one go ahead all the same.
        if (ring_) ring_->submit();
        throw;
    }
    if (ring_) ring_->submit();
    return used;
}

unsigned VirtioBlock::complete(std::span<Virtqueue> queues) {
    if (!ring_) return 0;
    bool used = false, resumed = false;
    while (auto done = ring_->next(false)) {
        auto it = in_flight_.find(done->tag);
        Request& request = it->second;
        DiskOp& disk = *request.disk;
        bool failed = done->result < 0 || (done->result == 0 && !disk.done());
        if (!failed && disk.kind != DiskOp::Kind::flush) disk.advance(uint64_t(done->result));
        // A short transfer (rare for a file, not an error): the rest.
        if (!failed && !disk.done()) {
            if (ring_->queue(fd_, disk, done->tag)) {
                resumed = true;
                continue;
            }
            failed = true;
        }
        finish(queues[kRequestQueue], request, failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
        in_flight_.erase(it);
        used = true;
    }
    if (resumed) ring_->submit();
    return used ? 1u << kRequestQueue : 0;
}

void VirtioBlock::drain() noexcept {
    while (!in_flight_.empty()) in_flight_.erase(ring_->next(true)->tag);
}

}  // namespace ntc::vmm
