#pragma once
// The NTC checkpoint on disk 2 (disk-layout/ntc_format.h), as ntc-vmm resume
// needs it.  Page 0 of a swap partition is classified by the ntcdisk library,
// the same code ntc-info uses; this adds what resuming needs on top.
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "ntc_format.h"

namespace ntc::vmm {

struct Checkpoint {
    unsigned swap_partition;  // number of the partition that holds it
    uint64_t partition_offset, partition_bytes;
    ntc_record record;
    uint64_t disk_bytes;  // size of the disk holding it
};

// Checks one swap page 0: the checkpoint's record, or why there is none.
std::variant<ntc_record, std::string> parse_checkpoint_page(std::span<const uint8_t, NTC_PAGE_SIZE> page);

// Scans the disk's partitions for a valid checkpoint; throws ntc::Error
// saying why when there is none.
Checkpoint find_checkpoint(const std::string& disk);

}  // namespace ntc::vmm
