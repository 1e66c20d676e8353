#include "virtqueue.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace ntc::vmm {

namespace {

// Flags and index, an entry per descriptor, then the event index.
uint64_t avail_ring_bytes(uint16_t size) { return offsetof(vring_avail, ring) + sizeof(uint16_t) * (size + 1ull); }
uint64_t used_ring_bytes(uint16_t size) {
    return offsetof(vring_used, ring) + sizeof(vring_used_elem) * size + sizeof(uint16_t);
}
// The event indices (VIRTIO_RING_F_EVENT_IDX), each its ring's last field.
uint64_t used_event_address(uint64_t avail_address, uint16_t size) {
    return avail_address + avail_ring_bytes(size) - sizeof(uint16_t);
}
uint64_t avail_event_address(uint64_t used_address, uint16_t size) {
    return used_address + used_ring_bytes(size) - sizeof(uint16_t);
}

}  // namespace

uint64_t total(const std::vector<iovec>& buffers) {
    uint64_t sum = 0;
    for (const auto& b : buffers) sum += b.iov_len;
    return sum;
}

std::vector<iovec> slice(const std::vector<iovec>& buffers, uint64_t skip, uint64_t count) {
    std::vector<iovec> out;
    for (const auto& b : buffers) {
        if (count == 0) break;
        if (skip >= b.iov_len) {
            skip -= b.iov_len;
            continue;
        }
        size_t n = std::min<uint64_t>(b.iov_len - skip, count);
        out.push_back({static_cast<uint8_t*>(b.iov_base) + skip, n});
        count -= n;
        skip = 0;
    }
    return out;
}

size_t copy_to(const std::vector<iovec>& buffers, const void* data, size_t size) {
    size_t done = 0;
    for (const auto& b : buffers) {
        if (done == size) break;
        size_t n = std::min(b.iov_len, size - done);
        std::memcpy(b.iov_base, static_cast<const uint8_t*>(data) + done, n);
        done += n;
    }
    return done;
}

void Virtqueue::enable() {
    if (size == 0 || size > kMaxSize || (size & (size - 1)))
        throw GuestError("queue size is not a power of two up to 256");
    if (desc_address % VRING_DESC_ALIGN_SIZE || avail_address % VRING_AVAIL_ALIGN_SIZE ||
        used_address % VRING_USED_ALIGN_SIZE)
        throw GuestError("misaligned ring");
    if (!memory_->span(desc_address, sizeof(vring_desc) * size) ||
        !memory_->span(avail_address, avail_ring_bytes(size)) || !memory_->span(used_address, used_ring_bytes(size)))
        throw GuestError("ring outside guest RAM");
    last_avail_ = 0;
    next_used_ = 0;
    signalled_used_.reset();
    ready_ = true;
}

void Virtqueue::reset() {
    size = kMaxSize;
    desc_address = avail_address = used_address = 0;
    event_index = false;
    ready_ = false;
    last_avail_ = next_used_ = 0;
    signalled_used_.reset();
}

void Virtqueue::add_descriptors(DescriptorChain& chain, uint64_t table, uint32_t count, uint16_t first,
                                bool indirect_allowed, size_t& budget) const {
    uint32_t index = first;
    // A chain visits each descriptor of its table at most once; more steps
    // than entries means a loop.
    for (uint32_t steps = 0;; steps++) {
        if (index >= count) throw GuestError("descriptor index out of range");
        if (steps >= count || budget == 0) throw GuestError("descriptor chain too long (loop?)");
        budget--;
        auto desc = memory_->read<vring_desc>(table + sizeof(vring_desc) * index);
        if (!desc) throw GuestError("descriptor table outside guest RAM");
        if (desc->flags & VRING_DESC_F_INDIRECT) {
            if (!indirect_allowed) throw GuestError("nested indirect descriptor table");
            if (desc->flags & VRING_DESC_F_NEXT) throw GuestError("indirect descriptor with NEXT");
            if (desc->len == 0 || desc->len % sizeof(vring_desc)) throw GuestError("bad indirect table length");
            if (!memory_->span(desc->addr, desc->len)) throw GuestError("indirect table outside guest RAM");
            add_descriptors(chain, desc->addr, uint32_t(desc->len / sizeof(vring_desc)), 0, false, budget);
            return;
        }
        uint8_t* host = memory_->span(desc->addr, desc->len);
        if (!host) throw GuestError("descriptor buffer outside guest RAM");
        if (desc->flags & VRING_DESC_F_WRITE) {
            chain.writable.push_back({host, desc->len});
        } else {
            if (!chain.writable.empty()) throw GuestError("readable descriptor after writable one");
            chain.readable.push_back({host, desc->len});
        }
        if (!(desc->flags & VRING_DESC_F_NEXT)) return;
        index = desc->next;
    }
}

uint16_t Virtqueue::available_index() const {
    auto avail_idx = memory_->read<uint16_t>(avail_address + offsetof(vring_avail, idx));
    if (!avail_idx) throw GuestError("available ring outside guest RAM");
    return *avail_idx;
}

std::optional<DescriptorChain> Virtqueue::pop() {
    if (!ready_) return std::nullopt;
    uint16_t pending = uint16_t(available_index() - last_avail_);
    if (pending == 0 && event_index) {
        // Ask for a notification at the next chain, then look again: the
        // driver may have added it before it could see the request.
        if (!memory_->write<uint16_t>(avail_event_address(used_address, size), last_avail_))
            throw GuestError("used ring outside guest RAM");
        std::atomic_thread_fence(std::memory_order_seq_cst);
        pending = uint16_t(available_index() - last_avail_);
    }
    if (pending == 0) return std::nullopt;
    if (pending > size) throw GuestError("available index ran ahead of the ring");
    // The ring entry must be read after the index that published it.
    std::atomic_thread_fence(std::memory_order_acquire);
    uint64_t entry = avail_address + offsetof(vring_avail, ring) + sizeof(uint16_t) * (last_avail_ % size);
    auto head = memory_->read<uint16_t>(entry);
    if (!head) throw GuestError("available ring outside guest RAM");
    last_avail_++;
    DescriptorChain chain{*head, {}, {}};
    size_t budget = kMaxChainDescriptors;
    add_descriptors(chain, desc_address, size, *head, true, budget);
    return chain;
}

void Virtqueue::push_used(uint16_t head, uint32_t written) {
    uint64_t entry = used_address + offsetof(vring_used, ring) + sizeof(vring_used_elem) * (next_used_ % size);
    if (!memory_->write(entry, vring_used_elem{head, written})) throw GuestError("used ring outside guest RAM");
    // The element must be visible before the index that publishes it.
    std::atomic_thread_fence(std::memory_order_release);
    next_used_++;
    if (!memory_->write<uint16_t>(used_address + offsetof(vring_used, idx), next_used_))
        throw GuestError("used ring outside guest RAM");
}

bool Virtqueue::needs_interrupt() {
    // The used index must be visible before the driver's wish is read: the
    // driver states its wish, then reads the used index.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!event_index) {
        auto flags = memory_->read<uint16_t>(avail_address + offsetof(vring_avail, flags));
        if (!flags) throw GuestError("available ring outside guest RAM");
        return !(*flags & VRING_AVAIL_F_NO_INTERRUPT);
    }
    auto used_event = memory_->read<uint16_t>(used_event_address(avail_address, size));
    if (!used_event) throw GuestError("available ring outside guest RAM");
    std::optional<uint16_t> old = signalled_used_;
    signalled_used_ = next_used_;
    return !old || vring_need_event(*used_event, next_used_, *old);
}

std::string Virtqueue::describe() const {
    if (!ready_) return "not enabled";
    auto avail_idx = memory_->read<uint16_t>(avail_address + offsetof(vring_avail, idx));
    auto avail_flags = memory_->read<uint16_t>(avail_address + offsetof(vring_avail, flags));
    auto used_idx = memory_->read<uint16_t>(used_address + offsetof(vring_used, idx));
    if (!avail_idx || !avail_flags || !used_idx) return "rings outside guest RAM";
    char text[160];
    int n = std::snprintf(text, sizeof(text), "available %u, taken %u, used %u, driver flags %#x", unsigned(*avail_idx),
                          unsigned(last_avail_), unsigned(*used_idx), unsigned(*avail_flags));
    if (event_index) {
        auto used_event = memory_->read<uint16_t>(used_event_address(avail_address, size));
        if (used_event)
            std::snprintf(text + n, sizeof(text) - size_t(n), ", driver's used_event %u", unsigned(*used_event));
    }
    return text;
}

}  // namespace ntc::vmm
