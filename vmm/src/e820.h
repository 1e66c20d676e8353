#pragma once
#include <cstdint>
#include <vector>

namespace ntc::vmm {

enum class E820Type : uint32_t { Ram = 1, Reserved = 2 };

struct E820Entry {
    uint64_t address;
    uint64_t size;
    E820Type type;
    bool operator==(const E820Entry&) const = default;
};

// The firmware memory map: a pure function of the RAM size, because a
// resuming kernel compares a CRC of it with the one in the image.
std::vector<E820Entry> e820_map(uint64_t ram_bytes);

// The checksum a hibernation image records of the map it was taken on:
// CRC-32 of the kernel's struct e820_table (a u32 count, then packed 20-byte
// entries), as arch/x86/power/hibernate.c computes it.
uint32_t e820_checksum(const std::vector<E820Entry>& map);

// Where RAM of that size sits in guest-physical space: [0, low) and,
// when there is more than fits below the PCI hole, [4 GiB, 4 GiB + high).
struct RamSplit {
    uint64_t low;
    uint64_t high;
};
RamSplit split_ram(uint64_t ram_bytes);

}  // namespace ntc::vmm
