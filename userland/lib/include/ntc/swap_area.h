#pragma once
#include "ntc_format.h"

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ntc {

using Page = std::array<uint8_t, NTC_PAGE_SIZE>;
using PageView = std::span<const uint8_t, NTC_PAGE_SIZE>;

// What page 0 of a swap partition says the partition is.
enum class AreaKind {
    not_swap,        // no swap, hibernation or NTC signature
    swap,            // ordinary swap (perhaps a resumed NTC area: see record)
    ntc_area,        // NTC snapshot area without a checkpoint
    ntc_checkpoint,  // NTC checkpoint, ready to resume
    stock_image,     // a hibernation image written by the kernel itself
};
const char* area_kind_name(AreaKind kind);

struct SwapArea {
    AreaKind kind = AreaKind::not_swap;
    uint32_t swap_version = 0;
    uint32_t last_page = 0;
    std::array<uint8_t, 16> uuid{};
    std::string label;
    uint64_t first_map_page = 0;       // swsusp_header.image, for images
    uint32_t image_flags = 0;          // swsusp_header.flags
    std::optional<ntc_record> record;  // present and CRC-valid
    std::string problem;               // why a present-looking record or header is not valid
};

// Classifies page 0 of a swap partition.  Never trusts a field it has not
// checked: an invalid NTC record is reported in `problem`, not used.
SwapArea inspect_swap_area(PageView page0);

// CRC-32 as zlib's crc32(): the one NTC uses for records and images.
uint32_t crc32_update(uint32_t crc, std::span<const uint8_t> data);
uint32_t record_crc32(const ntc_record& rec);
void seal_record(ntc_record& rec);  // sets magic, version and record_crc32
bool record_is_valid(const ntc_record& rec);

// Who the snapshot area was cloned from.
struct AreaSource {
    std::array<uint8_t, 16> disk_guid{};
    uint32_t mbr_id = 0;
    uint32_t partno = 0;
    uint64_t disk_bytes = 0;
    uint64_t created_unix = 0;
    // Disk 1's ext partitions as the clone copied them (ntc_format.h).
    std::vector<ntc_origin_partition> origin;
};

// Page 0 of a new, empty snapshot area: the source swap header's version,
// size, UUID and label kept, NTC's record in bootbits, NTC_AREA_SIG last.
// Throws ntc::Error when source_page0 is not a swap header.
Page make_area_page(PageView source_page0, const AreaSource& source);

// Page 0 of a snapshot area while ntc-clone writes the rest of the disk:
// make_area_page's NTC record with no signature at all, so that nothing
// (swapon, blkid, ntc.ko, inspect_swap_area) takes the partition for swap
// or for a snapshot area, while ntc-clone --update still knows the disk for
// an unfinished clone to finish.
Page make_unfinished_area_page(PageView source_page0, const AreaSource& source);
// True for page 0 of an unfinished clone: a valid NTC record, no signature.
bool is_unfinished_area_page(PageView page0);

// Reads pages of a partition by index; out-of-range reads must throw.
class PageReader {
public:
    virtual ~PageReader() = default;
    virtual uint64_t page_count() const = 0;
    virtual void read_page(uint64_t index, std::span<uint8_t, NTC_PAGE_SIZE> out) = 0;
};

struct ImageCheck {
    std::vector<std::string> problems;  // empty: the image is sound
    uint64_t pages_walked = 0;
    uint64_t map_pages = 0;
    uint32_t crc32 = 0;
    std::optional<ntc_swsusp_info> info;
    bool ok() const { return problems.empty(); }
};

// Called with each page of the image stream in order (0 is the swsusp_info
// header, then the PFN pages, then the data pages); may throw to stop.
using ImagePageSink = std::function<void(uint64_t index, PageView page)>;

// Walks the swap map of a hibernation image without booting anything: every
// entry inside the partition, no page used twice, as many pages as the image
// header says, and (for NTC checkpoints) the CRC of the page stream.  A sink
// sees every page as it is read, before the stream as a whole is judged.
ImageCheck check_image(PageReader& reader, const SwapArea& area, const ImagePageSink& sink = {});

// check_image's walk of an uncompressed image that reads only the header and
// the PFN pages (the sink sees those), and gives the slot (page of the
// partition) of every data page, in stream order, unread.  crc32 covers the
// pages read; the record's CRC of the whole stream is for the caller to
// check once it has read the data.  A lazy loader starts from this.
ImageCheck map_image(PageReader& reader, const SwapArea& area, const ImagePageSink& sink,
                     std::vector<uint64_t>& data_slots);

std::string uuid_string(const std::array<uint8_t, 16>& uuid);
// "12345678-..." (any case) to bytes; false when it is not a GUID.
bool parse_guid(const std::string& text, std::array<uint8_t, 16>& out);

}  // namespace ntc
