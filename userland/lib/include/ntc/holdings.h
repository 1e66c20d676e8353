#pragma once
// The holdings of disk 2's checkpoint (disk-layout/ntc_format.h, struct
// ntc_chain_page): the area slots it holds besides page 0, the history's
// pages and their own, which ntc.ko writes at each commit so that the next
// checkpoint knows which slots it may write while it keeps this one
// resumable.  Without them, or with damaged ones, the first checkpoint
// after a boot or a module reload is written in place; this one is as
// resumable either way.  Sound holdings that miss a slot of the image are
// worse: that checkpoint goes by them.
#include "ntc/disk_file.h"
#include "ntc/snapshot_area.h"

#include <cstdint>
#include <span>

namespace ntc {

// The record names holdings: an ntc.ko before them, or one that could not
// write them, leaves their three fields zero.
bool names_holdings(const ntc_record& record);

// Checks the holdings the record of `area` (a complete checkpoint) names:
// the chain (ntc/snapshot_area.h, read_page_chain) and every extent: at
// least one slot, from slot 1 on, inside the area, its pad zero, the
// extents in ascending order neither overlapping nor touching, and none
// holding a page of the chain itself.  Then that they hold every slot in
// image_slots: those the checkpoint's image uses (its swap map's pages and
// the pages they list, as check_image walks them), or none when the image
// was not walked.  Returns the slots the extents hold.  Throws ntc::Error
// naming what is wrong and saying what it costs.
uint64_t check_holdings(const DiskFile& disk, const SnapshotArea& area, std::span<const uint64_t> image_slots = {});

}  // namespace ntc
