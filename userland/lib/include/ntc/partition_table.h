#pragma once
#include "ntc/disk_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace ntc {

struct Partition {
    int number = 0;
    uint64_t offset = 0;    // bytes from the start of the disk
    uint64_t size = 0;      // bytes
    std::string type;       // GPT type GUID, or MBR type as "0x83"
    std::string part_uuid;  // GPT partition GUID (or MBR "id-NN")
    std::string name;       // GPT partition name
    // What libblkid finds inside (empty when nothing is recognised).
    std::string fs_type;
    std::string fs_label;
    std::string fs_uuid;

    uint64_t end() const { return offset + size; }
    bool is_ext() const { return fs_type == "ext2" || fs_type == "ext3" || fs_type == "ext4"; }
};

struct PartitionTable {
    std::string scheme;   // "gpt" or "dos"
    std::string disk_id;  // GPT disk GUID, or MBR signature as "0x1234abcd"
    uint64_t disk_size = 0;
    unsigned sector_size = 512;
    std::vector<Partition> partitions;  // by start offset; no extended containers
};

// Reads and checks the partition table with libblkid: throws ntc::Error when
// there is none, or when partitions overlap or reach past the end of the disk.
PartitionTable read_partition_table(const DiskFile& disk);

// A region of the disk in bytes.
struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
    uint64_t end() const { return offset + length; }
    bool operator==(const Extent&) const = default;
};

// The parts of the disk outside every partition (partition tables, gaps).
std::vector<Extent> space_outside_partitions(const PartitionTable& table);

}  // namespace ntc
