#include "e820.h"

#include <algorithm>
#include <cstring>
#include <ntc/swap_area.h>

#include "layout.h"

namespace ntc::vmm {

RamSplit split_ram(uint64_t ram_bytes) {
    uint64_t low = std::min(ram_bytes, layout::kLowRamLimit);
    return {low, ram_bytes - low};
}

std::vector<E820Entry> e820_map(uint64_t ram_bytes) {
    auto [low, high] = split_ram(ram_bytes);
    std::vector<E820Entry> map = {
        {0, layout::kEbda, E820Type::Ram},
        {layout::kEbda, 0xa0000 - layout::kEbda, E820Type::Reserved},
        {layout::kAcpiTables, layout::kAcpiTablesEnd - layout::kAcpiTables, E820Type::Reserved},
        {layout::kKernelLoad, low - layout::kKernelLoad, E820Type::Ram},
    };
    if (high) map.push_back({layout::kHighRamStart, high, E820Type::Ram});
    return map;
}

uint32_t e820_checksum(const std::vector<E820Entry>& map) {
    std::vector<uint8_t> table(4 + 20 * map.size());
    uint32_t count = uint32_t(map.size());
    std::memcpy(table.data(), &count, 4);
    for (size_t i = 0; i < map.size(); i++) {
        uint8_t* entry = table.data() + 4 + 20 * i;
        uint32_t type = uint32_t(map[i].type);
        std::memcpy(entry, &map[i].address, 8);
        std::memcpy(entry + 8, &map[i].size, 8);
        std::memcpy(entry + 16, &type, 4);
    }
    return ntc::crc32_update(0, table);
}

}  // namespace ntc::vmm
