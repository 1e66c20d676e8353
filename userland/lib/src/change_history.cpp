#include "ntc/change_history.h"

#include "ntc/error.h"

#include <algorithm>
#include <cstring>

namespace ntc {
namespace {

uint64_t disk_blocks(const DiskFile& disk) { return (disk.size() + NTC_PAGE_SIZE - 1) / NTC_PAGE_SIZE; }

[[noreturn]] void damaged(const DiskFile& disk, const std::string& what) {
    throw Error(disk.path() + ": the change history is damaged (" + what + "); send everything (omit --since)");
}

void check_extent(const DiskFile& disk, const ntc_record& rec, const ntc_history_extent& e, const std::string& where) {
    const uint64_t blocks = disk_blocks(disk);
    if (e.blocks == 0 || e.first_block >= blocks || e.blocks > blocks - e.first_block)
        damaged(disk, where + " lists blocks " + std::to_string(e.first_block) + "+" + std::to_string(e.blocks) +
                          ", outside the disk's " + std::to_string(blocks));
    if (e.generation <= rec.history_since || e.generation > rec.generation)
        damaged(disk, where + " lists generation " + std::to_string(e.generation) + ", outside " +
                          std::to_string(rec.history_since + 1) + ".." + std::to_string(rec.generation));
}

}  // namespace

void require_change_history(const std::string& disk_name, const ntc_record& record) {
    static const uint8_t no_id[sizeof record.area_id] = {};
    if (record.generation == 0 || std::memcmp(record.area_id, no_id, sizeof no_id) == 0)
        throw Error("the checkpoint on " + disk_name +
                    " was written by an ntc.ko without change history (no area id or generation), which "
                    "ntc-send needs; update ntc-dkms in the guest and take a new checkpoint");
}

ChangeHistory read_change_history(const DiskFile& disk, const SnapshotArea& area) {
    const ntc_record& rec = *area.swap.record;
    require_change_history(disk.path(), rec);
    if (rec.history_since > rec.generation)
        damaged(disk, "it starts at generation " + std::to_string(rec.history_since) + ", after the checkpoint's " +
                          std::to_string(rec.generation));
    if (rec.history_pages > NTC_HISTORY_MAX_PAGES)
        damaged(disk, "the record counts " + std::to_string(rec.history_pages) + " pages, more than " +
                          std::to_string(NTC_HISTORY_MAX_PAGES));
    ChangeHistory history;
    history.since = rec.history_since;
    history.generation = rec.generation;
    const AreaPageChain chain{"history", NTC_HISTORY_MAGIC, rec.history_slot, rec.history_pages, rec.history_crc32};
    try {
        read_page_chain(disk, area, chain, [&](uint32_t i, uint64_t slot, const ntc_chain_page& page) {
            for (uint32_t k = 0; k < page.count; k++)
                check_extent(disk, rec, page.extents[k], chain_page_name(i, slot));
            history.extents.insert(history.extents.end(), page.extents, page.extents + page.count);
            history.page_blocks.push_back(area.page0_block() + slot);
        });
    } catch (const PageChainDamage& e) {
        damaged(disk, e.what());
    }
    return history;
}

std::vector<BlockRun> blocks_changed_since(const ChangeHistory& history, uint64_t since, uint64_t page0_block) {
    if (since < history.since)
        throw Error("disk 2's change history starts after generation " + std::to_string(history.since) +
                    "; a copy at generation " + std::to_string(since) +
                    " needs everything: run ntc-send without --since");
    if (since >= history.generation)
        throw Error("a copy at generation " + std::to_string(since) + " lacks nothing of disk 2 at generation " +
                    std::to_string(history.generation));
    std::vector<BlockRun> wanted;
    for (const ntc_history_extent& e : history.extents)
        if (e.generation > since) wanted.push_back({e.first_block, e.blocks});
    for (uint64_t block : history.page_blocks) wanted.push_back({block, 1});
    std::sort(wanted.begin(), wanted.end(), [](const BlockRun& a, const BlockRun& b) { return a.first < b.first; });

    std::vector<BlockRun> merged;
    for (const BlockRun& run : wanted) {
        if (!merged.empty() && merged.back().end() >= run.first)
            merged.back().count = std::max(merged.back().end(), run.end()) - merged.back().first;
        else merged.push_back(run);
    }
    std::vector<BlockRun> runs;
    for (const BlockRun& run : merged) {
        if (run.first <= page0_block && page0_block < run.end()) {
            if (page0_block > run.first) runs.push_back({run.first, page0_block - run.first});
            if (run.end() > page0_block + 1) runs.push_back({page0_block + 1, run.end() - page0_block - 1});
        } else {
            runs.push_back(run);
        }
    }
    return runs;
}

}  // namespace ntc
