#include "e820.h"

#include <algorithm>

#include "layout.h"

namespace ntcvmm {

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

}  // namespace ntcvmm
