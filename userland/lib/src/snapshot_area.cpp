#include "ntc/snapshot_area.h"

#include "ntc/partition_table.h"

#include <cstring>
#include <set>

namespace ntc {
std::optional<SnapshotArea> find_snapshot_area(const DiskFile& disk) {
    for (const Partition& p : read_partition_table(disk).partitions) {
        if (p.is_ext() || p.size < 2 * NTC_PAGE_SIZE) continue;
        SnapshotArea area;
        disk.read_at(p.offset, area.page0);
        area.swap = inspect_swap_area(area.page0);
        if (area.swap.kind == AreaKind::not_swap || !area.swap.record) continue;
        if (p.offset % NTC_PAGE_SIZE)
            throw Error("the snapshot area of " + disk.path() + " (partition " + std::to_string(p.number) +
                        ") starts at byte " + std::to_string(p.offset) +
                        ", not on a 4 KiB boundary; checkpoints are shipped in 4 KiB blocks of the disk");
        area.offset = p.offset;
        area.pages = p.size / NTC_PAGE_SIZE;
        return area;
    }
    return std::nullopt;
}

std::string chain_page_name(uint32_t index, uint64_t slot) {
    return "page " + std::to_string(index + 1) + " at slot " + std::to_string(slot);
}

void read_page_chain(const DiskFile& disk, const SnapshotArea& area, const AreaPageChain& chain,
                     const ChainPageVisitor& visit) {
    if ((chain.first_slot == 0) != (chain.pages == 0))
        throw PageChainDamage("the record names slot " + std::to_string(chain.first_slot) + " and " +
                              std::to_string(chain.pages) + " pages");
    std::set<uint64_t> seen;
    uint32_t crc = 0;
    uint64_t slot = chain.first_slot;
    Page bytes;
    ntc_chain_page page;
    for (uint32_t i = 0; i < chain.pages; i++) {
        if (slot == 0 || slot >= area.pages)
            throw PageChainDamage("page " + std::to_string(i + 1) + " would be at slot " + std::to_string(slot) +
                                  ", outside the area's slots 1.." + std::to_string(area.pages - 1));
        if (!seen.insert(slot).second) throw PageChainDamage("the chain comes back to slot " + std::to_string(slot));
        disk.read_at(area.offset + slot * NTC_PAGE_SIZE, bytes);
        std::memcpy(&page, bytes.data(), sizeof page);
        if (std::memcmp(page.magic, chain.magic, sizeof page.magic) != 0)
            throw PageChainDamage(chain_page_name(i, slot) + " has no " + chain.kind + " magic");
        if (page.count > NTC_CHAIN_PAGE_ENTRIES)
            throw PageChainDamage(chain_page_name(i, slot) + " counts " + std::to_string(page.count) +
                                  " extents, more than " + std::to_string(NTC_CHAIN_PAGE_ENTRIES));
        crc = crc32_update(crc, bytes);
        visit(i, slot, page);
        slot = page.next_slot;
    }
    if (slot != 0)
        throw PageChainDamage("the chain goes on after the record's " + std::to_string(chain.pages) + " pages");
    if (crc != chain.crc32) throw PageChainDamage("its pages do not match the record's CRC");
}

}  // namespace ntc
