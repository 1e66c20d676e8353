#include "console_output.h"

#include <unistd.h>

#include <cerrno>

namespace ntc::vmm {

ConsoleOutput::ConsoleOutput(int fd, size_t capacity) : fd_(fd), capacity_(capacity) {
    writer_ = std::thread([this] { write_loop(); });
}

ConsoleOutput::~ConsoleOutput() {
    {
        std::lock_guard lock(lock_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
}

void ConsoleOutput::put(uint8_t byte) {
    std::lock_guard lock(lock_);
    if (pending_.size() >= capacity_) {
        dropped_++;
        return;
    }
    pending_.push_back(byte);
    if (pending_.size() == 1) wake_.notify_one();
}

void ConsoleOutput::drain() {
    std::unique_lock lock(lock_);
    drained_.wait(lock, [this] { return pending_.empty() && !writing_; });
}

uint64_t ConsoleOutput::dropped() const {
    std::lock_guard lock(lock_);
    return dropped_;
}

void ConsoleOutput::write_loop() {
    std::vector<uint8_t> batch;
    std::unique_lock lock(lock_);
    for (;;) {
        wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;  // stopping, and all is written
        batch.swap(pending_);
        writing_ = true;
        lock.unlock();
        size_t done = 0;
        while (done < batch.size()) {
            ssize_t n = ::write(fd_, batch.data() + done, batch.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // a reader that went away: the output is lost, the guest goes on
            done += size_t(n);
        }
        batch.clear();
        lock.lock();
        writing_ = false;
        if (pending_.empty()) drained_.notify_all();
    }
}

}  // namespace ntc::vmm
