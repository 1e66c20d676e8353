#pragma once
// The NTC checkpoint header on disk 2 (disk-layout/ntc_format.h): swap page 0
// with the hibernation signature and NTC's record in its first KiB.
// (A host-side library for the same format is planned in userland/lib; until
// it exists this small reader is ntc-vmm's own.)
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "guest_disk.h"
#include "ntc_format.h"

namespace ntcvmm {

struct Checkpoint {
    unsigned swap_partition;  // number of the partition that holds it
    ntc_record record;
};

// Checks one swap page 0: the checkpoint, or why there is none.
std::variant<ntc_record, std::string> parse_checkpoint_page(std::span<const uint8_t> page);

// Scans the disk's partitions for a valid checkpoint; throws UserError
// saying why when there is none.
Checkpoint find_checkpoint(const std::string& disk, int fd, const std::vector<Partition>& partitions);

uint32_t record_crc32(const ntc_record& record);

}  // namespace ntcvmm
