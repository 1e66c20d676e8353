#include "console_input.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <ntc/error.h>
#include <vector>

#include "devices/serial.h"

namespace ntc::vmm {

namespace {

constexpr uint8_t kEscape = 0x01;  // Ctrl-A, then 'x' quits

int signal_pipe[2] = {-1, -1};

// SIGQUIT asks for a state report (a hung guest's evidence); the others end the VM.
constexpr char kSignalReport = 'r', kSignalQuit = 'q';

void on_signal(int signal) {
    char c = signal == SIGQUIT ? kSignalReport : kSignalQuit;
    [[maybe_unused]] ssize_t n = ::write(signal_pipe[1], &c, 1);
}

}  // namespace

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
}

RawTerminal::~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

ConsoleInput::ConsoleInput(std::mutex& io_lock, Serial& serial, const std::atomic<bool>& stopping,
                           std::function<void()> quit, std::function<void()> report_state)
    : io_lock_(io_lock), serial_(serial), stopping_(stopping), quit_(std::move(quit)),
      report_state_(std::move(report_state)) {
    int wake[2] = {-1, -1};
    bool made = ::pipe2(wake, O_CLOEXEC) == 0;
    wake_read_ = Fd(wake[0]);
    wake_write_ = Fd(wake[1]);
    if (!made || (signal_pipe[0] < 0 && ::pipe2(signal_pipe, O_CLOEXEC) != 0)) ntc::throw_errno("pipe");
}

void ConsoleInput::catch_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    ::sigaction(SIGQUIT, &sa, nullptr);
    // A console reader that goes away must not kill the VM with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    if (!::isatty(STDIN_FILENO)) ::sigaction(SIGINT, &sa, nullptr);
}

void ConsoleInput::attach_terminal() {
    if (!::isatty(STDIN_FILENO)) return;
    terminal_.emplace(STDIN_FILENO);
    std::fprintf(stderr, "ntc-vmm: console attached; Ctrl-A x quits\r\n");
}

void ConsoleInput::run() {
    bool tty = ::isatty(STDIN_FILENO);
    bool input_open = true;
    bool escape_pending = false;
    std::vector<uint8_t> pending;
    while (!stopping_) {
        // A closed input is left out altogether: a hung-up pipe would
        // otherwise report POLLHUP forever.
        pollfd fds[3] = {{wake_read_.get(), POLLIN, 0},
                         {signal_pipe[0], POLLIN, 0},
                         {input_open ? STDIN_FILENO : -1, short(pending.empty() ? POLLIN : 0), 0}};
        // Bytes the UART's FIFO could not take yet are retried shortly.
        int r = ::poll(fds, 3, pending.empty() ? -1 : 2);
        if (r < 0 && errno != EINTR) break;
        if (fds[0].revents) break;
        if (fds[1].revents) {
            char c = kSignalQuit;
            if (::read(signal_pipe[0], &c, 1) == 1 && c == kSignalReport) {
                report_state_();
            } else {
                quit_();
                break;
            }
        }
        if (fds[2].revents) {
            uint8_t buf[256];
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                if (n == 0 || errno != EINTR) input_open = false;
            }
            for (ssize_t i = 0; i < n; i++) {
                if (tty && escape_pending) {
                    escape_pending = false;
                    if (buf[i] == 'x') {
                        quit_();
                        return;
                    }
                    if (buf[i] != kEscape) pending.push_back(kEscape);
                } else if (tty && buf[i] == kEscape) {
                    escape_pending = true;
                    continue;
                }
                pending.push_back(buf[i]);
            }
        }
        std::lock_guard lock(io_lock_);
        size_t taken = 0;
        while (taken < pending.size() && serial_.can_receive()) serial_.receive(pending[taken++]);
        pending.erase(pending.begin(), pending.begin() + ptrdiff_t(taken));
    }
}

void ConsoleInput::stop() {
    char c = 0;
    [[maybe_unused]] ssize_t n = ::write(wake_write_.get(), &c, 1);
}

}  // namespace ntc::vmm
