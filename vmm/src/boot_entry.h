#pragma once
// Boot Loader Specification type #1 entries (/boot/loader/entries/*.conf).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ntc::vmm {

struct BootEntry {
    std::string name;  // file name without .conf
    std::string title;
    std::string version;
    std::string linux;
    std::vector<std::string> initrd;
    std::string options;
};

// Parses one entry; keys are separated from values by whitespace, '#' starts
// a comment line, repeated "options" are joined, repeated "initrd" kept.
BootEntry parse_boot_entry(std::string_view name, std::string_view text);

// The entry to boot: with a release, the one whose version (or kernel file
// name) is that release; otherwise the newest by version.  nullopt if none.
std::optional<BootEntry> choose_boot_entry(std::vector<BootEntry> entries, const std::optional<std::string>& release);

// Whether a kernel file is that release's, by its name: /boot/vmlinuz-<release>.
bool kernel_is_release(std::string_view kernel, std::string_view release);

// Compares version strings the way sort -V does, closely enough for kernel
// releases: runs of digits numerically, everything else bytewise.
int compare_versions(std::string_view a, std::string_view b);

}  // namespace ntc::vmm
