#include "devices/block_io.h"

#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <ntc/error.h>

namespace ntc::vmm {

namespace {

// preadv/pwritev and their io_uring twins take at most IOV_MAX buffers;
// the rest goes as a short transfer would.
int buffer_count(const DiskOp& op) { return int(std::min<size_t>(op.buffers.size(), IOV_MAX)); }

}  // namespace

void DiskOp::advance(uint64_t bytes) {
    offset += bytes;
    auto first = buffers.begin();
    while (first != buffers.end() && bytes >= first->iov_len) {
        bytes -= first->iov_len;
        ++first;
    }
    buffers.erase(buffers.begin(), first);
    if (bytes) {
        buffers.front().iov_base = static_cast<uint8_t*>(buffers.front().iov_base) + bytes;
        buffers.front().iov_len -= bytes;
    }
}

bool DiskOp::done() const {
    return std::all_of(buffers.begin(), buffers.end(), [](const iovec& b) { return b.iov_len == 0; });
}

bool run_synchronously(int fd, DiskOp op) {
    if (op.kind == DiskOp::Kind::flush) return ::fdatasync(fd) == 0;
    while (!op.done()) {
        ssize_t n = op.kind == DiskOp::Kind::write
                        ? ::pwritev(fd, op.buffers.data(), buffer_count(op), off_t(op.offset))
                        : ::preadv(fd, op.buffers.data(), buffer_count(op), off_t(op.offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        op.advance(uint64_t(n));
    }
    return true;
}

DiskRing::DiskRing(unsigned depth) {
    if (int err = io_uring_queue_init(depth, &ring_, 0); err < 0)
        throw ntc::Error("io_uring_queue_init: " + std::string(std::strerror(-err)));
    eventfd_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    int err = eventfd_.get() < 0 ? -errno : io_uring_register_eventfd(&ring_, eventfd_.get());
    if (err < 0) {
        io_uring_queue_exit(&ring_);
        throw ntc::Error("io_uring completion eventfd: " + std::string(std::strerror(-err)));
    }
}

DiskRing::~DiskRing() { io_uring_queue_exit(&ring_); }

bool DiskRing::queue(int fd, const DiskOp& op, uint64_t tag) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {  // the submission queue is full: make room
        submit();
        sqe = io_uring_get_sqe(&ring_);
        if (!sqe) return false;
    }
    switch (op.kind) {
    case DiskOp::Kind::read:
        io_uring_prep_readv(sqe, fd, op.buffers.data(), unsigned(buffer_count(op)), op.offset);
        break;
    case DiskOp::Kind::write:
        io_uring_prep_writev(sqe, fd, op.buffers.data(), unsigned(buffer_count(op)), op.offset);
        break;
    case DiskOp::Kind::flush:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        // The ring runs its operations in any order, and fdatasync makes
        // durable only the writes that reached the page cache before it.
        // DRAIN starts the fsync after everything submitted before it has
        // finished, so every write the guest saw complete before it sent
        // the flush is covered.
        io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
        break;
    }
    io_uring_sqe_set_data64(sqe, tag);
    return true;
}

void DiskRing::submit() {
    int n;
    while ((n = io_uring_submit(&ring_)) == -EINTR) {}
    if (n < 0) throw ntc::Error("io_uring_submit: " + std::string(std::strerror(-n)));
}

std::optional<DiskRing::Completion> DiskRing::next(bool wait) {
    io_uring_cqe* cqe = nullptr;
    int err;
    while (wait && (err = io_uring_submit_and_wait(&ring_, 1)) == -EINTR) {}
    if (wait && err < 0) throw ntc::Error("io_uring: waiting for a disk request: " + std::string(std::strerror(-err)));
    if (io_uring_peek_cqe(&ring_, &cqe) < 0) return std::nullopt;
    Completion c{io_uring_cqe_get_data64(cqe), cqe->res};
    io_uring_cqe_seen(&ring_, cqe);
    return c;
}

}  // namespace ntc::vmm
