#pragma once
#include "ntc/disk_file.h"
#include "ntc/error.h"
#include "ntc/swap_area.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace ntc {

// The snapshot area of disk 2, or of a copy of it: where it lies and what
// its page 0 says.
struct SnapshotArea {
    uint64_t offset = 0;  // bytes from the start of the disk, a multiple of 4 KiB
    uint64_t pages = 0;   // 4 KiB slots in the partition
    Page page0{};
    SwapArea swap;  // inspect_swap_area(page0)

    // page0's 4 KiB block of the whole disk.
    uint64_t page0_block() const { return offset / NTC_PAGE_SIZE; }
};

// The first partition whose page 0 holds a valid NTC record under a swap,
// area or hibernation signature: a checkpoint, an empty area, one being
// written, or a checkpoint resumed in place (ordinary swap again).  Nothing
// when the disk has none; ntc::Error when the area does not start on a
// 4 KiB boundary of the disk, which ntc-send's blocks need.
std::optional<SnapshotArea> find_snapshot_area(const DiskFile& disk);

// A chain of pages that ntc.ko writes into free slots of the area before
// page 0, as the record names it: the change history, the redo journal and
// the holdings (struct ntc_chain_page).
struct AreaPageChain {
    const char* kind;   // "history", "journal", "holdings": in what read_page_chain finds
    const char* magic;  // the pages' 8 bytes
    uint64_t first_slot = 0;
    uint32_t pages = 0;
    uint32_t crc32 = 0;
};

// What read_page_chain finds wrong with a chain, in words that name the page.
class PageChainDamage : public Error {
public:
    using Error::Error;
};

// "page 2 at slot 3501": a page of a chain, counted from 1.
std::string chain_page_name(uint32_t index, uint64_t slot);

using ChainPageVisitor = std::function<void(uint32_t index, uint64_t slot, const ntc_chain_page& page)>;

// Reads the chain in order and gives each page to `visit` once it has
// checked that its slot lies in the area (1..pages - 1), where no page
// before it was, and that it carries the magic and no more extents than a
// page holds; after the last, that the chain ends with the record's page
// count and matches its CRC-32.  A first slot without pages, or pages
// without one, are damage too.  Throws PageChainDamage; what `visit`
// throws passes through.
void read_page_chain(const DiskFile& disk, const SnapshotArea& area, const AreaPageChain& chain,
                     const ChainPageVisitor& visit);

}  // namespace ntc
