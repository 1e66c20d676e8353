#pragma once
#include "ntc/chunk_writer.h"
#include "ntc/disk_file.h"
#include "ntc/partition_table.h"

#include <functional>
#include <optional>
#include <span>
#include <vector>

namespace ntc {

// Whether every byte is zero: a block a sparse copy need not write or send.
bool all_zero(std::span<const uint8_t> bytes);

// The next stretch of a regular file at or after pos that may hold data
// (SEEK_DATA), clipped to end; nothing when the rest is a hole.  A block
// device, or a file system without SEEK_DATA, is data all through.
std::optional<Extent> next_data(const DiskFile& f, uint64_t pos, uint64_t end);

// Copies byte ranges between two disks at the same offsets: this thread
// reads and picks the blocks to write, a ChunkWriter writes them.  Memory
// stays bounded whatever the disk size (a few 1 MiB buffers).
class BlockCopier {
public:
    enum class Target {
        fresh,      // all holes: zeros need not be written
        overwrite,  // unknown contents (block device): write every byte
        update,     // an earlier copy: write only the 4 KiB blocks that differ
    };
    struct Stats {
        uint64_t written = 0;  // bytes written to the target
        uint64_t skipped = 0;  // bytes in ranges not written (zeros, equal)
    };

    // With flush_later, writeback of what is written starts early, so that
    // the caller's flush of dst finds little left to write.
    BlockCopier(const DiskFile& src, const DiskFile& dst, Target target, bool flush_later,
                std::function<void(uint64_t)> progress);
    // Throws a write error of an earlier range, if there was one.
    void copy(Extent range);
    // Waits until everything is written; throws a write error.
    Stats finish();

private:
    void copy_data(Extent range);
    bool clone_extent(Extent range);
    void copy_hole(Extent range);
    void submit_changed_blocks(ChunkWriter::Chunk& chunk, uint64_t offset, size_t length);

    const DiskFile& src_;
    const DiskFile& dst_;
    Target target_;
    std::function<void(uint64_t)> progress_;
    bool reflink_ok_;
    std::vector<uint8_t> dbuf_;
    uint64_t cloned_ = 0, skipped_ = 0;
    ChunkWriter writer_;  // last: its thread stops before the rest goes
};

// The first offset in [range) where the two disks differ, or nothing.
std::optional<uint64_t> first_difference(const DiskFile& a, const DiskFile& b, Extent range);

}  // namespace ntc
