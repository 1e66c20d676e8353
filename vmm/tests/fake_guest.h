#pragma once
// Guest RAM in a vector, a driver's side of a split virtqueue in it, and a
// VM that records what devices ask of KVM, for exercising device code
// without KVM.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "guest_memory.h"
#include "virtqueue.h"
#include "vm_eventfds.h"
#include <ntc/error.h>

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

// KVM on paper: GSIs handed out, irqfds, routes and ioeventfds recorded, so
// a test sees what a device asked for and plays KVM's part: it signals the
// eventfd of an ioeventfd, and reads an irqfd to see whether KVM would have
// injected its GSI.  Refuses what KVM refuses, as Vm does (ntc::Error): a
// second ioeventfd on an address (EEXIST), removing one that is not there
// (ENOENT).
struct RecordingVm : VmEventfds {
    struct Ioeventfd {
        uint64_t address;
        unsigned length;
        int eventfd;
        bool operator==(const Ioeventfd&) const = default;
    };
    uint32_t next_gsi = 24;
    std::map<uint32_t, int> irqfds;                       // GSI -> eventfd
    std::vector<std::pair<uint32_t, MsiMessage>> routes;  // every route_msi(), in order
    std::vector<Ioeventfd> ioeventfds;                    // registered now

    uint32_t add_irqfd(int eventfd) override {
        irqfds[next_gsi] = eventfd;
        return next_gsi++;
    }
    void route_msi(uint32_t gsi, const MsiMessage& message) override { routes.push_back({gsi, message}); }
    void add_ioeventfd(uint64_t address, unsigned length, int eventfd) override {
        for (const auto& e : ioeventfds)
            if (e.address == address) throw ntc::Error("KVM IOEVENTFD failed: File exists");
        ioeventfds.push_back({address, length, eventfd});
    }
    void remove_ioeventfd(uint64_t address, unsigned length, int eventfd) override {
        auto it = std::find(ioeventfds.begin(), ioeventfds.end(), Ioeventfd{address, length, eventfd});
        if (it == ioeventfds.end()) throw ntc::Error("KVM IOEVENTFD (deassign) failed: No such file or directory");
        ioeventfds.erase(it);
    }

    // What KVM does on a guest write of `length` bytes to `address`: signal
    // the eventfd registered there.  False when none is (the write exits).
    bool guest_write(uint64_t address, unsigned length) const {
        for (const auto& e : ioeventfds) {
            if (e.address != address || e.length != length) continue;
            uint64_t one = 1;
            return ::write(e.eventfd, &one, sizeof(one)) == sizeof(one);
        }
        return false;
    }
    // Whether KVM would have injected `gsi` since the last look.
    bool injected(uint32_t gsi) const {
        uint64_t count;
        return ::read(irqfds.at(gsi), &count, sizeof(count)) == sizeof(count);
    }
};

}  // namespace ntc::vmm::testing
