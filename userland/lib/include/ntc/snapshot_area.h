#pragma once
#include "ntc/disk_file.h"
#include "ntc/swap_area.h"

#include <cstdint>
#include <optional>

namespace ntc {

// The snapshot area of disk 2, or of a copy of it: where it lies and what
// its page 0 says.
struct SnapshotArea {
    uint64_t offset = 0;  // bytes from the start of the disk, a multiple of 4 KiB
    uint64_t pages = 0;   // 4 KiB slots in the partition
    Page page0{};
    SwapArea swap;  // inspect_swap_area(page0)

    // page0's 4 KiB block of the whole disk.
    uint64_t page0_block() const { return offset / NTC_PAGE_SIZE; }
};

// The first partition whose page 0 holds a valid NTC record under a swap,
// area or hibernation signature: a checkpoint, an empty area, one being
// written, or a checkpoint resumed in place (ordinary swap again).  Nothing
// when the disk has none; ntc::Error when the area does not start on a
// 4 KiB boundary of the disk, which ntc-send's blocks need.
std::optional<SnapshotArea> find_snapshot_area(const DiskFile& disk);

}  // namespace ntc
