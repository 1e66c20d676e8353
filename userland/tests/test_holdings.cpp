// ntc-info on a checkpoint that names its holdings: what it says, and every
// damage to them that --check finds, and every slot of the image they miss,
// none of which makes the checkpoint damaged.
#include "ntc/disk_report.h"
#include "support.h"

#include <cstring>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace ntc;
using namespace testsupport;

namespace {

constexpr uint64_t kHoldingsSlot = 1500;  // past the fake image's slots

// Disk 2 with a checkpoint and its holdings in two pages: the fake image's
// map page and the pages it lists (slots 1 and 2..10, all held, as --check
// wants them), two runs apart, as a swap run and the slots the checkpoint
// wrote after it would be, 200 single slots, and a run on either side of
// the chain's pages (slots 1500 and 1501).
struct HoldingsDisk {
    TempDir dir;
    TestDisk disk;
    FakeImage image;
    std::vector<ntc_holding_extent> extents;

    HoldingsDisk() {
        disk = make_area_disk(dir, "disk2.img", 7);
        image = write_fake_checkpoint(disk.path, disk.swap_offset, 8);
        extents = {{1, 10, 0}, {100, 20, 0}, {125, 5, 0}, {500, 3, 0}};
        for (uint64_t i = 0; i < 200; i++) extents.push_back({1000 + 2 * i, 1, 0});
        extents.push_back({1495, 5, 0});
        extents.push_back({1502, 3, 0});
        write_holdings(extents);
    }

    void write_holdings(const std::vector<ntc_holding_extent>& with) {
        write_fake_holdings(disk.path, disk.swap_offset, with, kHoldingsSlot);
    }
    void change(const std::function<void(ntc_record&)>& how) { change_record(disk.path, disk.swap_offset, how); }

    const PartitionReport& swap(const DiskReport& report) const { return report.parts.at(2); }
    // What ntc-info --check says of the holdings, which is never damage to
    // the checkpoint.
    std::string holdings_problem() {
        DiskReport report = describe_disk(disk.path, true);
        REQUIRE(swap(report).check);
        CHECK(swap(report).check->problems == std::vector<std::string>{});
        CHECK(info_exit_code(report) == info_checkpoint);
        REQUIRE(swap(report).holdings_problem);
        CHECK_FALSE(swap(report).slots_held);
        CHECK(render_text(report).find("  holdings     " + *swap(report).holdings_problem + "\n") != std::string::npos);
        nlohmann::json check = render_json(report)["partitions"][2]["area"]["check"];
        CHECK(check["ok"] == true);
        CHECK(check["holdings_problem"] == *swap(report).holdings_problem);
        CHECK_FALSE(check.contains("holdings_slots_held"));
        return *swap(report).holdings_problem;
    }
    std::string damaged(const std::string& what) const {
        return disk.path + ": the checkpoint's holdings are damaged (" + what +
               "); the checkpoint is still resumable, but ntc.ko cannot tell from them which slots the next "
               "checkpoint may write without touching it, so after a boot or a module reload it writes the next "
               "one in place, not keeping this one resumable meanwhile";
    }
    std::string uncovered(const std::string& uses, uint64_t first) const {
        return disk.path + ": the checkpoint's holdings do not cover its image: it uses " + uses +
               "; the checkpoint is still resumable, but after a boot or a module reload ntc.ko goes by its "
               "holdings, so the checkpoint it takes next while keeping this one could overwrite this image's "
               "page at slot " +
               std::to_string(first) + ", and this one would not resume should that one not finish";
    }
};

}  // namespace

TEST_CASE("ntc-info shows a checkpoint's holdings, and --check finds them sound and counts their slots") {
    HoldingsDisk d;
    DiskReport plain = describe_disk(d.disk.path, false);
    CHECK(info_exit_code(plain) == info_checkpoint);
    CHECK(render_text(plain).find("  holdings     2 pages from slot 1500\n") != std::string::npos);
    nlohmann::json record = render_json(plain)["partitions"][2]["area"]["record"];
    CHECK(record["holdings_slot"] == 1500);
    CHECK(record["holdings_pages"] == 2);

    DiskReport checked = describe_disk(d.disk.path, true);
    REQUIRE(d.swap(checked).check);
    CHECK(d.swap(checked).check->problems == std::vector<std::string>{});
    CHECK(info_exit_code(checked) == info_checkpoint);
    CHECK(d.swap(checked).slots_held == 246);
    CHECK_FALSE(d.swap(checked).holdings_problem);
    const std::string text = render_text(checked);
    CHECK(text.find("  holdings     2 pages from slot 1500, 246 slots held of 4096\n") != std::string::npos);
    CHECK(text.find("damaged") == std::string::npos);
    nlohmann::json check = render_json(checked)["partitions"][2]["area"]["check"];
    CHECK(check["holdings_slots_held"] == 246);
    CHECK_FALSE(check.contains("holdings_problem"));
}

TEST_CASE("a checkpoint without holdings shows none and passes --check") {
    HoldingsDisk d;
    d.change([](ntc_record& rec) {
        rec.holdings_slot = 0;
        rec.holdings_pages = rec.holdings_crc32 = 0;
    });
    DiskReport checked = describe_disk(d.disk.path, true);
    CHECK(info_exit_code(checked) == info_checkpoint);
    CHECK_FALSE(d.swap(checked).slots_held);
    CHECK_FALSE(d.swap(checked).holdings_problem);
    CHECK(render_text(checked).find("holdings") == std::string::npos);
    nlohmann::json area = render_json(checked)["partitions"][2]["area"];
    CHECK(area["record"]["holdings_pages"] == 0);
    CHECK_FALSE(area["check"].contains("holdings_slots_held"));
    CHECK_FALSE(area["check"].contains("holdings_problem"));
}

TEST_CASE("ntc-info --check finds damaged holdings, saying which check failed, and the checkpoint resumable") {
    HoldingsDisk d;
    const uint64_t page2 = kHoldingsSlot + 1;
    auto change_page = [&](uint64_t slot, const std::function<void(ntc_chain_page&)>& how) {
        const uint64_t offset = d.disk.swap_offset + slot * NTC_PAGE_SIZE;
        std::vector<uint8_t> bytes = read_bytes(d.disk.path, offset, NTC_PAGE_SIZE);
        ntc_chain_page page;
        std::memcpy(&page, bytes.data(), sizeof page);
        how(page);
        std::memcpy(bytes.data(), &page, sizeof page);
        write_bytes(d.disk.path, offset, bytes);
    };

    SUBCASE("a page without the holdings' magic") {
        change_page(page2, [](ntc_chain_page& page) { page.magic[0] = 'X'; });
        CHECK(d.holdings_problem() == d.damaged("page 2 at slot 1501 has no holdings magic"));
    }
    SUBCASE("the journal's magic, which is not the holdings'") {
        change_page(kHoldingsSlot, [](ntc_chain_page& page) { std::memcpy(page.magic, NTC_JOURNAL_MAGIC, 8); });
        CHECK(d.holdings_problem() == d.damaged("page 1 at slot 1500 has no holdings magic"));
    }
    SUBCASE("a CRC that is not the pages'") {
        d.change([](ntc_record& rec) { rec.holdings_crc32 ^= 1; });
        CHECK(d.holdings_problem() == d.damaged("its pages do not match the record's CRC"));
    }
    SUBCASE("a CRC without pages") {
        d.change([](ntc_record& rec) {
            rec.holdings_slot = 0;
            rec.holdings_pages = 0;
        });
        CHECK(d.holdings_problem() == d.damaged("its pages do not match the record's CRC"));
    }
    SUBCASE("a page count shorter than the chain") {
        d.change([](ntc_record& rec) { rec.holdings_pages = 1; });
        CHECK(d.holdings_problem() == d.damaged("the chain goes on after the record's 1 pages"));
    }
    SUBCASE("a page count longer than the chain") {
        d.change([](ntc_record& rec) { rec.holdings_pages = 3; });
        CHECK(d.holdings_problem() == d.damaged("page 3 would be at slot 0, outside the area's slots 1..4095"));
    }
    SUBCASE("a link back to the first page") {
        change_page(page2, [](ntc_chain_page& page) { page.next_slot = kHoldingsSlot; });
        d.change([](ntc_record& rec) { rec.holdings_pages = 3; });
        CHECK(d.holdings_problem() == d.damaged("the chain comes back to slot 1500"));
    }
    SUBCASE("a link past the end of the area") {
        change_page(kHoldingsSlot, [](ntc_chain_page& page) { page.next_slot = 4096; });
        CHECK(d.holdings_problem() == d.damaged("page 2 would be at slot 4096, outside the area's slots 1..4095"));
    }
    SUBCASE("a page with more extents than it holds") {
        change_page(page2, [](ntc_chain_page& page) { page.count = 170; });
        CHECK(d.holdings_problem() == d.damaged("page 2 at slot 1501 counts 170 extents, more than 169"));
    }
    SUBCASE("a slot without pages") {
        d.change([](ntc_record& rec) { rec.holdings_pages = 0; });
        CHECK(d.holdings_problem() == d.damaged("the record names slot 1500 and 0 pages"));
        CHECK(render_text(describe_disk(d.disk.path, false)).find("  holdings     0 pages from slot 1500\n") !=
              std::string::npos);
    }
    SUBCASE("pages without a slot") {
        d.change([](ntc_record& rec) { rec.holdings_slot = 0; });
        CHECK(d.holdings_problem() == d.damaged("the record names slot 0 and 2 pages"));
    }
}

TEST_CASE("ntc-info --check refuses each extent the holdings may not list, naming it") {
    HoldingsDisk d;
    const std::string out_of_order = ": the extents are not in ascending order, or overlap";
    // Each after the good extents, in page 2.
    const std::pair<ntc_holding_extent, std::string> refused[] = {
        {{4094, 3, 0}, "holds slots 4094+3, outside the area's slots 1..4095"},
        {{5000, 1, 0}, "holds slots 5000+1, outside the area's slots 1..4095"},
        {{4000, ~uint64_t{0} - 100, 0}, "holds slots 4000+18446744073709551515, outside the area's slots 1..4095"},
        {{2000, 0, 0}, "lists an extent of no slots (from slot 2000)"},
        {{2000, 1, 7}, "has an extent (slots 2000+1) whose pad is not zero"},
        {{50, 1, 0}, "holds slots 50+1 after slots 1502+3" + out_of_order},
        {{1504, 5, 0}, "holds slots 1504+5 after slots 1502+3" + out_of_order},
        {{1505, 2, 0},
         "holds slots 1505+2 right after slots 1502+3: the extents touch, where ntc.ko writes one merged run"},
    };
    for (const auto& [extent, what] : refused) {
        std::vector<ntc_holding_extent> with = d.extents;
        with.push_back(extent);
        d.write_holdings(with);
        CHECK(d.holdings_problem() == d.damaged("page 2 at slot 1501 " + what));
    }

    std::vector<ntc_holding_extent> with = d.extents;
    with.insert(with.begin(), {0, 1, 0});  // page 0, the record's
    d.write_holdings(with);
    CHECK(d.holdings_problem() == d.damaged("page 1 at slot 1500 holds slots 0+1, outside the area's slots 1..4095"));

    with = d.extents;
    std::swap(with[168], with[169]);  // the last of page 1, the first of page 2
    d.write_holdings(with);
    CHECK(d.holdings_problem() ==
          d.damaged("page 2 at slot 1501 holds slots 1328+1 after slots 1330+1" + out_of_order));

    // The runs beside the chain's pages, one slot too long or too early.
    with = d.extents;
    with.end()[-2].slots++;
    d.write_holdings(with);
    CHECK(d.holdings_problem() == d.damaged("slots 1495+6 hold the chain's own page at slot 1500"));
    with = d.extents;
    with.back() = {1501, 4, 0};
    d.write_holdings(with);
    CHECK(d.holdings_problem() == d.damaged("slots 1501+4 hold the chain's own page at slot 1501"));
}

TEST_CASE("ntc-info --check finds holdings that miss a slot of the image, and names the first") {
    HoldingsDisk d;
    REQUIRE(d.image.map_pages == std::vector<uint64_t>{1});
    REQUIRE(d.image.entries.front() == 2);
    REQUIRE(d.image.entries.back() == 10);
    auto without_image = [&](std::vector<ntc_holding_extent> image) {
        std::vector<ntc_holding_extent> with = d.extents;
        with.erase(with.begin());
        with.insert(with.begin(), image.begin(), image.end());
        d.write_holdings(with);
    };

    SUBCASE("the last data page") {
        without_image({{1, 9, 0}});
        CHECK(d.holdings_problem() == d.uncovered("slot 10, outside their extents", 10));
    }
    SUBCASE("two data pages") {
        without_image({{1, 4, 0}, {7, 4, 0}});
        CHECK(d.holdings_problem() == d.uncovered("2 slots outside their extents, the first slot 5", 5));
    }
    SUBCASE("the swap map page, the one the swsusp header names") {
        without_image({{2, 9, 0}});
        CHECK(d.holdings_problem() == d.uncovered("slot 1, outside their extents", 1));
    }
    SUBCASE("none, when the image does not check") {
        without_image({{1, 9, 0}});
        d.change([](ntc_record& rec) { rec.image_crc32 ^= 1; });
        DiskReport report = describe_disk(d.disk.path, true);
        REQUIRE(d.swap(report).check);
        CHECK_FALSE(d.swap(report).check->ok());
        CHECK(info_exit_code(report) == info_damaged);
        CHECK(d.swap(report).slots_held == 245);
        CHECK_FALSE(d.swap(report).holdings_problem);
    }
}
