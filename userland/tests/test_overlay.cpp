#include "ntc/clone.h"
#include "ntc/disk_report.h"
#include "ntc/error.h"
#include "ntc/overlay.h"
#include "support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <utime.h>

using namespace ntc;
using namespace testsupport;

namespace {

constexpr uint64_t kBaseBytes = 48 * MiB;  // a bitmap of three pages

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> data(n);
    for (auto& b : data) b = uint8_t(rng());
    return data;
}

std::string make_base(const TempDir& dir) {
    std::string path = dir / "disk2.img";
    DiskFile base = DiskFile::create_sparse(path, kBaseBytes);
    base.write_at(0, random_bytes(2 * MiB, 1));
    base.write_at(kBaseBytes - MiB, random_bytes(MiB, 2));
    return path;
}

std::vector<uint8_t> read(const Overlay& overlay, uint64_t offset, size_t n) {
    std::vector<uint8_t> data(n);
    overlay.read_at(offset, data);
    return data;
}

}  // namespace

TEST_CASE("an overlay reads its base until a sector is written, and keeps the writes to itself") {
    TempDir dir;
    std::string base_path = make_base(dir);
    std::string base_digest = file_digest(base_path);
    Overlay overlay = Overlay::create(dir / "inst.cow", DiskFile(base_path, DiskFile::Mode::read));
    CHECK(overlay.size() == kBaseBytes);
    CHECK(read(overlay, 0, 2 * MiB) == read_bytes(base_path, 0, 2 * MiB));

    auto written = random_bytes(3 * 512, 3);
    overlay.write_at(1024, written);
    auto tail = random_bytes(4096, 4);
    overlay.write_at(kBaseBytes - 4096, tail);
    CHECK(overlay.sectors_in_overlay() == 3 + 8);
    // A read across written and unwritten sectors takes each from its place.
    auto around = read(overlay, 0, 8192);
    auto expect = read_bytes(base_path, 0, 8192);
    std::copy(written.begin(), written.end(), expect.begin() + 1024);
    CHECK(around == expect);
    CHECK(read(overlay, kBaseBytes - 4096, 4096) == tail);
    overlay.sync();
    CHECK(file_digest(base_path) == base_digest);

    // Sparse: the overlay holds its header, bitmap and the written sectors.
    struct stat st {};
    REQUIRE(::stat((dir / "inst.cow").c_str(), &st) == 0);
    CHECK(uint64_t(st.st_blocks) * 512 < 256 * 1024);
    CHECK(uint64_t(st.st_size) >= overlay.data_offset() + kBaseBytes);
}

TEST_CASE("an overlay's runs say where each stretch of sectors is read from") {
    TempDir dir;
    Overlay overlay = Overlay::create(dir / "inst.cow", DiskFile(make_base(dir), DiskFile::Mode::read));
    std::vector<uint8_t> sector(512, 0xaa);
    for (uint64_t s : {10, 11, 12, 40}) overlay.write_at(s * 512, sector);
    auto r = overlay.run(0, 100);
    CHECK((!r.in_overlay && r.sectors == 10));
    r = overlay.run(10, 100);
    CHECK((r.in_overlay && r.sectors == 3));
    r = overlay.run(13, 100);
    CHECK((!r.in_overlay && r.sectors == 27));
    r = overlay.run(40, 100);
    CHECK((r.in_overlay && r.sectors == 1));
    r = overlay.run(41, 5);
    CHECK((!r.in_overlay && r.sectors == 5));
    // The last sectors of the disk: the run stops at its end.
    uint64_t last = kBaseBytes / 512 - 1;
    r = overlay.run(last - 20, 1000);
    CHECK((!r.in_overlay && r.sectors == 21));
}

TEST_CASE("an overlay's bitmap holds only what a sync committed: its data first, then its bits") {
    TempDir dir;
    std::string base_path = make_base(dir);
    std::string cow = dir / "inst.cow";
    auto base_start = read_bytes(base_path, 0, 4096);
    auto first = random_bytes(4096, 5), second = random_bytes(4096, 6), far = random_bytes(512, 7);
    {
        Overlay overlay = Overlay::create(cow, DiskFile(base_path, DiskFile::Mode::read));
        overlay.write_at(0, first);
        overlay.write_at(kBaseBytes - 512, far);  // in the bitmap's third page
        // A flush takes what completed before it, syncs, then commits it;
        // a write completing meanwhile waits for the next flush.
        auto taken = overlay.take_marked();
        CHECK(taken.size() == 2);
        overlay.write_at(8192, second);
        overlay.file().sync();
        overlay.commit(taken);
        // The process ends here (a power cut): the second write was never committed.
    }
    {
        Overlay overlay = Overlay::open(cow, DiskFile::Mode::read_write);
        CHECK(read(overlay, 0, 4096) == first);
        CHECK(read(overlay, kBaseBytes - 512, 512) == far);
        CHECK(read(overlay, 8192, 4096) == read_bytes(base_path, 8192, 4096));
        CHECK(overlay.sectors_in_overlay() == 9);
        overlay.write_at(8192, second);
        overlay.sync();
    }
    Overlay overlay = Overlay::open(cow, DiskFile::Mode::read);
    CHECK(read(overlay, 8192, 4096) == second);
    CHECK(read_bytes(base_path, 0, 4096) == base_start);
}

TEST_CASE("an overlay refuses a changed base, a damaged header, a file that is not one, and an existing path") {
    TempDir dir;
    std::string base_path = make_base(dir);
    std::string cow = dir / "inst.cow";
    Overlay::create(cow, DiskFile(base_path, DiskFile::Mode::read));
    CHECK(Overlay::is_overlay(DiskFile(cow, DiskFile::Mode::read)));
    CHECK_FALSE(Overlay::is_overlay(DiskFile(base_path, DiskFile::Mode::read)));

    SUBCASE("an existing path is left as it was") {
        std::string digest = file_digest(cow);
        CHECK_THROWS_WITH_AS(Overlay::create(cow, DiskFile(base_path, DiskFile::Mode::read)),
                             doctest::Contains("File exists"), Error);
        CHECK(file_digest(cow) == digest);
    }
    SUBCASE("a base written after the overlay was made") {
        write_bytes(base_path, 4096, {1, 2, 3});
        struct timespec later[2] = {{0, UTIME_OMIT}, {2000000000, 0}};
        REQUIRE(::utimensat(AT_FDCWD, base_path.c_str(), later, 0) == 0);
        CHECK_THROWS_WITH_AS(Overlay::open(cow, DiskFile::Mode::read), doctest::Contains("was changed after"), Error);
    }
    SUBCASE("a missing base") {
        must("mv " + base_path + " " + base_path + ".away");
        CHECK_THROWS_WITH_AS(Overlay::open(cow, DiskFile::Mode::read), doctest::Contains("its base disk"), Error);
    }
    SUBCASE("a damaged header") {
        write_bytes(cow, 64, {0xff});
        CHECK_THROWS_WITH_AS(Overlay::open(cow, DiskFile::Mode::read), doctest::Contains("damaged"), Error);
    }
    SUBCASE("a plain disk") {
        CHECK_THROWS_WITH_AS(Overlay::open(base_path, DiskFile::Mode::read),
                             doctest::Contains("it is not an NTC overlay"), Error);
    }
    SUBCASE("a truncated overlay") {
        must("truncate -s 1M " + cow);
        CHECK_THROWS_WITH_AS(Overlay::open(cow, DiskFile::Mode::read), doctest::Contains("truncated"), Error);
    }
    SUBCASE("writes outside whole sectors of the disk") {
        Overlay overlay = Overlay::open(cow, DiskFile::Mode::read_write);
        std::vector<uint8_t> data(512);
        CHECK_THROWS_AS(overlay.write_at(100, data), Error);
        CHECK_THROWS_AS(overlay.write_at(kBaseBytes, data), Error);
        CHECK(overlay.sectors_in_overlay() == 0);
    }
}

TEST_CASE("an overlay being merged opens though its base changed, and writes its committed sectors into it") {
    TempDir dir;
    std::string base_path = make_base(dir);
    std::string cow = dir / "disk2.img.loading";
    auto first = random_bytes(4096, 5), last = random_bytes(1024, 6);
    {
        Overlay overlay = Overlay::create(cow, DiskFile(base_path, DiskFile::Mode::read));
        overlay.write_at(MiB, first);
        overlay.write_at(kBaseBytes - 1024, last);
        overlay.sync();
        // Written, never synced: not durable, so not part of what a later opener merges.
        overlay.write_at(3 * MiB, random_bytes(512, 7));
        CHECK_FALSE(overlay.merging());
        overlay.begin_merge();
        CHECK(overlay.merging());
    }
    // A merge stopped halfway: the base written and its time changed.
    write_bytes(base_path, MiB, {9, 9, 9});
    struct timespec later[2] = {{0, UTIME_OMIT}, {2000000000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, base_path.c_str(), later, 0) == 0);
    auto untouched = read_bytes(base_path, 2 * MiB, 2 * MiB);

    Overlay overlay = Overlay::open(cow, DiskFile::Mode::read);
    CHECK(overlay.merging());
    overlay.copy_into(DiskFile(base_path, DiskFile::Mode::read_write));
    CHECK(read_bytes(base_path, MiB, 4096) == first);
    CHECK(read_bytes(base_path, kBaseBytes - 1024, 1024) == last);
    CHECK(read_bytes(base_path, 2 * MiB, 2 * MiB) == untouched);
    CHECK(read_bytes(base_path, 3 * MiB, 512) == std::vector<uint8_t>(512, 0));
}

TEST_CASE("a merge cut short beside a disk makes ntc-info call it damaged and ntc-clone refuse it") {
    TempDir dir;
    make_tree(dir / "tree", 1);
    TestDisk disk = make_gpt_disk(dir, "disk2.img", dir / "tree");
    const std::string loading = loading_overlay_path(disk.path);
    CHECK(loading == disk.path + ".loading");
    CHECK_FALSE(unfinished_merge(disk.path));
    {
        Overlay overlay = Overlay::create(loading, DiskFile(disk.path, DiskFile::Mode::read));
        overlay.write_at(MiB, random_bytes(4096, 8));
        overlay.sync();
    }
    // Left while loading: the disk is as it was.
    CHECK_FALSE(unfinished_merge(disk.path));
    CHECK(info_exit_code(describe_disk(disk.path, false)) == info_no_checkpoint);

    SUBCASE("left while merging") { Overlay::open(loading, DiskFile::Mode::read_write).begin_merge(); }
    SUBCASE("unreadable") { write_bytes(loading, 0, std::vector<uint8_t>(4096, 0xee)); }
    std::optional<std::string> why = unfinished_merge(disk.path);
    REQUIRE(why);
    CHECK(why->find("half written") != std::string::npos);
    CHECK(why->find("ntc-vmm resume") != std::string::npos);
    DiskReport report = describe_disk(disk.path, false);
    CHECK(info_exit_code(report) == info_damaged);
    CHECK(render_text(report).find("half written") != std::string::npos);
    CHECK(render_json(report)["unfinished_merge"] == *why);
    CHECK_THROWS_WITH_AS(clone_disk(disk.path, dir / "copy.img", CloneOptions{}), doctest::Contains("half written"),
                         Error);
    CHECK(::access((dir / "copy.img").c_str(), F_OK) != 0);
}
