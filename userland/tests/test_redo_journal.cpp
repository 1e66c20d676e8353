// ntc-info on a checkpoint whose redo journal is pending: what it says, and
// every damage to the journal that --check finds.
#include "ntc/disk_report.h"
#include "ntc/redo_journal.h"
#include "support.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace ntc;
using namespace testsupport;

namespace {

constexpr uint64_t kBlock = NTC_PAGE_SIZE;
constexpr uint64_t kJournalSlot = 1000;  // past the fake image's slots

// Disk 2 with a checkpoint committed and its journal not yet in place:
// blocks of the raw partition, of the ext partition and a swap slot in use
// at the previous checkpoint, held in slots from 100 on; two journal pages.
struct JournalDisk {
    TempDir dir;
    TestDisk disk;
    std::vector<ntc_journal_extent> extents;
    uint64_t blocks = 0;

    JournalDisk() {
        disk = make_area_disk(dir, "disk2.img", 5);
        write_fake_checkpoint(disk.path, disk.swap_offset, 8);
        extents = {{4400, 100, 8, 0}, {300, 108, 3, 0}, {page0_block() + 2000, 111, 2, 0}};
        for (uint64_t i = 0; i < 200; i++) extents.push_back({5300 - 2 * i, 200 + i, 1, 0});
        for (const ntc_journal_extent& e : extents) blocks += e.blocks;
        write_journal(extents);
    }

    uint64_t page0_block() const { return disk.swap_offset / kBlock; }
    uint64_t disk_blocks() const { return 48 * MiB / kBlock; }
    void write_journal(const std::vector<ntc_journal_extent>& with) {
        write_fake_journal(disk.path, disk.swap_offset, with, kJournalSlot);
    }
    void change(const std::function<void(ntc_record&)>& how) { change_record(disk.path, disk.swap_offset, how); }

    // What ntc-info --check says of the area.
    const PartitionReport& swap(const DiskReport& report) const { return report.parts.at(2); }
    std::vector<std::string> problems() {
        DiskReport report = describe_disk(disk.path, true);
        REQUIRE(swap(report).check);
        CHECK(info_exit_code(report) == (swap(report).check->ok() ? info_checkpoint : info_damaged));
        return swap(report).check->problems;
    }
    // The one problem --check finds, which must be the journal's.
    std::string journal_problem() {
        std::vector<std::string> found = problems();
        REQUIRE(found.size() == 1);
        return found[0];
    }
    std::string damaged(const std::string& what) const {
        return disk.path + ": the checkpoint's redo journal is damaged (" + what +
               "), so the resumed kernel cannot finish the checkpoint's disk; do not resume it: take a new "
               "checkpoint, or resume a copy of an earlier one";
    }
};

}  // namespace

TEST_CASE("ntc-info shows a pending redo journal, and --check finds it sound") {
    JournalDisk d;
    REQUIRE(d.blocks == 213);
    const std::string line = "  journal      213 blocks pending in 2 pages (the resumed kernel copies them into place "
                             "before it runs)\n";
    DiskReport plain = describe_disk(d.disk.path, false);
    CHECK(info_exit_code(plain) == info_checkpoint);
    CHECK(render_text(plain).find(line) != std::string::npos);

    DiskReport checked = describe_disk(d.disk.path, true);
    REQUIRE(d.swap(checked).check);
    CHECK(d.swap(checked).check->problems == std::vector<std::string>{});
    CHECK(info_exit_code(checked) == info_checkpoint);
    const std::string text = render_text(checked);
    CHECK(text.find(line) != std::string::npos);
    CHECK(text.find(", CRC matches, journal sound\n") != std::string::npos);
    nlohmann::json area = render_json(checked)["partitions"][2]["area"];
    CHECK(area["record"]["flags"] == NTC_RECORD_JOURNAL);
    CHECK(area["record"]["journal_pending"] == true);
    CHECK(area["record"]["journal_blocks"] == 213);
    CHECK(area["record"]["journal_pages"] == 2);
    CHECK(area["check"]["ok"] == true);

    // As ntc.ko leaves page 0 once the journal is in place.
    d.change([](ntc_record& rec) {
        rec.flags = 0;
        rec.journal_slot = rec.journal_blocks = 0;
        rec.journal_pages = rec.journal_crc32 = 0;
    });
    checked = describe_disk(d.disk.path, true);
    CHECK(info_exit_code(checked) == info_checkpoint);
    CHECK(render_text(checked).find("journal") == std::string::npos);
    CHECK(render_json(checked)["partitions"][2]["area"]["record"]["journal_pending"] == false);
}

TEST_CASE("ntc-info --check fails on a damaged redo journal, saying which check failed") {
    JournalDisk d;
    const std::vector<ntc_journal_extent> good = d.extents;
    const uint64_t page2 = kJournalSlot + 1;
    auto with = [&](ntc_journal_extent e) {
        std::vector<ntc_journal_extent> extents = good;
        extents.push_back(e);
        d.write_journal(extents);
    };

    SUBCASE("a page without the journal's magic") {
        std::vector<uint8_t> page = read_bytes(d.disk.path, d.disk.swap_offset + page2 * kBlock, kBlock);
        page[0] = 'X';
        write_bytes(d.disk.path, d.disk.swap_offset + page2 * kBlock, page);
        CHECK(d.journal_problem() == d.damaged("page 2 at slot 1001 has no journal magic"));
    }
    SUBCASE("a CRC that is not the pages'") {
        d.change([](ntc_record& rec) { rec.journal_crc32 ^= 1; });
        CHECK(d.journal_problem() == d.damaged("its pages do not match the record's CRC"));
    }
    SUBCASE("a page count that is not the chain's") {
        d.change([](ntc_record& rec) { rec.journal_pages = 1; });
        CHECK(d.journal_problem() == d.damaged("the chain goes on after the record's 1 pages"));
    }
    SUBCASE("a page with more extents than it holds") {
        std::vector<uint8_t> page = read_bytes(d.disk.path, d.disk.swap_offset + page2 * kBlock, kBlock);
        page[offsetof(ntc_chain_page, count)] = 170;
        write_bytes(d.disk.path, d.disk.swap_offset + page2 * kBlock, page);
        CHECK(d.journal_problem() == d.damaged("page 2 at slot 1001 counts 170 extents, more than 169"));
    }
    SUBCASE("a block count that is not the extents'") {
        d.change([](ntc_record& rec) { rec.journal_blocks--; });
        CHECK(d.journal_problem() == d.damaged("its extents move 213 blocks, the record says 212"));
    }
    SUBCASE("an extent past the end of the disk") {
        with({d.disk_blocks() - 1, 900, 2, 0});
        CHECK(d.journal_problem() == d.damaged("page 2 at slot 1001 moves blocks 12287+2, outside the disk's 12288"));
    }
    SUBCASE("an extent of no blocks") {
        with({5000, 900, 0, 0});
        CHECK(d.journal_problem() == d.damaged("page 2 at slot 1001 lists an extent of no blocks"));
    }
    SUBCASE("an extent that copies from slot 0, page 0") {
        with({5000, 0, 1, 0});
        CHECK(d.journal_problem() ==
              d.damaged("page 2 at slot 1001 copies from slots 0+1, outside the area's slots 1..4095"));
    }
    SUBCASE("an extent that copies from past the end of the area") {
        with({5000, 4094, 3, 0});
        CHECK(d.journal_problem() ==
              d.damaged("page 2 at slot 1001 copies from slots 4094+3, outside the area's slots 1..4095"));
    }
    SUBCASE("destinations that overlap") {
        with({4405, 900, 1, 0});
        CHECK(d.journal_problem() == d.damaged("two extents move block 4405"));
    }
    SUBCASE("a destination that is page 0 of the area") {
        with({d.page0_block(), 900, 1, 0});
        CHECK(d.journal_problem() == d.damaged("an extent moves blocks onto the area's page 0, the record's"));
    }
    SUBCASE("a destination that is a journal page") {
        with({d.page0_block() + page2, 900, 1, 0});
        CHECK(d.journal_problem() == d.damaged("an extent moves blocks onto the journal's own page at slot 1001"));
    }
    SUBCASE("a destination that another extent copies from") {
        with({d.page0_block() + 105, 900, 1, 0});
        CHECK(d.journal_problem() == d.damaged("an extent moves blocks onto slots 100+8, which an extent copies from"));
    }
    SUBCASE("journal fields without the flag") {
        d.change([](ntc_record& rec) { rec.flags = 0; });
        CHECK(d.journal_problem() ==
              d.disk.path + ": the NTC record names a redo journal (slot 1000, 2 pages, 213 blocks) but does not say "
                            "it is pending, while ntc.ko clears the flag and the fields together: the record is "
                            "damaged");
    }
    SUBCASE("a flag these tools do not know") {
        d.change([](ntc_record& rec) { rec.flags |= 4; });
        CHECK(d.journal_problem() ==
              d.disk.path + ": the NTC record has flags 0x5, of which these host tools know only NTC_RECORD_JOURNAL "
                            "(0x1): a newer ntc.ko wrote it; update ntc-info, ntc-send, ntc-receive and ntc-vmm to "
                            "the guest's version");
        d.change([](ntc_record& rec) {
            rec.flags = 4;
            rec.journal_slot = rec.journal_blocks = 0;
            rec.journal_pages = rec.journal_crc32 = 0;
        });
        CHECK(d.journal_problem().find("has flags 0x4") != std::string::npos);
    }
    const std::string text = render_text(describe_disk(d.disk.path, true));
    CHECK(text.find("  check        FAILED: " + d.disk.path + ": the ") != std::string::npos);
    CHECK(text.find("journal sound") == std::string::npos);
}

TEST_CASE("a checkpoint without a journal passes the journal's check, and a journal of no blocks is sound") {
    JournalDisk d;
    d.change([](ntc_record& rec) {
        rec.flags = 0;
        rec.journal_slot = rec.journal_blocks = 0;
        rec.journal_pages = rec.journal_crc32 = 0;
    });
    CHECK(d.problems().empty());
    d.write_journal({});
    CHECK(d.problems().empty());
    CHECK(render_text(describe_disk(d.disk.path, false)).find("  journal      0 blocks pending in 0 pages") !=
          std::string::npos);
}
