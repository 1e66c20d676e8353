#pragma once
// ntc-receive: applies checkpoint streams (ntc/checkpoint_stream.h) to a copy
// of disk 2, so that the copy is never left half-applied looking resumable,
// and reports on a copy.
#include <array>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ntc {

// The steps of applying a stream of changes, after which ReceiveOptions::after_step runs.
enum class ReceiveStep {
    journaled,  // the whole stream is in COPY.receiving, checked and synced
    marked,     // COPY's area page 0 says it is not resumable (after keeping COPY.gen-N)
};

struct ReceiveOptions {
    unsigned keep = 0;      // keep that many earlier generations as COPY.gen-N; 0: none, and none removed
    bool progress = false;  // draw a progress bar on standard error
    // What the user is told on the way: an interrupted receive finished, a
    // full copy kept where there are no reflinks.
    std::function<void(const std::string&)> note = [](const std::string&) {};
    // Runs after each step (for tests: throwing leaves the copy as a crash
    // there would).
    std::function<void(ReceiveStep)> after_step = [](ReceiveStep) {};
};

struct ReceiveResult {
    uint64_t from_generation = 0;  // the copy's before, 0 when there was none
    uint64_t to_generation = 0;    // the copy's now
    bool full = false;             // the copy was made anew from a full stream
    bool nothing_to_do = false;    // the copy was at the stream's generation or later
    uint64_t blocks = 0;           // written into the copy
    double seconds = 0;
};

// ntc-receive COPY: applies the stream read from in_fd.  Holds an exclusive
// flock on COPY throughout.  Before reading the stream, finishes an
// interrupted receive whose journal COPY.receiving is complete and fits
// COPY, and removes any other journal.  A stream of changes is written
// whole to the journal and checked, then COPY is marked not resumable, the
// chunks written (page 0 last restores the checkpoint) and the journal
// removed; a full stream is written to COPY.partial, which replaces COPY
// once it is complete.  Throws ntc::Error, with COPY as it was, for a
// refused, truncated or damaged stream.
ReceiveResult receive_stream(const std::string& copy_path, int in_fd, const ReceiveOptions& opts);

struct PendingReceive {
    uint64_t from_generation = 0, to_generation = 0;  // 0 when the journal is cut short or damaged
    bool applies = false;  // whole, checked and fitting the copy: the next ntc-receive finishes it, else removes it
};

// ntc-receive --status COPY.
struct CopyStatus {
    std::string path;
    bool exists = false;
    // The generation a stream to the copy starts from (ntc-send --since):
    // 0 when it holds no checkpoint to build on, and needs a full stream.
    uint64_t generation = 0;
    std::optional<std::array<uint8_t, 16>> area_id;
    uint64_t time_unix_ns = 0;  // the checkpoint's
    // The oldest generation a copy of this disk can be at for ntc-send
    // --since to bring it up to date (the record's history_since).
    uint64_t history_since = 0;
    bool resumable = false;  // holds a complete checkpoint
    // Its checkpoint's redo journal is not yet in place (ntc.ko is putting
    // it there): ntc-send refuses the disk until it is.
    bool journal_pending = false;
    std::string why_not;  // when not resumable
    std::optional<PendingReceive> pending;
    std::vector<uint64_t> kept;  // generations of COPY.gen-N, oldest first
};

CopyStatus copy_status(const std::string& copy_path);
std::string render_status_text(const CopyStatus& status);
nlohmann::json render_status_json(const CopyStatus& status);

}  // namespace ntc
