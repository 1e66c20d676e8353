#pragma once
// Registers kept as the bytes a guest sees (configuration space, the MSI-X
// table, a device's configuration), read and written little-endian in
// accesses of 1 to 8 bytes at any offset.
#include <algorithm>
#include <cstdint>
#include <span>

namespace ntc::vmm {

// The `size` bytes at `offset`; bytes past the end read as zero.
inline uint64_t read_le(std::span<const uint8_t> bytes, uint64_t offset, unsigned size) {
    uint64_t value = 0;
    for (unsigned i = 0; i < std::min(size, 8u) && offset + i < bytes.size(); i++)
        value |= uint64_t(bytes[offset + i]) << (8 * i);
    return value;
}

// Writes the `size` bytes of `value` at `offset`, each byte only in the bits
// `writable(its offset)` gives; bytes past the end are ignored.  Returns how
// many bytes were in range.
template <typename Writable>
unsigned write_le_masked(std::span<uint8_t> bytes, uint64_t offset, unsigned size, uint64_t value, Writable writable) {
    unsigned i = 0;
    for (; i < std::min(size, 8u) && offset + i < bytes.size(); i++) {
        uint64_t at = offset + i;
        uint8_t mask = writable(at);
        bytes[at] = uint8_t((bytes[at] & ~mask) | (uint8_t(value >> (8 * i)) & mask));
    }
    return i;
}

}  // namespace ntc::vmm
