#pragma once
#include "ntc/ext_fs.h"
#include "ntc/partition_table.h"
#include "ntc/swap_area.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ntc {

struct CloneOptions {
    bool force = false;     // DST may be an existing file, which is replaced
    bool update = false;    // DST is an earlier clone: write only what differs
    bool strict = false;    // a damaged ext filesystem is an error, not a raw copy
    bool progress = false;  // draw a progress bar on standard error
    std::function<void(const std::string&)> warn = [](const std::string&) {};
};

struct CloneResult {
    uint64_t bytes_written = 0;
    uint64_t bytes_skipped = 0;  // in the disk but not written: unused, zero, equal
    double seconds = 0;
};

// How each part of the source disk is cloned.
struct ClonePlan {
    enum class How { raw, ext_used_blocks, snapshot_area };
    struct Part {
        How how;
        Extent extent;   // bytes on the disk
        int partno = 0;  // 0 for space outside partitions
        std::string fs_type;
        std::shared_ptr<const ExtFs> fs;  // open, for ext_used_blocks
        std::optional<Page> swap_header;  // the source's page 0, for snapshot_area
    };
    PartitionTable table;
    std::vector<Part> parts;  // in disk order, covering the whole disk
    // The source's ext superblocks, for the snapshot areas' records: they let
    // the first checkpoint onto the clone skip comparing those partitions.
    std::vector<ntc_origin_partition> origin;
};

// Reads the source's partition table and decides how each part is copied.
// Throws ntc::Error for an unusable source; warns (or throws, strict) for a
// damaged ext filesystem, which is then copied raw.
ClonePlan plan_clone(const DiskFile& src, const CloneOptions& opts);

// ntc-clone SRC DST.  Every refusal happens before DST is touched.  A SRC
// that is an instance's overlay (ntc/overlay.h) becomes a plain disk image:
// the instance's disk as it sees it, to boot or to carry on (no snapshot
// areas are made; ntc-clone that image to make its disk 2).  Each
// snapshot area of DST is first made an unfinished clone's (no signature)
// and gets its marker last, so a clone that fails or is killed part-way
// never looks finished, and --update finishes it; a DST the clone created
// is removed when the clone fails.
CloneResult clone_disk(const std::string& src_path, const std::string& dst_path, const CloneOptions& opts);

struct VerifyResult {
    std::vector<std::string> differences;  // the first ones found, in disk order
    uint64_t bytes_compared = 0;
    uint64_t inodes_compared = 0;
    bool ok() const { return differences.empty(); }
};

// Proves DST is a clone of SRC: same partition table, same bytes outside
// partitions and in raw-copied partitions, every block used by each ext
// filesystem identical, inode-by-inode agreement, and a snapshot area with
// the source swap's UUID and label.  Stops after max_differences.
VerifyResult verify_clone(const std::string& src_path, const std::string& dst_path, unsigned max_differences = 10);

}  // namespace ntc
