#pragma once
// The guest console's output side: the UART hands each byte to a buffer and
// a thread of this class writes the buffer to the terminal or the log file,
// so a vCPU writing the UART never waits for a slow or blocked reader.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ntc::vmm {

class ConsoleOutput {
public:
    // `fd` is borrowed.  Past `capacity` unwritten bytes, new ones are
    // dropped and counted (a reader that stopped reading must not take the
    // host's memory).
    explicit ConsoleOutput(int fd, size_t capacity = size_t(4) << 20);
    ~ConsoleOutput();  // writes out what is buffered, then stops
    ConsoleOutput(const ConsoleOutput&) = delete;
    ConsoleOutput& operator=(const ConsoleOutput&) = delete;

    void put(uint8_t byte);
    // Returns once every byte put so far has been written (or dropped).
    void drain();
    uint64_t dropped() const;

private:
    void write_loop();

    int fd_;
    size_t capacity_;
    mutable std::mutex lock_;
    std::condition_variable wake_, drained_;
    std::vector<uint8_t> pending_;
    bool writing_ = false;
    bool stopping_ = false;
    uint64_t dropped_ = 0;
    std::thread writer_;
};

}  // namespace ntc::vmm
