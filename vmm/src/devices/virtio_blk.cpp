#include "devices/virtio_blk.h"

#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace ntc::vmm {

namespace {

constexpr uint64_t kSector = 512;

// Full transfer at `offset`, retrying short reads/writes.
bool transfer(int fd, std::vector<iovec> iov, uint64_t offset, bool write) {
    size_t first = 0;
    while (first < iov.size()) {
        int n = int(std::min<size_t>(iov.size() - first, IOV_MAX));
        ssize_t done =
            write ? ::pwritev(fd, &iov[first], n, off_t(offset)) : ::preadv(fd, &iov[first], n, off_t(offset));
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return false;
        offset += uint64_t(done);
        while (done > 0) {
            size_t step = std::min<size_t>(size_t(done), iov[first].iov_len);
            iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + step;
            iov[first].iov_len -= step;
            done -= ssize_t(step);
            if (iov[first].iov_len == 0) first++;
        }
        while (first < iov.size() && iov[first].iov_len == 0) first++;
    }
    return true;
}

// The last device-writable byte of the chain (serve() checked there is one).
uint8_t* status_byte(const std::vector<iovec>& writable) {
    for (auto it = writable.rbegin(); it != writable.rend(); ++it)
        if (it->iov_len) return static_cast<uint8_t*>(it->iov_base) + it->iov_len - 1;
    return nullptr;
}

}  // namespace

VirtioBlock::VirtioBlock(int fd, uint64_t size_bytes, bool read_only, std::string id, unsigned queues)
    : fd_(fd), sectors_(size_bytes / kSector), read_only_(read_only), id_(std::move(id)), queues_(queues) {
    if (queues < 1 || queues > kMaxQueues)
        throw ntc::Error("virtio-blk takes 1 to " + std::to_string(kMaxQueues) + " queues, not " +
                         std::to_string(queues));
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

uint8_t VirtioBlock::serve(const DescriptorChain& chain, uint32_t& written) {
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
    auto out_data = slice(chain.readable, sizeof(header), out_bytes);

    auto in_range = [&](uint64_t bytes) {
        return bytes % kSector == 0 && header.sector <= sectors_ && bytes / kSector <= sectors_ - header.sector;
    };
    switch (header.type) {
    case VIRTIO_BLK_T_IN:
        if (!in_range(in_bytes)) return VIRTIO_BLK_S_IOERR;
        if (!transfer(fd_, in_data, header.sector * kSector, false)) return VIRTIO_BLK_S_IOERR;
        written = uint32_t(in_bytes);
        return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_OUT:
        if (read_only_ || !in_range(out_bytes)) return VIRTIO_BLK_S_IOERR;
        return transfer(fd_, out_data, header.sector * kSector, true) ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
    case VIRTIO_BLK_T_FLUSH:
        return ::fdatasync(fd_) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
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
        written = uint32_t(copied);
        return VIRTIO_BLK_S_OK;
    }
    default:
        return VIRTIO_BLK_S_UNSUPP;
    }
}

bool VirtioBlock::process(unsigned, Virtqueue& queue) {
    bool used = false;
    while (auto chain = queue.pop()) {
        uint32_t written = 0;
        uint8_t status = serve(*chain, written);
        *status_byte(chain->writable) = status;
        queue.push_used(chain->head, written + 1);
        used = true;
    }
    return used;
}

}  // namespace ntc::vmm
