#include "ntc/block_copier.h"

#include "ntc/error.h"

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
constexpr size_t block = 4096;

}  // namespace

std::optional<Extent> next_data(const DiskFile& f, uint64_t pos, uint64_t end) {
    if (!S_ISREG(f.stat().st_mode)) return Extent{pos, end - pos};
    off_t data = ::lseek(f.fd(), static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) return std::nullopt;
        return Extent{pos, end - pos};  // no SEEK_DATA: treat all as data
    }
    if (static_cast<uint64_t>(data) >= end) return std::nullopt;
    off_t hole = ::lseek(f.fd(), data, SEEK_HOLE);
    uint64_t stop = hole < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    return Extent{static_cast<uint64_t>(data), stop - static_cast<uint64_t>(data)};
}

bool all_zero(std::span<const uint8_t> bytes) {
    return bytes.empty() || (bytes[0] == 0 && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

BlockCopier::BlockCopier(const DiskFile& src, const DiskFile& dst, Target target, bool flush_later,
                         std::function<void(uint64_t)> progress)
    : src_(src), dst_(dst), target_(target), progress_(std::move(progress)),
      reflink_ok_(target == Target::fresh && S_ISREG(src.stat().st_mode) && S_ISREG(dst.stat().st_mode) &&
                  src.stat().st_dev == dst.stat().st_dev),
      dbuf_(target == Target::update ? chunk_size : 0),
      writer_(dst, chunk_size, target == Target::fresh && S_ISREG(dst.stat().st_mode), flush_later) {}

void BlockCopier::copy(Extent range) {
    uint64_t pos = range.offset;
    while (pos < range.end()) {
        std::optional<Extent> data = next_data(src_, pos, range.end());
        uint64_t hole_end = data ? data->offset : range.end();
        if (hole_end > pos) copy_hole({pos, hole_end - pos});
        if (!data) break;
        copy_data(*data);
        pos = data->end();
    }
}

BlockCopier::Stats BlockCopier::finish() {
    writer_.drain();
    return {cloned_ + writer_.bytes_written(), skipped_};
}

void BlockCopier::copy_hole(Extent range) {
    // A hole reads as zeros: a fresh target already holds them.
    if (target_ == Target::fresh) {
        skipped_ += range.length;
        progress_(range.length);
        return;
    }
    for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
        ChunkWriter::Chunk& chunk = writer_.acquire();
        std::fill_n(chunk.data.begin(), n, 0);
        submit_changed_blocks(chunk, pos, n);
        progress_(n);
    }
}

// Shares the blocks instead of copying them, where the filesystem can
// (reflinks on XFS, Btrfs).  ext4 cannot; there the copy goes through
// user space, which measured faster than copy_file_range's in-kernel splice
// and, unlike it, leaves zero blocks as holes.
bool BlockCopier::clone_extent(Extent range) {
    if (range.offset % block || range.length % block) return false;
    struct file_clone_range arg {};
    arg.src_fd = src_.fd();
    arg.src_offset = range.offset;
    arg.src_length = range.length;
    arg.dest_offset = range.offset;
    if (::ioctl(dst_.fd(), FICLONERANGE, &arg) != 0) {
        reflink_ok_ = false;
        return false;
    }
    cloned_ += range.length;
    progress_(range.length);
    return true;
}

void BlockCopier::copy_data(Extent range) {
    if (reflink_ok_ && clone_extent(range)) return;
    for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
        ChunkWriter::Chunk& chunk = writer_.acquire();
        src_.read_at(pos, {chunk.data.data(), n});
        submit_changed_blocks(chunk, pos, n);
        progress_(n);
    }
}

// Hands chunk.data[0, length), from offset, to the writer, leaving out what
// the target holds already: zero blocks of a fresh target, equal blocks of
// an updated one.
void BlockCopier::submit_changed_blocks(ChunkWriter::Chunk& chunk, uint64_t offset, size_t length) {
    chunk.offset = offset;
    if (target_ == Target::overwrite) {
        chunk.runs.push_back({0, length});
        writer_.submit(chunk);
        return;
    }
    if (target_ == Target::update) dst_.read_at(offset, {dbuf_.data(), length});
    for (size_t at = 0; at < length; at += block) {
        size_t n = std::min(block, length - at);
        bool needed = target_ == Target::fresh ? !all_zero({chunk.data.data() + at, n})
                                               : std::memcmp(chunk.data.data() + at, dbuf_.data() + at, n) != 0;
        if (!needed) skipped_ += n;
        else if (!chunk.runs.empty() && chunk.runs.back().end() == at) chunk.runs.back().length += n;
        else chunk.runs.push_back({at, n});
    }
    writer_.submit(chunk);
}

std::optional<uint64_t> first_difference(const DiskFile& a, const DiskFile& b, Extent range) {
    std::vector<uint8_t> abuf(chunk_size), bbuf(chunk_size);
    for (uint64_t pos = range.offset; pos < range.end(); pos += chunk_size) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size, range.end() - pos));
        a.read_at(pos, {abuf.data(), n});
        b.read_at(pos, {bbuf.data(), n});
        if (std::memcmp(abuf.data(), bbuf.data(), n) == 0) continue;
        for (size_t i = 0; i < n; i++)
            if (abuf[i] != bbuf[i]) return pos + i;
    }
    return std::nullopt;
}

}  // namespace ntc
