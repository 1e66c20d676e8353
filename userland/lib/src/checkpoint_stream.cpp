#include "ntc/checkpoint_stream.h"

#include "ntc/error.h"
#include "ntc/swap_area.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace ntc {
namespace {

template <typename T>
std::span<const uint8_t> bytes_of(const T& value) {
    return {reinterpret_cast<const uint8_t*>(&value), sizeof value};
}

template <typename T>
std::span<uint8_t> bytes_of(T& value) {
    return {reinterpret_cast<uint8_t*>(&value), sizeof value};
}

uint32_t header_crc32(ntc_stream_header header) {
    header.header_crc32 = 0;
    return crc32_update(0, bytes_of(header));
}

uint32_t end_crc32(ntc_stream_end end) {
    end.end_crc32 = 0;
    return crc32_update(0, bytes_of(end));
}

uint64_t disk_blocks(const ntc_stream_header& h) { return (h.disk_bytes + NTC_PAGE_SIZE - 1) / NTC_PAGE_SIZE; }

// What is wrong with a header whose magic and version are right; empty
// when it holds together.
std::string header_fault(const ntc_stream_header& h) {
    if (h.header_crc32 != header_crc32(h)) return "its header is damaged (CRC mismatch)";
    if (h.flags & ~NTC_STREAM_FULL) return "its header has flags this ntc-receive does not know";
    if (h.disk_bytes == 0 || h.area_offset % NTC_PAGE_SIZE || h.area_offset + NTC_PAGE_SIZE > h.disk_bytes)
        return "its header places the snapshot area outside the disk";
    bool full = h.flags & NTC_STREAM_FULL;
    if (h.to_generation == 0 || h.from_generation > h.to_generation || (full && h.from_generation != 0) ||
        (h.from_generation == h.to_generation && h.blocks != 0) || h.blocks > disk_blocks(h))
        return "its header's generations and block count are inconsistent";
    return {};
}

}  // namespace

StreamWriter::StreamWriter(int fd, std::string name, ntc_stream_header header) : fd_(fd), name_(std::move(name)) {
    std::memcpy(header.magic, NTC_STREAM_MAGIC, sizeof header.magic);
    header.version = NTC_STREAM_VERSION;
    header.header_crc32 = header_crc32(header);
    write(bytes_of(header), false);
}

void StreamWriter::write_chunk(uint64_t first_block, std::span<const uint8_t> data) {
    ntc_stream_chunk chunk{first_block, static_cast<uint32_t>(data.size() / NTC_PAGE_SIZE), crc32_update(0, data)};
    write(bytes_of(chunk), true);
    write(data, true);
    chunks_++;
    blocks_ += chunk.blocks;
}

void StreamWriter::finish() {
    write(bytes_of(ntc_stream_chunk{}), true);
    ntc_stream_end end{};
    std::memcpy(end.magic, NTC_STREAM_END_MAGIC, sizeof end.magic);
    end.chunks = chunks_;
    end.blocks = blocks_;
    end.stream_crc32 = crc_;
    end.end_crc32 = end_crc32(end);
    write(bytes_of(end), false);
}

void StreamWriter::write(std::span<const uint8_t> bytes, bool counted) {
    if (counted) crc_ = crc32_update(crc_, bytes);
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EPIPE)
            throw Error("cannot write " + name_ + ": its reader closed it (ntc-receive's message says why)");
        if (n <= 0) throw_errno("cannot write " + name_);
        done += static_cast<size_t>(n);
    }
}

StreamReader::StreamReader(int fd, std::string name, const ntc_stream_header& header)
    : fd_(fd), name_(std::move(name)), header_(header) {}

std::optional<StreamReader> StreamReader::open(int fd, const std::string& name) {
    StreamReader reader(fd, name, {});
    if (!reader.read_exact(bytes_of(reader.header_), true)) return std::nullopt;
    const ntc_stream_header& h = reader.header_;
    if (std::memcmp(h.magic, NTC_STREAM_MAGIC, sizeof h.magic) != 0)
        throw Error(name + " is not a checkpoint stream of ntc-send");
    if (h.version != NTC_STREAM_VERSION)
        throw Error(name + " is a checkpoint stream of version " + std::to_string(h.version) +
                    ", this ntc-receive reads version " + std::to_string(NTC_STREAM_VERSION) +
                    "; use the same version of NTC on both hosts");
    if (std::string fault = header_fault(h); !fault.empty()) reader.damaged(fault);
    return reader;
}

bool StreamReader::read_exact(std::span<uint8_t> bytes, bool end_allowed) {
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::read(fd_, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("cannot read " + name_);
        if (n == 0 && done == 0 && end_allowed) return false;
        if (n == 0)
            throw Error(name_ + " ends early, after " + std::to_string(offset_ + done) +
                        " bytes: ntc-send stopped (its message says why) or the connection broke");
        done += static_cast<size_t>(n);
    }
    offset_ += done;
    return true;
}

void StreamReader::damaged(const std::string& what) const {
    throw Error(name_ + " is damaged: " + what + " (at byte " + std::to_string(offset_) + ")");
}

std::optional<StreamChunk> StreamReader::next() {
    if (ended_) return std::nullopt;
    ntc_stream_chunk chunk;
    read_exact(bytes_of(chunk), false);
    crc_ = crc32_update(crc_, bytes_of(chunk));
    const std::string which = "chunk " + std::to_string(chunks_ + 1);
    if (chunk.blocks == 0) {
        if (chunk.first_block != 0 || chunk.data_crc32 != 0) damaged("the terminating chunk is not empty");
        read_end();
        return std::nullopt;
    }
    const uint64_t page0_block = header_.area_offset / NTC_PAGE_SIZE;
    if (page0_read_) damaged(which + " follows the snapshot area's page 0, which comes last");
    if (chunk.blocks > NTC_STREAM_MAX_CHUNK_BLOCKS || chunk.first_block >= disk_blocks(header_) ||
        chunk.blocks > disk_blocks(header_) - chunk.first_block || blocks_ + chunk.blocks > header_.blocks)
        damaged(which + " holds blocks " + std::to_string(chunk.first_block) + "+" + std::to_string(chunk.blocks) +
                ", outside the disk or beyond the header's count");
    if (chunk.first_block <= page0_block && page0_block < chunk.first_block + chunk.blocks) {
        if (chunk.blocks != 1) damaged(which + " holds the snapshot area's page 0 among other blocks");
        page0_read_ = true;
    }
    data_.resize(uint64_t{chunk.blocks} * NTC_PAGE_SIZE);
    read_exact(data_, false);
    if (crc32_update(0, data_) != chunk.data_crc32) damaged(which + "'s data does not match its CRC");
    crc_ = crc32_update(crc_, data_);
    chunks_++;
    blocks_ += chunk.blocks;
    return StreamChunk{chunk.first_block, data_};
}

void StreamReader::read_end() {
    ntc_stream_end end;
    read_exact(bytes_of(end), false);
    if (std::memcmp(end.magic, NTC_STREAM_END_MAGIC, sizeof end.magic) != 0 || end.end_crc32 != end_crc32(end))
        damaged("its end is damaged");
    if (end.chunks != chunks_ || end.blocks != blocks_ || blocks_ != header_.blocks)
        damaged("it holds " + std::to_string(chunks_) + " chunks of " + std::to_string(blocks_) +
                " blocks, its end says " + std::to_string(end.chunks) + " of " + std::to_string(end.blocks) +
                ", its header " + std::to_string(header_.blocks) + " blocks");
    if (end.stream_crc32 != crc_) damaged("its chunks do not match the end's CRC");
    if (header_.from_generation < header_.to_generation && !page0_read_)
        damaged("it does not end with the snapshot area's page 0");
    uint8_t extra;
    if (read_exact({&extra, 1}, true)) damaged("bytes follow its end");
    ended_ = true;
}

void drain(int fd) {
    std::vector<uint8_t> buffer(1 << 16);
    for (;;) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
    }
}

}  // namespace ntc
