#pragma once
#include "ntc/disk_file.hpp"
#include "ntc/partition_table.hpp"

#include <functional>
#include <optional>
#include <vector>

namespace ntc {

// Copies byte ranges between two disks at the same offsets, with bounded
// memory (two 1 MiB buffers) whatever the disk size.
class BlockCopier {
public:
	enum class Target {
		fresh,		// all holes: zeros need not be written
		overwrite,	// unknown contents (block device): write every byte
		update,		// an earlier copy: write only the 4 KiB blocks that differ
	};
	struct Stats {
		uint64_t written = 0;	// bytes written to the target
		uint64_t skipped = 0;	// bytes in ranges not written (zeros, equal)
	};

	// With flush_later, writeback of what is written starts early, so that
	// the caller's flush of dst finds little left to write.
	BlockCopier(const DiskFile &src, const DiskFile &dst, Target target, bool flush_later,
		    std::function<void(uint64_t)> progress);
	void copy(Extent range);
	const Stats &stats() const { return stats_; }

private:
	void copy_data(Extent range);
	bool clone_extent(Extent range);
	void preallocate(uint64_t offset, size_t length);
	void start_writeback(uint64_t just_written);
	void copy_hole(Extent range);
	void write_changed_blocks(uint64_t offset, size_t length);

	const DiskFile &src_;
	const DiskFile &dst_;
	Target target_;
	bool flush_later_;
	std::function<void(uint64_t)> progress_;
	bool reflink_ok_;
	bool preallocate_;
	uint64_t unsynced_ = 0;
	std::vector<uint8_t> sbuf_, dbuf_;
	Stats stats_;
};

// The first offset in [range) where the two disks differ, or nothing.
std::optional<uint64_t> first_difference(const DiskFile &a, const DiskFile &b, Extent range);

} // namespace ntc
