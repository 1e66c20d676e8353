#pragma once
// ntc-vmm's command line, parsed into what the VMM should do.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ntcvmm {

struct RunCommand {
    std::vector<std::string> disks;  // the first boots
    std::vector<std::string> read_only_disks;
    uint64_t ram_bytes = 512ull << 20;
    unsigned cpus = 2;
    std::optional<std::string> kernel, initrd, append;
    std::optional<std::string> console_log;
};

struct ResumeCommand {
    std::string disk;                 // disk 2, holding the checkpoint
    std::optional<std::string> next;  // what stands where disk 2 was
    std::optional<std::string> console_log;
};

struct ExitNow {
    int status;  // --help and parse errors: CLI11 has printed the message
};

using Command = std::variant<RunCommand, ResumeCommand, ExitNow>;

Command parse_command_line(int argc, const char* const* argv);

// "512M", "2G", "1048576K"; a bare number is MiB.  Throws UserError.
uint64_t parse_size(const std::string& text);

}  // namespace ntcvmm
