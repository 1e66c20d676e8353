#pragma once
// The guest console's input side, and the VMM's controls that come with it:
// a thread feeds stdin to COM1 and turns the console escape (Ctrl-A x on a
// terminal) and signals into requests to the machine.
#include <termios.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>

#include "kvm.h"

namespace ntc::vmm {

class Serial;

// Puts the terminal into raw mode for the guest and restores it.
class RawTerminal {
public:
    explicit RawTerminal(int fd);
    ~RawTerminal();

private:
    int fd_;
    termios saved_{};
    bool active_ = false;
};

class ConsoleInput {
public:
    // `quit` ends the VM: the escape, SIGTERM, SIGHUP, or SIGINT when stdin
    // is not a terminal.  `report_state` answers SIGQUIT.  Throws ntc::Error.
    ConsoleInput(std::mutex& io_lock, Serial& serial, const std::atomic<bool>& stopping, std::function<void()> quit,
                 std::function<void()> report_state);

    // Sends those signals to run(); SIGPIPE is ignored.
    void catch_signals();
    // When stdin is a terminal: raw mode until this object goes, and a word
    // on how to quit.
    void attach_terminal();

    // The console thread's loop, until the machine stops or stop().
    void run();
    void stop();

private:
    std::mutex& io_lock_;
    Serial& serial_;
    const std::atomic<bool>& stopping_;
    std::function<void()> quit_, report_state_;
    Fd wake_read_, wake_write_;
    std::optional<RawTerminal> terminal_;
};

}  // namespace ntc::vmm
