#pragma once
// ntc-send: disk 2's checkpoint as a checkpoint stream (ntc/checkpoint_stream.h),
// whole or the changes since a copy's generation.
#include "ntc/error.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ntc {

// The disk is in the middle of a checkpoint: a later run will succeed
// (ntc-send exits 75, EX_TEMPFAIL).
class CheckpointInProgress : public Error {
public:
    using Error::Error;
};

struct SendOptions {
    // The copy's generation: send only what it lacks.  Nothing or 0 (a copy
    // at generation 0 is an empty file): send every block that is not zero.
    std::optional<uint64_t> since;
    bool progress = false;  // draw a progress bar on standard error
    // Runs after every block but page 0 was read, before page 0 is read
    // again to see whether the disk changed meanwhile (for tests).
    std::function<void()> before_recheck = [] {};
};

struct SendResult {
    uint64_t from_generation = 0, to_generation = 0;
    bool full = false;
    uint64_t blocks = 0;  // in the chunks, page 0 included
    uint64_t chunks = 0;
    double seconds = 0;
};

// Writes the stream of the checkpoint on disk 2 at disk_path to out_fd.  The
// disk is not locked: the VM that writes it holds it while it runs, and
// shipping while it runs is the point.  Page 0 of the snapshot area is read
// first and sent last; when it reads otherwise after the rest was read (a
// new checkpoint began), the stream is left without its end, so that
// ntc-receive refuses it, and CheckpointInProgress is thrown, as when a
// checkpoint is being written at the start.  Every other refusal, before
// anything is written, is an ntc::Error.
SendResult send_checkpoint(const std::string& disk_path, int out_fd, const SendOptions& opts);

}  // namespace ntc
