#pragma once
// ntc-vmm's command line, parsed into what the VMM should do.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "machine.h"

namespace ntc::vmm {

struct RunCommand {
    std::vector<std::string> disks;  // the first boots
    std::vector<std::string> read_only_disks;
    uint64_t ram_bytes = 512ull << 20;
    unsigned cpus = 2;
    std::optional<std::string> kernel, initrd, append;
    std::optional<std::string> console_log;
    std::optional<std::string> crash_dump;
    std::optional<NetSpec> net;
    std::string instance_name;
};

struct ResumeCommand {
    std::string disk;                 // disk 2, holding the checkpoint
    std::optional<std::string> next;  // what stands where disk 2 was
    // An instance: disk 2 stays unchanged and shared, its writes go to this
    // new overlay, or to a temporary one (throwaway).
    std::optional<std::string> overlay;
    bool throwaway = false;
    bool boot_kernel = false;  // resume through a booted kernel's resume=
    bool load_first = false;   // the whole image in and checked before the guest runs, not behind it
    std::optional<std::string> console_log;
    std::optional<std::string> crash_dump;
    std::optional<NetSpec> net;
    std::string instance_name;
};

struct ExitNow {
    int status;  // 0 after --help, 1 (bad arguments) after a parse error; CLI11 has printed the message
};

using Command = std::variant<RunCommand, ResumeCommand, ExitNow>;

Command parse_command_line(int argc, const char* const* argv);

// "512M", "2G", "1048576K"; a bare number is MiB.  Throws ntc::Error.
uint64_t parse_size(const std::string& text);

// --net "tap:NAME" with an optional --mac; throws ntc::Error.
NetSpec parse_net(const std::string& net, const std::optional<std::string>& mac);

}  // namespace ntc::vmm
