#pragma once
// Guest physical memory as seen by devices.  Every access the guest can steer
// goes through span(), which answers only for ranges wholly inside one RAM
// region, so no guest-supplied address or length reaches host memory outside
// guest RAM.
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace ntc::vmm {

struct MemoryRegion {
    uint64_t guest_address;
    uint64_t size;
    uint8_t* host;
};

class GuestMemory {
public:
    GuestMemory() = default;
    explicit GuestMemory(std::vector<MemoryRegion> regions) : regions_(std::move(regions)) {}

    // Host pointer to [address, address + length), or nullptr when any byte of
    // it is outside guest RAM or the range crosses a region boundary.
    uint8_t* span(uint64_t address, uint64_t length) const {
        for (const auto& r : regions_) {
            if (address < r.guest_address) continue;
            uint64_t offset = address - r.guest_address;
            if (offset > r.size || length > r.size - offset) continue;
            return r.host + offset;
        }
        return nullptr;
    }

    template <typename T>
    std::optional<T> read(uint64_t address) const {
        const uint8_t* p = span(address, sizeof(T));
        if (!p) return std::nullopt;
        T value;
        std::memcpy(&value, p, sizeof(T));
        return value;
    }

    template <typename T>
    bool write(uint64_t address, const T& value) const {
        uint8_t* p = span(address, sizeof(T));
        if (!p) return false;
        std::memcpy(p, &value, sizeof(T));
        return true;
    }

    const std::vector<MemoryRegion>& regions() const { return regions_; }

private:
    std::vector<MemoryRegion> regions_;
};

}  // namespace ntc::vmm
