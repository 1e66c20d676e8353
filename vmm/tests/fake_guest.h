#pragma once
// Guest RAM in a vector, and a driver's side of a split virtqueue in it, for
// exercising device code without KVM.
#include <cstring>
#include <vector>

#include "guest_memory.h"
#include "virtqueue.h"

namespace ntc::vmm::testing {

struct FakeRam {
    std::vector<uint8_t> bytes;
    GuestMemory memory;
    explicit FakeRam(size_t size = 1 << 20) : bytes(size), memory({{0, size, bytes.data()}}) {}

    template <typename T>
    void put(uint64_t address, const T& value) {
        std::memcpy(&bytes.at(address), &value, sizeof(T));
    }
    template <typename T>
    T get(uint64_t address) const {
        T value;
        std::memcpy(&value, &bytes.at(address), sizeof(T));
        return value;
    }
};

// A queue with its descriptor table at 0x1000, avail ring at 0x2000, used
// ring at 0x3000, and data buffers from 0x10000 on.
struct FakeQueue {
    static constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
    FakeRam& ram;
    Virtqueue queue;
    uint16_t avail_idx = 0;

    FakeQueue(FakeRam& r, uint16_t size) : ram(r), queue(r.memory) {
        queue.size = size;
        queue.desc_address = kDesc;
        queue.avail_address = kAvail;
        queue.used_address = kUsed;
        queue.enable();
    }

    void descriptor(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        uint64_t at = table + 16ull * index;
        ram.put(at, addr);
        ram.put(at + 8, len);
        ram.put(at + 12, flags);
        ram.put(at + 14, next);
    }
    void descriptor(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        descriptor(kDesc, index, addr, len, flags, next);
    }
    void offer(uint16_t head) {
        ram.put<uint16_t>(kAvail + 4 + 2ull * (avail_idx % queue.size), head);
        avail_idx++;
        ram.put<uint16_t>(kAvail + 2, avail_idx);
    }
    uint16_t used_idx() const { return ram.get<uint16_t>(kUsed + 2); }
    std::pair<uint32_t, uint32_t> used(uint16_t n) const {
        uint64_t at = kUsed + 4 + 8ull * (n % queue.size);
        return {ram.get<uint32_t>(at), ram.get<uint32_t>(at + 4)};
    }
};

}  // namespace ntc::vmm::testing
