#pragma once
// A disk file's reads, writes and flushes, submitted without waiting and
// completed later, many at once: virtio-blk's requests in flight.
//
// Through io_uring (liburing): one system call hands the kernel every
// request a wake-up found; a read the page cache holds completes within
// that call, and what must wait for the device (a read from the disk, a
// flush) waits in the kernel, not in the device's worker, which goes on
// serving; each completion signals an eventfd that the worker polls beside
// its queues.  A pool of our own threads would do the same with a thread
// switch per request and a queue written by hand.  Trying each request at
// once in the worker first (RWF_NOWAIT) and sending only what would wait to
// the ring measured slower in the lab (benchmarks.md, vmm).
//
// Where io_uring is refused (the kernel.io_uring_disabled sysctl, a
// container's seccomp filter), each operation runs in the calling thread
// when it is queued and completes as if it had been in flight: one at a
// time, the same results.
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kvm.h"

namespace ntc::vmm {

class BlockIo {
public:
    struct Completion {
        uint64_t tag;    // as submitted
        int64_t result;  // bytes transferred (perhaps fewer than asked), 0 for a flush, or -errno
    };

    // `most_in_flight` is how many operations the caller may have submitted
    // and not yet taken back.  `user` names the caller in the one-line notice
    // printed when io_uring is refused.
    BlockIo(unsigned most_in_flight, const std::string& user);
    ~BlockIo();  // waits for the operations in flight
    BlockIo(const BlockIo&) = delete;
    BlockIo& operator=(const BlockIo&) = delete;

    bool asynchronous() const { return ring_ready_; }

    // Queue an operation on the file `fd` (borrowed); `buffers` must stay
    // valid until its completion is taken.  A read or write may transfer
    // less than asked (the first IOV_MAX buffers, the file's end): the
    // caller goes on with the rest.
    void read(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset);
    void write(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset);
    void flush(uint64_t tag, int fd);  // fdatasync
    // Hands the operations queued since the last call to the kernel.
    void submit();

    // Readable while completions from the ring may be waiting;
    // take_completions() takes its count first.  Operations run at once
    // (without a ring) signal nothing: the caller takes their completions
    // after queueing.
    int completion_fd() const { return completion_event_.get(); }
    // The completions that have arrived, without waiting.
    std::vector<Completion> take_completions();
    // Waits until nothing is in flight; returns the completions.
    std::vector<Completion> wait_all();
    unsigned in_flight() const { return in_flight_; }
    // Of those, the ones handed to the ring.
    unsigned in_ring() const { return in_flight_ - unsigned(finished_.size()); }

private:
    void transfer(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset, bool write);
    io_uring_sqe* next_entry();
    void run_now(uint64_t tag, int64_t result);
    void collect(std::vector<Completion>& into);

    io_uring ring_{};
    bool ring_ready_ = false;
    Fd completion_event_;
    std::vector<Completion> finished_;  // without a ring: run at once, not taken yet
    unsigned in_flight_ = 0;
};

}  // namespace ntc::vmm
