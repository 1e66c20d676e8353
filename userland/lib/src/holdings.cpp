#include "ntc/holdings.h"

#include <algorithm>
#include <vector>

namespace ntc {
namespace {

[[noreturn]] void damaged(const DiskFile& disk, const std::string& what) {
    throw Error(disk.path() + ": the checkpoint's holdings are damaged (" + what +
                "); the checkpoint is still resumable, but ntc.ko cannot tell from them which slots the next "
                "checkpoint may write without touching it, so after a boot or a module reload it writes the next "
                "one in place, not keeping this one resumable meanwhile");
}

std::string slots_text(const ntc_holding_extent& e) {
    return "slots " + std::to_string(e.first_slot) + "+" + std::to_string(e.slots);
}

// The extent of `extents` (sorted and apart) that holds `slot`, if any.
const ntc_holding_extent* holding(const std::vector<ntc_holding_extent>& extents, uint64_t slot) {
    // In order and apart, the extents end in order too.
    auto e = std::upper_bound(extents.begin(), extents.end(), slot,
                              [](uint64_t at, const ntc_holding_extent& x) { return at < x.first_slot + x.slots; });
    return e != extents.end() && e->first_slot <= slot ? &*e : nullptr;
}

void check_image_held(const DiskFile& disk, const std::vector<ntc_holding_extent>& extents,
                      std::span<const uint64_t> image_slots) {
    uint64_t missed = 0, first = 0;
    for (uint64_t slot : image_slots) {
        if (holding(extents, slot)) continue;
        if (!missed++) first = slot;
    }
    if (!missed) return;
    const std::string at = "slot " + std::to_string(first);
    throw Error(disk.path() + ": the checkpoint's holdings do not cover its image: it uses " +
                (missed == 1 ? at + "," : std::to_string(missed) + " slots") + " outside their extents" +
                (missed == 1 ? "" : ", the first " + at) +
                "; the checkpoint is still resumable, but after a boot or a module reload ntc.ko goes by its holdings, "
                "so the checkpoint it takes next while keeping this one could overwrite this image's page at " +
                at + ", and this one would not resume should that one not finish");
}

}  // namespace

bool names_holdings(const ntc_record& record) {
    return record.holdings_slot || record.holdings_pages || record.holdings_crc32;
}

uint64_t check_holdings(const DiskFile& disk, const SnapshotArea& area, std::span<const uint64_t> image_slots) {
    const ntc_record& rec = *area.swap.record;
    std::vector<ntc_holding_extent> extents;
    std::vector<uint64_t> page_slots;
    uint64_t held = 0;
    const AreaPageChain chain{"holdings", NTC_HOLDINGS_MAGIC, rec.holdings_slot, rec.holdings_pages,
                              rec.holdings_crc32};
    try {
        read_page_chain(disk, area, chain, [&](uint32_t i, uint64_t slot, const ntc_chain_page& page) {
            const std::string where = chain_page_name(i, slot);
            page_slots.push_back(slot);
            for (uint32_t k = 0; k < page.count; k++) {
                const ntc_holding_extent& e = page.holdings[k];
                if (e.slots == 0)
                    damaged(disk,
                            where + " lists an extent of no slots (from slot " + std::to_string(e.first_slot) + ")");
                if (e.first_slot == 0 || e.first_slot >= area.pages || e.slots > area.pages - e.first_slot)
                    damaged(disk, where + " holds " + slots_text(e) + ", outside the area's slots 1.." +
                                      std::to_string(area.pages - 1));
                if (e.pad) damaged(disk, where + " has an extent (" + slots_text(e) + ") whose pad is not zero");
                if (!extents.empty()) {
                    const ntc_holding_extent& last = extents.back();
                    if (e.first_slot < last.first_slot + last.slots)
                        damaged(disk, where + " holds " + slots_text(e) + " after " + slots_text(last) +
                                          ": the extents are not in ascending order, or overlap");
                    if (e.first_slot == last.first_slot + last.slots)
                        damaged(disk, where + " holds " + slots_text(e) + " right after " + slots_text(last) +
                                          ": the extents touch, where ntc.ko writes one merged run");
                }
                extents.push_back(e);
                held += e.slots;
            }
        });
    } catch (const PageChainDamage& e) {
        damaged(disk, e.what());
    }
    for (uint64_t slot : page_slots)
        if (const ntc_holding_extent* e = holding(extents, slot))
            damaged(disk, slots_text(*e) + " hold the chain's own page at slot " + std::to_string(slot));
    check_image_held(disk, extents, image_slots);
    return held;
}

}  // namespace ntc
