// scripts/ntc-ship-loop.sh DISK2 HOST:COPY and a plain `ntc-send | ssh HOST
// ntc-receive` through a real OpenSSH client and server: an sshd of this
// test's own on 127.0.0.1, whose user's shell runs ntc-receive from the
// build as it would on another machine.
#include "checkpoint_shipping.h"
#include "support.h"

#include <chrono>
#include <csignal>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <optional>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace testsupport;
using namespace std::chrono_literals;

namespace {

const std::string sshd_bin = "/usr/sbin/sshd";
const std::string ssh_bin = "/usr/bin/ssh";

// A TCP port on 127.0.0.1 that nothing listens on now.
int unused_local_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE_MESSAGE(fd >= 0, "cannot make a socket: " << std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                       ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    const int error = errno;
    ::close(fd);
    REQUIRE_MESSAGE(bound, "cannot bind a socket to a port on 127.0.0.1: " << std::strerror(error));
    return ntohs(addr.sin_port);
}

std::string file_text(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_lines(const std::string& path, std::initializer_list<std::string> lines) {
    std::ofstream out(path);
    for (const std::string& line : lines) out << line << "\n";
    REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

// A program this test started, with its output in a log, stopped however
// the test ends: SIGTERM, then SIGKILL if it has not exited within 5 s.
class ChildProcess {
public:
    ChildProcess(std::vector<std::string> argv, const std::string& log) {
        std::vector<char*> args;
        for (std::string& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        REQUIRE_MESSAGE((null >= 0 && out >= 0), "cannot open /dev/null or " << log << ": " << std::strerror(errno));
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            // Also when the test dies without unwinding (a crash, ctest's
            // timeout), its SIGTERM stops this.
            if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || ::getppid() != parent) ::_exit(127);
            ::dup2(null, 0);
            ::dup2(out, 1);
            ::dup2(out, 2);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        const int error = errno;
        ::close(null);
        ::close(out);
        REQUIRE_MESSAGE(pid_ > 0, "cannot run " << argv[0] << ": " << std::strerror(error));
    }
    ~ChildProcess() {
        if (!running()) return;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 50 && running(); i++) std::this_thread::sleep_for(100ms);
        if (!running()) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Reaps it once it has exited.
    bool running() {
        if (pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
        return pid_ > 0;
    }

private:
    pid_t pid_ = -1;
};

// An sshd of the test's own on 127.0.0.1 that lets the current user in with
// a key made for it, and an `ssh` that reaches it as dr-site (and as
// dr-site-wrong-port, where nothing listens); the sshd stops with it.  That
// ssh is the real one with this test's client config, which only -F can
// give it: ssh reads ~/.ssh/config from the home that passwd names, not
// from $HOME.
class PrivateSshd {
public:
    explicit PrivateSshd(const std::string& dir)
        : dir_(dir), port_(unused_local_port()), wrong_port_(unused_local_port()) {
        while (wrong_port_ == port_) wrong_port_ = unused_local_port();
        for (const std::string& program : {sshd_bin, ssh_bin})
            REQUIRE_MESSAGE(std::filesystem::exists(program),
                            program << " is missing: run 'make deps' (it installs openssh-server and "
                                       "openssh-client, and leaves no system sshd running)");
        std::filesystem::create_directories(client_dir());
        // sshd will not start without its privilege separation directory,
        // which only a system sshd's start makes.
        std::error_code error;
        if (std::filesystem::create_directories("/run/sshd", error))
            std::filesystem::permissions("/run/sshd", std::filesystem::perms(0755), error);
        REQUIRE_MESSAGE(!error, "cannot make /run/sshd, sshd's privilege separation directory: "
                                    << error.message() << "; run the tests as root");
        for (const char* key : {"host_key", "client_key"})
            must("ssh-keygen -q -t ed25519 -N '' -C ntc-test -f '" + dir_ + "/" + key + "'");
        must("cp '" + dir_ + "/client_key.pub' '" + dir_ + "/authorized_keys'");
        const passwd* user = ::getpwuid(::geteuid());
        REQUIRE_MESSAGE(user != nullptr, "the current user (uid " << ::geteuid() << ") has no passwd entry");

        write_lines(dir_ + "/sshd_config", {
                                               "ListenAddress 127.0.0.1",
                                               "Port " + std::to_string(port_),
                                               "HostKey " + dir_ + "/host_key",
                                               "AuthorizedKeysFile " + dir_ + "/authorized_keys",
                                               "PubkeyAuthentication yes",
                                               "PasswordAuthentication no",
                                               "KbdInteractiveAuthentication no",
                                               "PermitRootLogin prohibit-password",
                                               "StrictModes no",
                                               "UsePAM no",
                                               "PidFile none",
                                           });
        write_lines(dir_ + "/ssh_config", {
                                              "Host dr-site",
                                              "  Port " + std::to_string(port_),
                                              "Host dr-site-wrong-port",
                                              "  Port " + std::to_string(wrong_port_),
                                              "Host *",
                                              "  HostName 127.0.0.1",
                                              "  User " + std::string(user->pw_name),
                                              "  IdentityFile " + dir_ + "/client_key",
                                              "  IdentitiesOnly yes",
                                              "  StrictHostKeyChecking no",
                                              "  UserKnownHostsFile /dev/null",
                                              "  BatchMode yes",
                                              "  LogLevel ERROR",
                                              "  ConnectTimeout 5",
                                          });
        write_lines(ssh(), {"#!/bin/sh", "exec " + ssh_bin + " -F '" + dir_ + "/ssh_config' \"$@\""});
        std::filesystem::permissions(ssh(), std::filesystem::perms::owner_all);

        sshd_.emplace(std::vector<std::string>{sshd_bin, "-D", "-e", "-f", dir_ + "/sshd_config"}, log());
        wait_until_it_answers();
    }

    // The directory whose `ssh` reaches this sshd, to put first in PATH.
    std::string client_dir() const { return dir_ + "/client"; }
    std::string ssh() const { return client_dir() + "/ssh"; }
    int wrong_port() const { return wrong_port_; }

private:
    std::string log() const { return dir_ + "/sshd.log"; }

    void wait_until_it_answers() {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        CommandRun probe{};
        while (std::chrono::steady_clock::now() < deadline) {
            REQUIRE_MESSAGE(sshd_->running(), sshd_bin << " exited; it said:\n" << file_text(log()));
            probe = run_command("timeout 10 '" + ssh() + "' dr-site true </dev/null");
            if (probe.status == 0) return;
            std::this_thread::sleep_for(100ms);
        }
        FAIL("no login through " << sshd_bin << " on 127.0.0.1 port " << port_ << " within 10 s; ssh said:\n"
                                 << probe.output << "sshd said:\n"
                                 << file_text(log()));
    }

    std::string dir_;
    int port_, wrong_port_;
    std::optional<ChildProcess> sshd_;
};

}  // namespace

TEST_CASE("scripts/ntc-ship-loop.sh DISK2 HOST:COPY and ntc-send | ssh HOST ntc-receive, through a real sshd") {
    FakeDisk2 d;
    PrivateSshd sshd(d.dir / "ssh");
    std::filesystem::create_directories(d.dir / "dr site");
    // The other side's shell has no build directory in its PATH: NTC_BIN
    // names ntc-receive there as it does here.
    const ShipLoop ship{d, d.dir / "dr site/copy of disk2.img", sshd.client_dir()};
    ship.check_generations_1_and_2("dr-site");

    // What a user types: a stream from before the copy's generation, and the
    // remote command as one word of ssh, quoted for the other side's shell.
    d.checkpoint({{3000, 4}});
    const CommandRun piped = run_command(send_bin + " --since 1 '" + d.path() + "' </dev/null | timeout 120 '" +
                                         sshd.ssh() + "' dr-site \"'" + receive_bin + "' '" + ship.copy + "'\"");
    INFO("ntc-send | ssh said:\n" << piped.output);
    CHECK(piped.status == 0);
    CHECK(piped.output.find("generation 1 -> 3") != std::string::npos);
    CHECK(piped.output.find("is at generation 3 (from 2)") != std::string::npos);
    CHECK(file_digest(ship.copy) == d.digests[3]);

    ship.check_unreachable("dr-site-wrong-port", "ssh: connect to host 127.0.0.1 port " +
                                                     std::to_string(sshd.wrong_port()) + ": Connection refused");
}
