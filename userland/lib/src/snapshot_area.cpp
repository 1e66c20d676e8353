#include "ntc/snapshot_area.h"

#include "ntc/error.h"
#include "ntc/partition_table.h"

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

}  // namespace ntc
