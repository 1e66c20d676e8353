#pragma once
#include "ntc/partition_table.h"
#include "ntc/swap_area.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ntc {

// ntc-info's exit codes (documented in Documentation/userland.md).
enum InfoExit : int {
    info_checkpoint = 0,     // a checkpoint (or image) is present; with --check it is sound
    info_error = 1,          // usage error, or the disk cannot be read
    info_no_checkpoint = 2,  // nothing to resume
    info_damaged = 3,        // a checkpoint or NTC record is damaged, or --check failed
};

struct PartitionReport {
    Partition part;
    std::optional<uint64_t> used_bytes;  // ext: blocks in use
    std::optional<SwapArea> area;        // partitions holding a swap header
    bool unfinished_clone = false;       // page 0 of an interrupted ntc-clone's area
    std::optional<ImageCheck> check;     // with --check, for areas holding an image
    // With --check, for a checkpoint that lists its change history: what
    // is wrong with the history (empty: sound).  It costs only incremental
    // shipping (ntc-send --since), not the resume, so it is no damage.
    std::optional<std::string> history_problem;
    // With --check, for a checkpoint that names its holdings: the slots
    // their extents hold when they are sound and cover the image, else what
    // is wrong with them.  That costs only the next checkpoint's keeping
    // this one resumable while it is written, not this one's resume, so it
    // is no damage either.
    std::optional<uint64_t> slots_held;
    std::optional<std::string> holdings_problem;
};

struct DiskReport {
    std::string path;
    PartitionTable table;
    std::vector<PartitionReport> parts;
    std::optional<std::string> unfinished_merge;  // a resume stopped writing DISK.loading into it
};

// Reads everything ntc-info shows.  With check, walks every image's swap map.
DiskReport describe_disk(const std::string& path, bool check);
InfoExit info_exit_code(const DiskReport& report);
std::string render_text(const DiskReport& report);
nlohmann::json render_json(const DiskReport& report);

// A friendly name for a GPT type GUID or MBR type code ("linux-swap").
std::string partition_type_name(const std::string& type);

// Reads whole pages of one partition, refusing any page outside it.  Reads
// ahead in windows of 64 pages: image pages mostly lie in ascending runs, and
// a system call per page is most of the cost of reading an image.
class PartitionPageReader : public PageReader {
public:
    PartitionPageReader(const DiskFile& disk, const Partition& part);
    uint64_t page_count() const override { return pages_; }
    void read_page(uint64_t index, std::span<uint8_t, NTC_PAGE_SIZE> out) override;

private:
    static constexpr uint64_t window_pages = 64;
    const DiskFile& disk_;
    uint64_t offset_, pages_;
    std::vector<uint8_t> window_;
    uint64_t window_first_ = 0, window_count_ = 0;
};

}  // namespace ntc
