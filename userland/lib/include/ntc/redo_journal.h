#pragma once
// The redo journal of disk 2's checkpoint (disk-layout/ntc_format.h, struct
// ntc_chain_page): the blocks of the previous checkpoint that ntc.ko wrote
// to free slots of the area instead of in place, which it copies to their
// places after the commit.  Until it has, the record says NTC_RECORD_JOURNAL
// and the restored kernel does the copy before it thaws.
#include "ntc/disk_file.h"
#include "ntc/snapshot_area.h"

#include <string>

namespace ntc {

// The record's flags say the journal it names is not yet applied.
bool journal_pending(const ntc_record& record);

// Throws ntc::Error when the record has a flag that these tools do not know:
// a newer ntc.ko wrote it, meaning something they cannot honour.
void require_known_flags(const std::string& disk_name, const ntc_record& record);

// Checks the journal the record of `area` (a complete checkpoint) names, as
// the restored kernel would apply it: the flags known, without a pending
// journal all its fields zero; with one, the chain (ntc/snapshot_area.h,
// read_page_chain) and every extent: at least one block, its destination
// inside the disk, its slots inside the area, the destinations disjoint from
// each other, from page 0, from the journal's pages and from every extent's
// slots (so that applying it twice gives the same disk), and the blocks
// adding up to the record's count.  Throws ntc::Error naming the damage.
void check_redo_journal(const DiskFile& disk, const SnapshotArea& area);

}  // namespace ntc
