#pragma once
// A disk operation of a virtio-blk request and the two ways to run one:
// synchronously on the calling thread, or through an io_uring, which keeps
// many in flight for one thread and says on an eventfd when they finish.
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "kvm.h"

namespace ntc::vmm {

struct DiskOp {
    enum class Kind { read, write, flush };
    Kind kind;
    std::vector<iovec> buffers;  // guest memory; what is still to transfer
    uint64_t offset = 0;         // on the disk, of buffers' first byte

    // `bytes` were transferred: drops them from the front of `buffers`.
    void advance(uint64_t bytes);
    bool done() const;
};

// Runs `op` on `fd` to the end, short transfers resumed; false on an error
// or the end of the file.
bool run_synchronously(int fd, DiskOp op);

class DiskRing {
public:
    struct Completion {
        uint64_t tag;
        int result;  // bytes transferred, or -errno
    };

    // Throws ntc::Error when the kernel refuses a ring (too old, seccomp,
    // RLIMIT_MEMLOCK before 5.12).
    explicit DiskRing(unsigned depth);
    ~DiskRing();
    DiskRing(const DiskRing&) = delete;
    DiskRing& operator=(const DiskRing&) = delete;

    // Signalled whenever an operation finishes.
    int eventfd() const { return eventfd_.get(); }
    // Queues the next step of `op` on `fd` under `tag`, which its
    // completion carries; `op.buffers` must stay put until then.  False
    // when the ring has no room even after a submit().
    bool queue(int fd, const DiskOp& op, uint64_t tag);
    // Hands what is queued to the kernel.  Throws ntc::Error; what stays
    // queued goes with the next submit() or next(true).
    void submit();
    // A finished operation, nullopt when none has finished yet; with
    // `wait`, submits what is queued and waits for one.  Throws ntc::Error.
    std::optional<Completion> next(bool wait);

private:
    io_uring ring_;
    Fd eventfd_;
};

}  // namespace ntc::vmm
