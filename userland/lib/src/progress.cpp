#include "ntc/progress.h"

#include <cstdio>
#include <ctime>

namespace ntc {

using Clock = std::chrono::steady_clock;

Progress::Progress(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), enabled_(enabled), start_(Clock::now()), last_draw_(start_) {}

double Progress::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void Progress::advance(uint64_t bytes) {
    done_ += bytes;
    if (enabled_ && Clock::now() - last_draw_ > std::chrono::milliseconds(100)) draw(false);
}

void Progress::finish() {
    if (enabled_) {
        draw(true);
        std::fputc('\n', stderr);
    }
}

void Progress::draw(bool final) {
    last_draw_ = Clock::now();
    double secs = elapsed_seconds();
    double rate = secs > 0 ? done_ / secs : 0;
    uint64_t shown = final ? total_ : std::min(done_, total_);
    int width = 30;
    int filled = total_ ? static_cast<int>(width * shown / total_) : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    double left = rate > 0 && total_ > shown ? (total_ - shown) / rate : 0;
    std::fprintf(stderr, "\r%s [%s] %s / %s  %.1f MB/s  %d:%02d left ", label_.c_str(), bar.c_str(),
                 human_bytes(shown).c_str(), human_bytes(total_).c_str(), rate / 1e6, static_cast<int>(left) / 60,
                 static_cast<int>(left) % 60);
    std::fflush(stderr);
}

std::string human_bytes(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

std::string utc_time(uint64_t unix_ns) {
    time_t secs = static_cast<time_t>(unix_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    char out[80];
    std::snprintf(out, sizeof out, "%s.%03u UTC", buf, static_cast<unsigned>(unix_ns / 1000000u % 1000u));
    return out;
}

}  // namespace ntc
