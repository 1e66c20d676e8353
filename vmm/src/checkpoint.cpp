#include "checkpoint.h"

#include <cstring>
#include <ntc/disk_file.h>
#include <ntc/error.h>
#include <ntc/partition_table.h>
#include <ntc/swap_area.h>

namespace ntc::vmm {

std::variant<ntc_record, std::string> parse_checkpoint_page(std::span<const uint8_t, NTC_PAGE_SIZE> page) {
    ntc::SwapArea area = ntc::inspect_swap_area(page);
    switch (area.kind) {
    case ntc::AreaKind::not_swap:
        return std::string("no swap or hibernation signature");
    case ntc::AreaKind::swap:
        return std::string("ordinary swap, no checkpoint");
    case ntc::AreaKind::ntc_area:
        return std::string("an NTC snapshot area without a checkpoint");
    case ntc::AreaKind::stock_image:
        return area.problem.empty() ? std::string("a hibernation image that NTC did not write (no NTC record)")
                                    : area.problem;
    case ntc::AreaKind::ntc_checkpoint:
        break;
    }
    const ntc_record& r = *area.record;
    if (r.cpus == 0 || r.ram_bytes == 0 || r.kernel_release[0] == '\0' ||
        std::memchr(r.kernel_release, 0, sizeof(r.kernel_release)) == nullptr)
        return std::string("NTC record lacks the machine's size or kernel release");
    return r;
}

Checkpoint find_checkpoint(const std::string& disk) {
    std::string reasons;
    ntc::DiskFile file(disk, ntc::DiskFile::Mode::read);
    for (const auto& part : ntc::read_partition_table(file).partitions) {
        ntc::Page page;
        if (part.size < 2 * NTC_PAGE_SIZE) continue;
        file.read_at(part.offset, page);
        auto result = parse_checkpoint_page(page);
        if (auto* record = std::get_if<ntc_record>(&result))
            return {unsigned(part.number), part.offset, part.size, *record, file.size()};
        const auto& why = std::get<std::string>(result);
        if (why != "no swap or hibernation signature")
            reasons += "\n  partition " + std::to_string(part.number) + ": " + why;
    }
    throw ntc::Error("disk " + disk + " holds no valid NTC checkpoint, nothing to resume" +
                     (reasons.empty() ? std::string(" (no swap partition found)") : reasons));
}

}  // namespace ntc::vmm
