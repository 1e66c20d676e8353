#pragma once
// The checkpoint stream that ntc-send writes and ntc-receive applies
// (disk-layout/ntc_format.h, "Checkpoint stream"): the header, chunks of
// consecutive 4 KiB blocks each with the CRC-32 of its data, a chunk of no
// blocks, and the end.  The end's stream_crc32 is the CRC-32 of every chunk
// header, the terminating one too, and of all the data, in the order they
// are written; its end_crc32 covers its own 32 bytes with that field zero.
#include "ntc_format.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ntc {

// Writes a stream to a descriptor (a pipe, a file), each part as it is
// given.  Errors name the output `name`.
class StreamWriter {
public:
    // Sets the header's magic, version and CRC, and writes it.
    StreamWriter(int fd, std::string name, ntc_stream_header header);
    // A chunk: `data` is whole blocks, 1 to NTC_STREAM_MAX_CHUNK_BLOCKS of them.
    void write_chunk(uint64_t first_block, std::span<const uint8_t> data);
    // The terminating chunk and the end.
    void finish();
    uint64_t chunks() const { return chunks_; }

private:
    void write(std::span<const uint8_t> bytes, bool counted);

    int fd_;
    std::string name_;
    uint64_t chunks_ = 0, blocks_ = 0;
    uint32_t crc_ = 0;
};

struct StreamChunk {
    uint64_t first_block = 0;
    std::span<const uint8_t> data;  // whole blocks
    uint64_t blocks() const { return data.size() / NTC_PAGE_SIZE; }
};

// Reads a stream from a descriptor and checks it as it comes: the header;
// each chunk inside the disk, with its data's CRC, the area's page 0 alone
// in the last one; the end's counts and CRC, and nothing after it.  A chunk
// is handed out before the end is read, so whoever writes it somewhere it
// cannot take back waits for next() to return nothing.  Errors name the
// input `name` and say what is wrong with it.
class StreamReader {
public:
    // Reads and checks the header; nothing when the input is empty.
    static std::optional<StreamReader> open(int fd, const std::string& name);
    const ntc_stream_header& header() const { return header_; }
    bool full() const { return header_.flags & NTC_STREAM_FULL; }
    // The next chunk, valid until the next call; nothing once the end has
    // been read and checked.
    std::optional<StreamChunk> next();

private:
    StreamReader(int fd, std::string name, const ntc_stream_header& header);
    bool read_exact(std::span<uint8_t> bytes, bool end_allowed);
    [[noreturn]] void damaged(const std::string& what) const;
    void read_end();

    int fd_;
    std::string name_;
    ntc_stream_header header_;
    std::vector<uint8_t> data_;
    uint64_t offset_ = 0;  // bytes read so far
    uint64_t chunks_ = 0, blocks_ = 0;
    uint32_t crc_ = 0;
    bool page0_read_ = false, ended_ = false;
};

// Reads a descriptor to its end, so that its writer (ntc-send, over ssh)
// finishes instead of failing on a closed pipe.
void drain(int fd);

}  // namespace ntc
