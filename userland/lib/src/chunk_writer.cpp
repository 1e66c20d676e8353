#include "ntc/chunk_writer.h"

#include "ntc/error.h"

#include <cerrno>
#include <fcntl.h>

namespace ntc {
namespace {

// Enough for the reader to be a chunk or two ahead while one is written.
constexpr size_t pool_size = 4;
// Writeback is started every this many bytes.
constexpr uint64_t writeback_step = 32 << 20;

}  // namespace

ChunkWriter::ChunkWriter(const DiskFile& dst, size_t chunk_bytes, bool preallocate, bool flush_later)
    : dst_(dst), preallocate_(preallocate), flush_later_(flush_later), chunks_(pool_size) {
    for (Chunk& c : chunks_) {
        c.data.resize(chunk_bytes);
        free_.push_back(&c);
    }
    thread_ = std::thread([this] { run(); });
}

ChunkWriter::~ChunkWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void ChunkWriter::throw_failure(std::unique_lock<std::mutex>& lock) {
    changed_.wait(lock, [&] { return !writing_; });
    std::rethrow_exception(failure_);
}

ChunkWriter::Chunk& ChunkWriter::acquire() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return failure_ || !free_.empty(); });
    if (failure_) throw_failure(lock);
    Chunk* c = free_.front();
    free_.pop_front();
    c->runs.clear();
    return *c;
}

void ChunkWriter::submit(Chunk& chunk) {
    {
        std::lock_guard lock(mutex_);
        if (chunk.runs.empty()) free_.push_back(&chunk);
        else queued_.push_back(&chunk);
    }
    changed_.notify_all();
}

void ChunkWriter::drain() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return failure_ || (queued_.empty() && !writing_); });
    if (failure_) throw_failure(lock);
}

uint64_t ChunkWriter::bytes_written() const {
    std::lock_guard lock(mutex_);
    return written_;
}

void ChunkWriter::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] { return stopping_ || (!queued_.empty() && !failure_); });
        if (stopping_) return;
        Chunk* c = queued_.front();
        queued_.pop_front();
        writing_ = true;
        lock.unlock();
        std::exception_ptr error;
        try {
            write(*c);
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        writing_ = false;
        if (error) failure_ = error;
        free_.push_back(c);
        changed_.notify_all();
    }
}

void ChunkWriter::write(const Chunk& chunk) {
    for (Extent run : chunk.runs) {
        uint64_t at = chunk.offset + run.offset;
        preallocate(at, run.length);
        dst_.write_at(at, {chunk.data.data() + run.offset, static_cast<size_t>(run.length)});
        {
            std::lock_guard lock(mutex_);
            written_ += run.length;
        }
        start_writeback(run.length);
    }
}

// With the blocks allocated (unwritten), ext4 skips the per-block work of its
// delayed allocation: 1 GiB from a warm page cache copied in 0.16 s instead
// of 0.30 s here.  Runs come in disk order, so the blocks are laid out in
// order as delayed allocation would lay them; only runs, so zeros stay holes.
void ChunkWriter::preallocate(uint64_t offset, uint64_t length) {
    if (!preallocate_) return;
    if (::fallocate(dst_.fd(), 0, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        throw_errno("cannot allocate space in " + dst_.path() + " at byte " + std::to_string(offset));
    preallocate_ = false;  // the filesystem has no fallocate: write without
}

void ChunkWriter::start_writeback(uint64_t just_written) {
    unsynced_ += just_written;
    if (!flush_later_ || unsynced_ < writeback_step) return;
    unsynced_ = 0;
    // Asynchronous: queues the dirty pages for writing and returns.
    ::sync_file_range(dst_.fd(), 0, 0, SYNC_FILE_RANGE_WRITE);
}

}  // namespace ntc
