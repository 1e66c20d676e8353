#include "ntc/block_copier.hpp"

#include "ntc/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <optional>
#include <sys/ioctl.h>
#include <unistd.h>

namespace ntc {
namespace {

// 1 MiB: a quarter faster than 128 KiB into ext4 with a warm page cache.
constexpr size_t chunk_size = 1 << 20;
// Writeback is started every this many bytes, so that a final fsync has
// little left to wait for.
constexpr uint64_t writeback_step = 32 << 20;
constexpr size_t block = 4096;

bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// Next data segment of a regular file at or after pos (SEEK_DATA), clipped
// to end; nothing when the rest is a hole.
std::optional<Extent> next_data(const DiskFile &f, uint64_t pos, uint64_t end)
{
	if (!S_ISREG(f.stat().st_mode))
		return Extent{pos, end - pos};
	off_t data = ::lseek(f.fd(), static_cast<off_t>(pos), SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO)
			return std::nullopt;
		return Extent{pos, end - pos};	// no SEEK_DATA: treat all as data
	}
	if (static_cast<uint64_t>(data) >= end)
		return std::nullopt;
	off_t hole = ::lseek(f.fd(), data, SEEK_HOLE);
	uint64_t stop = hole < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(hole), end);
	return Extent{static_cast<uint64_t>(data), stop - static_cast<uint64_t>(data)};
}

} // namespace

BlockCopier::BlockCopier(const DiskFile &src, const DiskFile &dst, Target target, bool flush_later,
			 std::function<void(uint64_t)> progress)
	: src_(src), dst_(dst), target_(target), flush_later_(flush_later), progress_(std::move(progress)),
	  reflink_ok_(target == Target::fresh && S_ISREG(src.stat().st_mode) &&
		      S_ISREG(dst.stat().st_mode) && src.stat().st_dev == dst.stat().st_dev),
	  preallocate_(target == Target::fresh && S_ISREG(dst.stat().st_mode)),
	  sbuf_(chunk_size), dbuf_(target == Target::update ? chunk_size : 0)
{
}

void BlockCopier::copy(Extent range)
{
	uint64_t pos = range.offset;
	while (pos < range.end()) {
		std::optional<Extent> data = next_data(src_, pos, range.end());
		uint64_t hole_end = data ? data->offset : range.end();
		if (hole_end > pos)
			copy_hole({pos, hole_end - pos});
		if (!data)
			break;
		copy_data(*data);
		pos = data->end();
	}
}

void BlockCopier::copy_hole(Extent range)
{
	// A hole reads as zeros: a fresh target already holds them.
	if (target_ == Target::fresh) {
		stats_.skipped += range.length;
		progress_(range.length);
		return;
	}
	for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
		size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
		std::fill_n(sbuf_.begin(), n, 0);
		write_changed_blocks(pos, n);
		progress_(n);
	}
}

// Shares the blocks instead of copying them, where the filesystem can
// (reflinks on XFS, Btrfs).  ext4 cannot; there the copy goes through
// user space, which measured faster than copy_file_range's in-kernel splice
// and, unlike it, leaves zero blocks as holes.
bool BlockCopier::clone_extent(Extent range)
{
	if (range.offset % block || range.length % block)
		return false;
	struct file_clone_range arg {};
	arg.src_fd = src_.fd();
	arg.src_offset = range.offset;
	arg.src_length = range.length;
	arg.dest_offset = range.offset;
	if (::ioctl(dst_.fd(), FICLONERANGE, &arg) != 0) {
		reflink_ok_ = false;
		return false;
	}
	stats_.written += range.length;
	progress_(range.length);
	return true;
}

void BlockCopier::copy_data(Extent range)
{
	if (reflink_ok_ && clone_extent(range))
		return;
	for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
		size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
		src_.read_at(pos, {sbuf_.data(), n});
		write_changed_blocks(pos, n);
		progress_(n);
	}
}

// Writes sbuf_[0, length) at offset, leaving out what the target holds already:
// zero blocks of a fresh target, equal blocks of an updated one.
void BlockCopier::write_changed_blocks(uint64_t offset, size_t length)
{
	if (target_ == Target::overwrite) {
		dst_.write_at(offset, {sbuf_.data(), length});
		stats_.written += length;
		start_writeback(length);
		return;
	}
	if (target_ == Target::update)
		dst_.read_at(offset, {dbuf_.data(), length});
	size_t run_start = 0, run_len = 0;
	auto flush = [&] {
		if (run_len) {
			preallocate(offset + run_start, run_len);
			dst_.write_at(offset + run_start, {sbuf_.data() + run_start, run_len});
			start_writeback(run_len);
		}
		stats_.written += run_len;
		run_len = 0;
	};
	for (size_t at = 0; at < length; at += block) {
		size_t n = std::min(block, length - at);
		bool needed = target_ == Target::fresh
				      ? !all_zero(sbuf_.data() + at, n)
				      : std::memcmp(sbuf_.data() + at, dbuf_.data() + at, n) != 0;
		if (!needed) {
			flush();
			stats_.skipped += n;
			continue;
		}
		if (!run_len)
			run_start = at;
		run_len += n;
	}
	flush();
}

// Allocates a run of a fresh file just before it is written.  ext4 then
// finds the blocks mapped (unwritten) and skips the per-block work of its
// delayed allocation: 1 GiB from a warm page cache copied in 0.16 s instead
// of 0.30 s here.  Runs come in disk order, so the blocks are laid out in
// order as delayed allocation would; only runs, so zeros stay holes.
void BlockCopier::preallocate(uint64_t offset, size_t length)
{
	if (!preallocate_)
		return;
	if (::fallocate(dst_.fd(), 0, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
		return;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		throw_errno("cannot allocate space in " + dst_.path() + " at byte " + std::to_string(offset));
	preallocate_ = false;	// the filesystem has no fallocate: write without
}

void BlockCopier::start_writeback(uint64_t just_written)
{
	unsynced_ += just_written;
	if (!flush_later_ || unsynced_ < writeback_step)
		return;
	unsynced_ = 0;
	// Asynchronous: queues the dirty pages for writing and returns.
	::sync_file_range(dst_.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
}

std::optional<uint64_t> first_difference(const DiskFile &a, const DiskFile &b, Extent range)
{
	std::vector<uint8_t> abuf(chunk_size), bbuf(chunk_size);
	for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
		size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
		a.read_at(pos, {abuf.data(), n});
		b.read_at(pos, {bbuf.data(), n});
		if (std::memcmp(abuf.data(), bbuf.data(), n) == 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (abuf[i] != bbuf[i])
				return pos + i;
	}
	return std::nullopt;
}

} // namespace ntc
