#pragma once
#include "ntc/disk_file.h"
#include "ntc/partition_table.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ntc {

// Writes chunks of a copy on a thread of its own, so that reading the next
// chunk (and finding its zero or unchanged blocks) overlaps writing this one.
// Chunks are written in the order they are submitted, from a fixed pool of
// buffers: memory stays bounded whatever the disk size.
class ChunkWriter {
public:
    struct Chunk {
        uint64_t offset = 0;        // disk offset of data[0]
        std::vector<uint8_t> data;  // chunk_bytes long
        std::vector<Extent> runs;   // what to write, relative to offset
    };

    // With preallocate, each run is allocated in dst just before it is
    // written (dst a new regular file).  With flush_later, writeback starts
    // every few MiB, so that the caller's flush finds little left to do.
    ChunkWriter(const DiskFile& dst, size_t chunk_bytes, bool preallocate, bool flush_later);
    ~ChunkWriter();  // drops what is not written yet
    ChunkWriter(const ChunkWriter&) = delete;
    ChunkWriter& operator=(const ChunkWriter&) = delete;

    // A free chunk to fill (runs cleared), waiting for one if need be.
    // Throws the writer's first error, once nothing is being written.
    Chunk& acquire();
    // Hands back a chunk from acquire() for writing, or unused when it has
    // no runs.
    void submit(Chunk& chunk);
    // Waits until every submitted chunk is written; throws as acquire().
    void drain();
    uint64_t bytes_written() const;

private:
    void run();
    void write(const Chunk& chunk);
    void preallocate(uint64_t offset, uint64_t length);
    void start_writeback(uint64_t just_written);
    void throw_failure(std::unique_lock<std::mutex>& lock);

    const DiskFile& dst_;
    bool preallocate_;
    const bool flush_later_;
    uint64_t unsynced_ = 0;  // writer thread only

    mutable std::mutex mutex_;  // guards what follows
    std::condition_variable changed_;
    std::vector<Chunk> chunks_;
    std::deque<Chunk*> free_, queued_;
    bool writing_ = false, stopping_ = false;
    uint64_t written_ = 0;
    std::exception_ptr failure_;
    std::thread thread_;
};

}  // namespace ntc
