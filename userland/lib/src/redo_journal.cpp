#include "ntc/redo_journal.h"

#include "ntc/partition_table.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

namespace ntc {
namespace {

[[noreturn]] void damaged(const DiskFile& disk, const std::string& what) {
    throw Error(disk.path() + ": the checkpoint's redo journal is damaged (" + what +
                "), so the resumed kernel cannot finish the checkpoint's disk; do not resume it: take a new "
                "checkpoint, or resume a copy of an earlier one");
}

std::string run_text(uint64_t first, uint64_t count) { return std::to_string(first) + "+" + std::to_string(count); }

}  // namespace

bool journal_pending(const ntc_record& record) { return record.flags & NTC_RECORD_JOURNAL; }

void require_known_flags(const std::string& disk_name, const ntc_record& record) {
    if (!(record.flags & ~NTC_RECORD_JOURNAL)) return;
    char flags[16];
    std::snprintf(flags, sizeof flags, "0x%x", record.flags);
    throw Error(disk_name + ": the NTC record has flags " + flags +
                ", of which these host tools know only NTC_RECORD_JOURNAL (0x1): a newer ntc.ko wrote it; update "
                "ntc-info, ntc-send, ntc-receive and ntc-vmm to the guest's version");
}

void check_redo_journal(const DiskFile& disk, const SnapshotArea& area) {
    const ntc_record& rec = *area.swap.record;
    require_known_flags(disk.path(), rec);
    if (!journal_pending(rec)) {
        if (rec.journal_slot || rec.journal_blocks || rec.journal_pages || rec.journal_crc32)
            throw Error(disk.path() + ": the NTC record names a redo journal (slot " +
                        std::to_string(rec.journal_slot) + ", " + std::to_string(rec.journal_pages) + " pages, " +
                        std::to_string(rec.journal_blocks) +
                        " blocks) but does not say it is pending, while ntc.ko clears the flag and the fields "
                        "together: the record is damaged");
        return;
    }
    const uint64_t disk_blocks = (disk.size() + NTC_PAGE_SIZE - 1) / NTC_PAGE_SIZE;
    auto slot_bytes = [&](uint64_t slot, uint64_t count) {
        return Extent{area.offset + slot * NTC_PAGE_SIZE, count * NTC_PAGE_SIZE};
    };
    std::vector<Extent> destinations, sources, pages;
    uint64_t blocks = 0;
    const AreaPageChain chain{"journal", NTC_JOURNAL_MAGIC, rec.journal_slot, rec.journal_pages, rec.journal_crc32};
    try {
        read_page_chain(disk, area, chain, [&](uint32_t i, uint64_t slot, const ntc_chain_page& page) {
            const std::string where = chain_page_name(i, slot);
            pages.push_back(slot_bytes(slot, 1));
            for (uint32_t k = 0; k < page.count; k++) {
                const ntc_journal_extent& e = page.moves[k];
                if (e.blocks == 0) damaged(disk, where + " lists an extent of no blocks");
                if (e.first_block >= disk_blocks || e.blocks > disk_blocks - e.first_block)
                    damaged(disk, where + " moves blocks " + run_text(e.first_block, e.blocks) +
                                      ", outside the disk's " + std::to_string(disk_blocks));
                if (e.slot == 0 || e.slot >= area.pages || e.blocks > area.pages - e.slot)
                    damaged(disk, where + " copies from slots " + run_text(e.slot, e.blocks) +
                                      ", outside the area's slots 1.." + std::to_string(area.pages - 1));
                destinations.push_back({e.first_block * NTC_PAGE_SIZE, uint64_t{e.blocks} * NTC_PAGE_SIZE});
                sources.push_back(slot_bytes(e.slot, e.blocks));
                blocks += e.blocks;
            }
        });
    } catch (const PageChainDamage& e) {
        damaged(disk, e.what());
    }
    if (blocks != rec.journal_blocks)
        damaged(disk, "its extents move " + std::to_string(blocks) + " blocks, the record says " +
                          std::to_string(rec.journal_blocks));

    std::sort(destinations.begin(), destinations.end(),
              [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
    for (size_t i = 1; i < destinations.size(); i++)
        if (destinations[i].offset < destinations[i - 1].end())
            damaged(disk, "two extents move block " + std::to_string(destinations[i].offset / NTC_PAGE_SIZE));
    // Disjoint and sorted, the destinations end in order too.
    auto moved_onto = [&](const Extent& kept) {
        auto d = std::upper_bound(destinations.begin(), destinations.end(), kept.offset,
                                  [](uint64_t at, const Extent& dest) { return at < dest.end(); });
        return d != destinations.end() && d->offset < kept.end();
    };
    auto slot_of = [&](const Extent& bytes) { return (bytes.offset - area.offset) / NTC_PAGE_SIZE; };
    if (moved_onto(slot_bytes(0, 1))) damaged(disk, "an extent moves blocks onto the area's page 0, the record's");
    for (const Extent& p : pages)
        if (moved_onto(p))
            damaged(disk, "an extent moves blocks onto the journal's own page at slot " + std::to_string(slot_of(p)));
    for (const Extent& s : sources)
        if (moved_onto(s))
            damaged(disk, "an extent moves blocks onto slots " + run_text(slot_of(s), s.length / NTC_PAGE_SIZE) +
                              ", which an extent copies from");
}

}  // namespace ntc
