#include "checkpoint.h"

#include <unistd.h>
#include <zlib.h>

#include <cstring>

#include "error.h"

namespace ntcvmm {

uint32_t record_crc32(const ntc_record& record) {
    ntc_record copy = record;
    copy.record_crc32 = 0;
    return uint32_t(crc32(0, reinterpret_cast<const Bytef*>(&copy), sizeof(copy)));
}

std::variant<ntc_record, std::string> parse_checkpoint_page(std::span<const uint8_t> page) {
    if (page.size() < NTC_PAGE_SIZE) return std::string("partition too small");
    const char* sig = reinterpret_cast<const char*>(page.data() + NTC_OFF_SIG);
    ntc_record record;
    std::memcpy(&record, page.data() + NTC_OFF_RECORD, sizeof(record));
    bool has_record = std::memcmp(record.magic, NTC_RECORD_MAGIC, 8) == 0;
    if (std::memcmp(sig, NTC_HIBERNATE_SIG, sizeof(NTC_HIBERNATE_SIG) - 1) != 0) {
        if (std::memcmp(sig, NTC_AREA_SIG, NTC_SIG_LEN) == 0)
            return std::string("an NTC snapshot area without a checkpoint");
        if (std::memcmp(sig, NTC_SWAP_SIG, NTC_SIG_LEN) == 0) return std::string("ordinary swap, no checkpoint");
        return std::string("no hibernation signature");
    }
    if (!has_record) return std::string("a hibernation image that NTC did not write (no NTC record)");
    if (record.record_crc32 != record_crc32(record)) return std::string("NTC record fails its CRC");
    if (record.version != NTC_RECORD_VERSION) return std::string("NTC record of an unknown version");
    if (record.state != NTC_STATE_CHECKPOINT) return std::string("checkpoint incomplete (being written)");
    if (record.cpus == 0 || record.ram_bytes == 0 || record.kernel_release[0] == '\0' ||
        std::memchr(record.kernel_release, 0, sizeof(record.kernel_release)) == nullptr)
        return std::string("NTC record lacks machine size or kernel release");
    return record;
}

Checkpoint find_checkpoint(const std::string& disk, int fd, const std::vector<Partition>& partitions) {
    std::string reasons;
    for (const auto& part : partitions) {
        std::vector<uint8_t> page(NTC_PAGE_SIZE);
        if (part.size < NTC_PAGE_SIZE ||
            ::pread(fd, page.data(), page.size(), off_t(part.offset)) != ssize_t(page.size()))
            continue;
        auto result = parse_checkpoint_page(page);
        if (auto* record = std::get_if<ntc_record>(&result)) return {part.number, *record};
        const auto& why = std::get<std::string>(result);
        if (why != "no hibernation signature")
            reasons += "\n  partition " + std::to_string(part.number) + ": " + why;
    }
    throw UserError("disk " + disk + " holds no valid NTC checkpoint" +
                    (reasons.empty() ? std::string(" (no swap partition with a hibernation image)") : reasons));
}

}  // namespace ntcvmm
