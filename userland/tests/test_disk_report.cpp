#include "ntc/clone.h"
#include "ntc/disk_report.h"
#include "ntc/error.h"
#include "ntc/overlay.h"
#include "support.h"

#include <algorithm>
#include <doctest/doctest.h>

using namespace ntc;
using namespace testsupport;

namespace {

struct ClonedDisk {
    TempDir dir;
    TestDisk src;
    std::string dst = dir / "dst.img";
    ClonedDisk() {
        make_tree(dir / "tree", 11);
        src = make_gpt_disk(dir, "src.img", dir / "tree");
        clone_disk(src.path, dst, CloneOptions{});
    }
    const PartitionReport& swap(const DiskReport& r) { return r.parts.at(2); }
};

}  // namespace

TEST_CASE("ntc-info on disk 1: ordinary swap, nothing to resume") {
    ClonedDisk d;
    DiskReport r = describe_disk(d.src.path, true);
    REQUIRE(r.parts.size() == 3);
    REQUIRE(r.parts[0].used_bytes);
    CHECK(*r.parts[0].used_bytes > 600 * 1024);  // big.bin and metadata
    CHECK_FALSE(r.parts[1].area);
    REQUIRE(d.swap(r).area);
    CHECK(d.swap(r).area->kind == AreaKind::swap);
    CHECK(info_exit_code(r) == info_no_checkpoint);
    CHECK(render_text(r).find("swap") != std::string::npos);
}

TEST_CASE("ntc-info on an instance's overlay says what it is and how to make it a disk") {
    ClonedDisk d;
    std::string cow = d.dir / "inst.cow";
    Overlay overlay = Overlay::create(cow, DiskFile(d.dst, DiskFile::Mode::read));
    overlay.write_at(0, std::vector<uint8_t>(4096, 1));
    overlay.sync();
    std::string why;
    try {
        describe_disk(cow, false);
    } catch (const Error& e) {
        why = e.what();
    }
    CHECK(why.find("an instance's overlay over ") != std::string::npos);
    CHECK(why.find("(4 KiB written), not a disk; 'ntc-clone " + cow + " new.img'") != std::string::npos);
}

TEST_CASE("ntc-info on a fresh clone: snapshot area without checkpoint") {
    ClonedDisk d;
    DiskReport r = describe_disk(d.dst, true);
    CHECK(d.swap(r).area->kind == AreaKind::ntc_area);
    CHECK(info_exit_code(r) == info_no_checkpoint);
    CHECK(render_text(r).find("NTC snapshot area, no checkpoint") != std::string::npos);
}

TEST_CASE("ntc-info --check on a checkpoint: sound, then damaged") {
    ClonedDisk d;
    write_fake_checkpoint(d.dst, d.src.swap_offset, 700, 3);
    DiskReport r = describe_disk(d.dst, true);
    REQUIRE(d.swap(r).area);
    CHECK(d.swap(r).area->kind == AreaKind::ntc_checkpoint);
    REQUIRE(d.swap(r).check);
    CHECK(d.swap(r).check->ok());
    CHECK(info_exit_code(r) == info_checkpoint);
    std::string text = render_text(r);
    CHECK(text.find("NTC checkpoint #3") != std::string::npos);
    CHECK(text.find("6.1.0-test-amd64") != std::string::npos);
    CHECK(text.find("check        passed: 701 pages") != std::string::npos);
    nlohmann::json j = render_json(r);
    CHECK(j["partitions"][2]["area"]["record"]["sequence"] == 3);
    CHECK(j["partitions"][2]["area"]["check"]["ok"] == true);
    CHECK(j["exit_code"] == 0);

    SUBCASE("a damaged data page fails --check but not the quick look") {
        auto b = read_bytes(d.dst, d.src.swap_offset + 300 * NTC_PAGE_SIZE, 1);
        b[0] ^= 0xff;
        write_bytes(d.dst, d.src.swap_offset + 300 * NTC_PAGE_SIZE, b);
        CHECK(info_exit_code(describe_disk(d.dst, false)) == info_checkpoint);
        DiskReport bad = describe_disk(d.dst, true);
        CHECK(info_exit_code(bad) == info_damaged);
        CHECK(render_text(bad).find("FAILED") != std::string::npos);
    }
    SUBCASE("a damaged NTC record is damage even without --check") {
        write_bytes(d.dst, d.src.swap_offset + 200, {1, 2, 3});
        DiskReport bad = describe_disk(d.dst, false);
        CHECK(info_exit_code(bad) == info_damaged);
    }
}

TEST_CASE("partition type names") {
    CHECK(partition_type_name("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f") == "linux-swap");
    CHECK(partition_type_name("0x83") == "linux");
    CHECK(partition_type_name("something") == "something");
}

TEST_CASE("the partition page reader gives each page of its partition, in any order, and nothing past it") {
    TempDir dir;
    std::string path = dir / "pages.img";
    std::vector<uint8_t> bytes(100 * NTC_PAGE_SIZE);
    for (size_t i = 0; i < 100; i++)
        std::fill_n(bytes.begin() + static_cast<ptrdiff_t>(i * NTC_PAGE_SIZE), NTC_PAGE_SIZE, uint8_t(i));
    must("truncate -s 400K '" + path + "'");
    write_bytes(path, 0, bytes);
    DiskFile disk(path, DiskFile::Mode::read);
    Partition part;
    part.offset = 3 * NTC_PAGE_SIZE;
    part.size = 70 * NTC_PAGE_SIZE;
    PartitionPageReader reader(disk, part);
    CHECK(reader.page_count() == 70);
    Page page;
    // Back and forth across read-ahead windows, up to the last page.
    for (uint64_t i : {69, 0, 65, 1, 63, 64, 2, 69}) {
        reader.read_page(i, page);
        CHECK(page.front() == uint8_t(i + 3));
        CHECK(page.back() == uint8_t(i + 3));
    }
    CHECK_THROWS_AS(reader.read_page(70, page), Error);
}
