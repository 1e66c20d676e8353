#include "ntc/error.h"
#include "ntc/partition_table.h"
#include "support.h"

#include <doctest/doctest.h>

using namespace ntc;
using namespace testsupport;

TEST_CASE("GPT: partitions, names and filesystems are read with libblkid") {
    TempDir dir;
    make_tree(dir / "tree", 1);
    TestDisk d = make_gpt_disk(dir, "gpt.img", dir / "tree");
    DiskFile f(d.path, DiskFile::Mode::read);
    PartitionTable t = read_partition_table(f);
    CHECK(t.scheme == "gpt");
    CHECK(t.disk_id.size() == 36);
    CHECK(t.disk_size == 48 * MiB);
    REQUIRE(t.partitions.size() == 3);
    CHECK(t.partitions[0].offset == d.ext_offset);
    CHECK(t.partitions[0].size == 16 * MiB);
    CHECK(t.partitions[0].name == "root");
    CHECK(t.partitions[0].fs_type == "ext4");
    CHECK(t.partitions[0].fs_label == "troot");
    CHECK(t.partitions[0].is_ext());
    CHECK(t.partitions[1].offset == d.raw_offset);
    CHECK(t.partitions[2].fs_type == "swap");
    CHECK(t.partitions[2].type == "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f");

    std::vector<Extent> outside = space_outside_partitions(t);
    REQUIRE(outside.size() == 2);
    CHECK(outside[0] == Extent{0, 1 * MiB});          // protective MBR, GPT header, entries
    CHECK(outside[1] == Extent{37 * MiB, 11 * MiB});  // free space, backup GPT
}

TEST_CASE("MBR: the same layout is read from a DOS table") {
    TempDir dir;
    make_tree(dir / "tree", 2);
    TestDisk d = make_mbr_disk(dir, "mbr.img", dir / "tree");
    DiskFile f(d.path, DiskFile::Mode::read);
    PartitionTable t = read_partition_table(f);
    CHECK(t.scheme == "dos");
    CHECK(t.disk_id == "1234abcd");
    REQUIRE(t.partitions.size() == 3);
    CHECK(t.partitions[0].type == "0x83");
    CHECK(t.partitions[2].type == "0x82");
    CHECK(t.partitions[2].offset == d.swap_offset);
}

TEST_CASE("a disk without a valid partition table is refused") {
    TempDir dir;
    make_tree(dir / "tree", 3);
    TestDisk d = make_gpt_disk(dir, "gpt.img", dir / "tree");

    SUBCASE("both GPT headers destroyed") {
        write_bytes(d.path, 512, std::vector<uint8_t>(512, 0xa5));
        write_bytes(d.path, 48 * MiB - 512, std::vector<uint8_t>(512, 0xa5));
        DiskFile f(d.path, DiskFile::Mode::read);
        CHECK_THROWS_WITH_AS(read_partition_table(f), doctest::Contains("no partition table found"), Error);
    }
    SUBCASE("no table at all") {
        std::string blank = dir / "blank.img";
        must("truncate -s 8M '" + blank + "'");
        DiskFile f(blank, DiskFile::Mode::read);
        CHECK_THROWS_AS(read_partition_table(f), Error);
    }
    SUBCASE("a partition reaching past the end of the disk") {
        must("truncate -s 30M '" + d.path + "'");
        DiskFile f(d.path, DiskFile::Mode::read);
        CHECK_THROWS_AS(read_partition_table(f), Error);
    }
}
