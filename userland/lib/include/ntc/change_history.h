#pragma once
// The change history ntc.ko keeps in disk 2's snapshot area
// (disk-layout/ntc_format.h, struct ntc_chain_page): which blocks of the
// disk each recent checkpoint wrote, so that ntc-send reads only those.
#include "ntc/disk_file.h"
#include "ntc/snapshot_area.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ntc {

// Consecutive 4 KiB blocks of a whole disk.
struct BlockRun {
    uint64_t first = 0;
    uint64_t count = 0;
    uint64_t end() const { return first + count; }
    bool operator==(const BlockRun&) const = default;
};

struct ChangeHistory {
    uint64_t since = 0;                 // the record's history_since
    uint64_t generation = 0;            // the record's generation
    std::vector<uint64_t> page_blocks;  // the chain's pages, as blocks of the disk, in chain order
    std::vector<ntc_history_extent> extents;
};

// Throws ntc::Error when the record carries no area id or generation: the
// checkpoint was written by an ntc.ko without change history, and there is
// no generation for a copy to be at.
void require_change_history(const std::string& disk_name, const ntc_record& record);

// Reads the chain that the record of `area` (a complete checkpoint) names
// and checks all of it: magic and extent count of each page, slots inside
// the area and none twice, the record's page count and CRC, every extent
// inside the disk and of a generation the history covers.  Reads the chain
// pages only.  Throws ntc::Error naming the damage.
ChangeHistory read_change_history(const DiskFile& disk, const SnapshotArea& area);

// What a copy of the disk at generation `since` lacks of the disk at
// history.generation, in order and disjoint: the blocks of the extents of
// later generations and the chain's pages, without page 0 of the area
// (page0_block), which is sent last.  Throws ntc::Error unless
// history.since <= since < history.generation.
std::vector<BlockRun> blocks_changed_since(const ChangeHistory& history, uint64_t since, uint64_t page0_block);

}  // namespace ntc
