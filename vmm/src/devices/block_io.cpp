#include "devices/block_io.h"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ntc/error.h>

#include "eventfd.h"

namespace ntc::vmm {

namespace {

// Submission entries: the requests one wake-up finds usually fit; more wait
// for a submit() that makes room.
constexpr unsigned kSubmissionEntries = 64;

template <typename Call>
int64_t retrying_eintr(Call call) {
    for (;;) {
        ssize_t n = call();
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

unsigned iov_count(const std::vector<iovec>& buffers) { return unsigned(std::min<size_t>(buffers.size(), IOV_MAX)); }

}  // namespace

BlockIo::BlockIo(unsigned most_in_flight, const std::string& user) : completion_event_(make_eventfd(user)) {
    io_uring_params params{};
    // Room for every completion at once, so that none waits in the kernel's
    // overflow list, which only a system call empties.
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = std::max(most_in_flight, kSubmissionEntries);
    int e = io_uring_queue_init_params(kSubmissionEntries, &ring_, &params);
    if (e == 0) {
        e = io_uring_register_eventfd(&ring_, completion_event_.get());
        if (e < 0) io_uring_queue_exit(&ring_);
    }
    if (e < 0) {
        std::fprintf(stderr, "ntc-vmm: %s: io_uring is refused here (%s): serving one request at a time\n",
                     user.c_str(), std::strerror(-e));
        return;
    }
    ring_ready_ = true;
}

BlockIo::~BlockIo() {
    wait_all();
    if (ring_ready_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* BlockIo::next_entry() {
    io_uring_sqe* entry = io_uring_get_sqe(&ring_);
    if (!entry) {
        submit();
        entry = io_uring_get_sqe(&ring_);
    }
    if (!entry) throw ntc::Error("io_uring's submission queue stays full");
    in_flight_++;
    return entry;
}

void BlockIo::run_now(uint64_t tag, int64_t result) {
    in_flight_++;
    finished_.push_back({tag, result});
}

void BlockIo::read(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset) {
    transfer(tag, fd, buffers, offset, false);
}

void BlockIo::write(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset) {
    transfer(tag, fd, buffers, offset, true);
}

void BlockIo::transfer(uint64_t tag, int fd, const std::vector<iovec>& buffers, uint64_t offset, bool write) {
    unsigned count = iov_count(buffers);
    if (!ring_ready_)
        return run_now(tag, retrying_eintr([&] {
                           return write ? ::pwritev(fd, buffers.data(), int(count), off_t(offset))
                                        : ::preadv(fd, buffers.data(), int(count), off_t(offset));
                       }));
    io_uring_sqe* entry = next_entry();
    if (write) io_uring_prep_writev(entry, fd, buffers.data(), count, offset);
    else io_uring_prep_readv(entry, fd, buffers.data(), count, offset);
    io_uring_sqe_set_data64(entry, tag);
}

void BlockIo::flush(uint64_t tag, int fd) {
    if (!ring_ready_) return run_now(tag, retrying_eintr([&] { return ::fdatasync(fd); }));
    io_uring_sqe* entry = next_entry();
    io_uring_prep_fsync(entry, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(entry, tag);
}

void BlockIo::submit() {
    if (!ring_ready_) return;
    for (;;) {
        int n = io_uring_submit(&ring_);
        if (n >= 0) return;
        if (n != -EINTR) throw ntc::Error(std::string("io_uring refused the disk requests: ") + std::strerror(-n));
    }
}

void BlockIo::collect(std::vector<Completion>& into) {
    into.insert(into.end(), finished_.begin(), finished_.end());
    in_flight_ -= unsigned(finished_.size());
    finished_.clear();
    if (!ring_ready_) return;
    io_uring_cqe* entry;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, entry) {
        into.push_back({io_uring_cqe_get_data64(entry), entry->res});
        seen++;
    }
    io_uring_cq_advance(&ring_, seen);
    in_flight_ -= seen;
}

std::vector<BlockIo::Completion> BlockIo::take_completions() {
    take_eventfd(completion_event_.get());
    std::vector<Completion> completions;
    collect(completions);
    return completions;
}

std::vector<BlockIo::Completion> BlockIo::wait_all() {
    std::vector<Completion> completions;
    for (;;) {
        collect(completions);
        if (in_flight_ == 0) break;
        // Submits what is queued too: it would never complete otherwise.
        int e = io_uring_submit_and_wait(&ring_, 1);
        if (e < 0 && e != -EINTR) {
            std::fprintf(stderr, "ntc-vmm: waiting for %u disk requests: %s\n", in_flight_, std::strerror(-e));
            break;
        }
    }
    take_eventfd(completion_event_.get());
    return completions;
}

}  // namespace ntc::vmm
