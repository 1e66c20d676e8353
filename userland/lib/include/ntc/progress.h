#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ntc {

// A progress bar on standard error: bytes, rate and time left.  Silent when
// disabled (not a terminal, or --quiet).
class Progress {
public:
    Progress(std::string label, uint64_t total_bytes, bool enabled);
    void advance(uint64_t bytes);
    void finish();
    double elapsed_seconds() const;

private:
    void draw(bool final);

    std::string label_;
    uint64_t total_;
    uint64_t done_ = 0;
    bool enabled_;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string human_bytes(uint64_t bytes);
// "2026-12-04 13:37:36.123 UTC" for a CLOCK_REALTIME time in ns.
std::string utc_time(uint64_t unix_ns);

}  // namespace ntc
