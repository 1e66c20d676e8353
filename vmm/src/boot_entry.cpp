#include "boot_entry.h"

#include <algorithm>
#include <cctype>

namespace ntc::vmm {

namespace {
std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(uint8_t(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(uint8_t(s.back()))) s.remove_suffix(1);
    return s;
}
}  // namespace

BootEntry parse_boot_entry(std::string_view name, std::string_view text) {
    BootEntry entry;
    entry.name = std::string(name);
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = trim(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        if (line.empty() || line.front() == '#') continue;
        size_t split = 0;
        while (split < line.size() && !std::isspace(uint8_t(line[split]))) split++;
        std::string_view key = line.substr(0, split);
        std::string value(trim(line.substr(split)));
        if (key == "title") entry.title = value;
        else if (key == "version") entry.version = value;
        else if (key == "linux") entry.linux = value;
        else if (key == "initrd") entry.initrd.push_back(value);
        else if (key == "options") entry.options += (entry.options.empty() ? "" : " ") + value;
    }
    return entry;
}

int compare_versions(std::string_view a, std::string_view b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit(uint8_t(a[i])) && std::isdigit(uint8_t(b[j]))) {
            size_t i0 = i, j0 = j;
            while (i < a.size() && std::isdigit(uint8_t(a[i]))) i++;
            while (j < b.size() && std::isdigit(uint8_t(b[j]))) j++;
            std::string_view na = a.substr(i0, i - i0), nb = b.substr(j0, j - j0);
            while (na.size() > 1 && na.front() == '0') na.remove_prefix(1);
            while (nb.size() > 1 && nb.front() == '0') nb.remove_prefix(1);
            if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
            if (int c = na.compare(nb)) return c < 0 ? -1 : 1;
        } else {
            if (a[i] != b[j]) return uint8_t(a[i]) < uint8_t(b[j]) ? -1 : 1;
            i++, j++;
        }
    }
    if (i < a.size()) return 1;
    if (j < b.size()) return -1;
    return 0;
}

bool kernel_is_release(std::string_view kernel, std::string_view release) {
    return kernel.size() > release.size() && kernel.ends_with(release) &&
           kernel[kernel.size() - release.size() - 1] == '-';
}

std::optional<BootEntry> choose_boot_entry(std::vector<BootEntry> entries, const std::optional<std::string>& release) {
    std::erase_if(entries, [](const BootEntry& e) { return e.linux.empty(); });
    if (release) {
        for (const auto& e : entries)
            if (e.version == *release || kernel_is_release(e.linux, *release)) return e;
        return std::nullopt;
    }
    if (entries.empty()) return std::nullopt;
    return *std::max_element(entries.begin(), entries.end(), [](const BootEntry& a, const BootEntry& b) {
        int c = compare_versions(a.version, b.version);
        return c != 0 ? c < 0 : compare_versions(a.name, b.name) < 0;
    });
}

}  // namespace ntc::vmm
