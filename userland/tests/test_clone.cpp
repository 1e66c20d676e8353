#include "ntc/clone.h"
#include "ntc/disk_file.h"
#include "ntc/disk_report.h"
#include "ntc/error.h"
#include "ntc/ext_fs.h"
#include "ntc/overlay.h"
#include "ntc/swap_area.h"
#include "support.h"

#include <algorithm>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace ntc;
using namespace testsupport;

namespace {

struct Fixture {
    TempDir dir;
    TestDisk src;
    std::string dst;
    std::vector<std::string> warnings;
    CloneOptions opts;

    explicit Fixture(bool mbr = false) {
        make_tree(dir / "tree", 7);
        src = mbr ? make_mbr_disk(dir, "src.img", dir / "tree") : make_gpt_disk(dir, "src.img", dir / "tree");
        dst = dir / "dst.img";
        opts.warn = [this](const std::string& w) { warnings.push_back(w); };
    }

    // A block of the ext filesystem that is free, as an absolute disk offset.
    uint64_t free_block_offset() {
        ExtFs fs(src.path, src.ext_offset, 16 * MiB);
        for (uint64_t b = fs.blocks_count() - 1; b > 0; b--)
            if (!fs.block_in_use(b)) return src.ext_offset + b * fs.block_size();
        FAIL("no free block");
        return 0;
    }

    // A used data block of /etc/big.bin, as an absolute disk offset.
    uint64_t used_data_offset() {
        std::string out = sh_output("debugfs -R 'bmap /etc/big.bin 3' '" + src.path +
                                    "?offset=" + std::to_string(src.ext_offset) + "' 2>/dev/null");
        return src.ext_offset + std::stoull(out) * 4096;
    }
};

// Whether the 4 KiB block at offset has storage in the file: written data or
// a preallocated (unwritten) extent.  A hole has none.
bool has_storage(const std::string& path, uint64_t offset) {
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    alignas(struct fiemap) uint8_t buf[sizeof(struct fiemap) + sizeof(struct fiemap_extent)] = {};
    auto* map = reinterpret_cast<struct fiemap*>(buf);
    map->fm_start = offset;
    map->fm_length = 4096;
    map->fm_flags = FIEMAP_FLAG_SYNC;  // delayed allocations first
    map->fm_extent_count = 1;
    int rc = ::ioctl(fd, FS_IOC_FIEMAP, map);
    ::close(fd);
    REQUIRE(rc == 0);
    return map->fm_mapped_extents > 0;
}

// Writes at or past `limit` bytes of any file fail with EFBIG while this
// lives (RLIMIT_FSIZE, SIGXFSZ ignored): a copy that fails part-way.
class FileSizeLimit {
public:
    explicit FileSizeLimit(uint64_t limit) {
        REQUIRE(getrlimit(RLIMIT_FSIZE, &old_) == 0);
        old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = old_;
        lim.rlim_cur = limit;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    }
    ~FileSizeLimit() {
        setrlimit(RLIMIT_FSIZE, &old_);
        std::signal(SIGXFSZ, old_handler_);
    }

private:
    struct rlimit old_ {};
    void (*old_handler_)(int) = nullptr;
};

void check_is_clone(const Fixture& f) {
    VerifyResult v = verify_clone(f.src.path, f.dst);
    for (const std::string& d : v.differences) INFO(d);
    CHECK(v.ok());
    CHECK(v.inodes_compared > 20);
}

// Changes the source: a new file /etc/new.txt, written with debugfs
// (nothing mounted).
void add_file_to_source(const Fixture& f) {
    must("printf 'new contents' > '" + (f.dir / "new.txt") + "'");
    must("debugfs -w -R 'write " + (f.dir / "new.txt") + " /etc/new.txt' '" + f.src.path +
         "?offset=" + std::to_string(f.src.ext_offset) + "'");
}

}  // namespace

TEST_CASE("clone of a GPT disk: used blocks, raw partition, snapshot area") {
    Fixture f;
    uint64_t free_off = f.free_block_offset();
    write_bytes(f.src.path, free_off, std::vector<uint8_t>(4096, 0xee));

    CloneResult r = clone_disk(f.src.path, f.dst, f.opts);
    CHECK(f.warnings.empty());
    CHECK(r.bytes_written > 4 * MiB);  // at least the raw partition
    check_is_clone(f);

    // Same size; both GPT headers and the raw partition byte for byte.
    DiskFile d(f.dst, DiskFile::Mode::read);
    CHECK(d.size() == 48 * MiB);
    CHECK(read_bytes(f.dst, 0, 1 * MiB) == read_bytes(f.src.path, 0, 1 * MiB));
    CHECK(read_bytes(f.dst, 48 * MiB - 17408, 17408) == read_bytes(f.src.path, 48 * MiB - 17408, 17408));
    CHECK(read_bytes(f.dst, f.src.raw_offset, 4 * MiB) == read_bytes(f.src.path, f.src.raw_offset, 4 * MiB));
    // A block the filesystem does not use is not copied: still a hole.
    CHECK(read_bytes(f.dst, free_off, 4096) == std::vector<uint8_t>(4096, 0));
    // The swap became a snapshot area that swapon and blkid do not take for swap.
    SwapArea a = inspect_swap_area([&] {
        Page p;
        d.read_at(f.src.swap_offset, p);
        return p;
    }());
    CHECK(a.kind == AreaKind::ntc_area);
    CHECK(a.label == "tswap");
    CHECK(sh("blkid -p -O " + std::to_string(f.src.swap_offset) + " '" + f.dst + "'") != 0);
    // The rest of the swap partition stays sparse.
    struct stat st;
    REQUIRE(stat(f.dst.c_str(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 20 * MiB);
    CHECK(sh("e2fsck -fn '" + f.dst + "?offset=" + std::to_string(f.src.ext_offset) + "'") == 0);
}

// The clone origin in the snapshot area's record of DST.
std::vector<ntc_origin_partition> recorded_origin(const Fixture& f) {
    Page page;
    DiskFile(f.dst, DiskFile::Mode::read).read_at(f.src.swap_offset, page);
    SwapArea a = inspect_swap_area(page);
    REQUIRE(a.record);
    std::vector<ntc_origin_partition> origin;
    for (const ntc_origin_partition& p : a.record->origin)
        if (p.partno) origin.push_back(p);
    return origin;
}

uint32_t superblock_crc(const std::string& disk, uint64_t partition_offset) {
    return crc32_update(0, read_bytes(disk, partition_offset + 1024, 1024));
}

TEST_CASE("the snapshot area records each ext superblock of the source, the first checkpoint's proof") {
    Fixture f;
    clone_disk(f.src.path, f.dst, f.opts);
    std::vector<ntc_origin_partition> origin = recorded_origin(f);
    REQUIRE(origin.size() == 1);  // the raw and swap partitions hold no ext filesystem
    CHECK(origin[0].partno == 1);
    CHECK(origin[0].start_sector == f.src.ext_offset / 512);
    CHECK(origin[0].sectors == 16 * MiB / 512);
    CHECK(origin[0].superblock_crc32 == superblock_crc(f.src.path, f.src.ext_offset));
    CHECK(origin[0].superblock_crc32 == superblock_crc(f.dst, f.src.ext_offset));
    CHECK(render_text(describe_disk(f.dst, false)).find("clone origin superblocks of disk 1's ext partitions 1:") !=
          std::string::npos);

    // A write to the source through e2fsprogs changes its superblock: the
    // record no longer vouches for the partition, until --update copies it.
    add_file_to_source(f);
    CHECK(superblock_crc(f.src.path, f.src.ext_offset) != origin[0].superblock_crc32);
    f.opts.update = true;
    clone_disk(f.src.path, f.dst, f.opts);
    origin = recorded_origin(f);
    REQUIRE(origin.size() == 1);
    CHECK(origin[0].superblock_crc32 == superblock_crc(f.src.path, f.src.ext_offset));
}

TEST_CASE("a new clone has storage for the data it was written, and none for zeros") {
    Fixture f;
    uint64_t zeroed = f.used_data_offset();
    write_bytes(f.src.path, zeroed, std::vector<uint8_t>(4096, 0));
    clone_disk(f.src.path, f.dst, f.opts);
    check_is_clone(f);
    // The blocks around it hold random data, written in the same run.
    CHECK(has_storage(f.dst, zeroed - 4096));
    CHECK(!has_storage(f.dst, zeroed));
    CHECK(has_storage(f.dst, zeroed + 4096));
}

// The warnings of a clone of a small guest disk whose tree `setup` (a shell
// command run in the tree) changed.
std::vector<std::string> clone_warnings(const TempDir& dir, const std::string& setup) {
    make_tree(dir / "tree", 9);
    must("cd '" + (dir / "tree") + "' && " + setup);
    TestDisk src = make_gpt_disk(dir, "src.img", dir / "tree");
    std::vector<std::string> warnings;
    CloneOptions opts;
    opts.warn = [&](const std::string& w) { warnings.push_back(w); };
    clone_disk(src.path, dir / "dst.img", opts);
    return warnings;
}

TEST_CASE("an fstab that names filesystems by UUID or LABEL draws a warning") {
    TempDir dir;
    auto warnings = clone_warnings(dir, "printf '# comment UUID=x\\n/dev/vda1 / ext4 rw 0 1\\nUUID=1234 /data ext4 "
                                        "rw 0 2\\nLABEL=swap none swap sw 0 0\\n' > etc/fstab");
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0].find("UUID=1234") != std::string::npos);
    CHECK(warnings[1].find("LABEL=swap") != std::string::npos);
    CHECK(warnings[0].find("install ntc-dkms") != std::string::npos);
}

TEST_CASE("an fstab by UUID draws no warning in a guest with ntc-dkms's udev rule") {
    TempDir dir;
    auto warnings =
        clone_warnings(dir, "printf 'UUID=1234 / ext4 rw 0 1\\n' > etc/fstab && mkdir -p usr/lib/udev/rules.d "
                            "&& touch usr/lib/udev/rules.d/60-ntc-snapshot-disk.rules");
    CHECK(warnings.empty());
}

TEST_CASE("an ext filesystem opened for its files alone reads them, and refuses bitmap queries") {
    Fixture f;
    ExtFs files(f.src.path, f.src.ext_offset, 16 * MiB, ExtFs::Read::files);
    auto data = files.read_file("/etc/big.bin", 16 * MiB);
    REQUIRE(data);
    ExtFs whole(f.src.path, f.src.ext_offset, 16 * MiB);
    CHECK(*whole.read_file("/etc/big.bin", 16 * MiB) == *data);
    CHECK(whole.used_blocks() > 0);
    CHECK_THROWS_AS(files.used_blocks(), ntc::Error);
    CHECK_THROWS_AS(files.block_in_use(1), ntc::Error);
    CHECK_THROWS_AS(files.inode_in_use(2), ntc::Error);
}

TEST_CASE("clone of an MBR disk") {
    Fixture f(true);
    clone_disk(f.src.path, f.dst, f.opts);
    check_is_clone(f);
    CHECK(read_bytes(f.dst, 0, 512) == read_bytes(f.src.path, 0, 512));
}

TEST_CASE("refusals leave DST untouched") {
    Fixture f;
    must("printf 'precious' > '" + f.dst + "'");
    std::string before = file_digest(f.dst);

    SUBCASE("DST exists and --force is missing") {
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.dst, f.opts), doctest::Contains("--force"), Error);
    }
    SUBCASE("DST is SRC") {
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.src.path, f.opts), doctest::Contains("source disk itself"),
                             Error);
    }
    SUBCASE("DST is SRC through a symbolic link, even with --force") {
        must("ln -s '" + f.src.path + "' '" + (f.dir / "link.img") + "'");
        std::string src_before = file_digest(f.src.path);
        f.opts.force = true;
        CHECK_THROWS_AS(clone_disk(f.src.path, f.dir / "link.img", f.opts), Error);
        CHECK(file_digest(f.src.path) == src_before);
    }
    SUBCASE("SRC unreadable") {
        f.opts.force = true;
        CHECK_THROWS_WITH_AS(clone_disk(f.dir / "missing.img", f.dst, f.opts), doctest::Contains("cannot open"), Error);
    }
    SUBCASE("SRC with a damaged partition table") {
        write_bytes(f.src.path, 512, std::vector<uint8_t>(512, 0));
        write_bytes(f.src.path, 48 * MiB - 512, std::vector<uint8_t>(512, 0));
        f.opts.force = true;
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.dst, f.opts), doctest::Contains("partition table"), Error);
    }
    SUBCASE("SRC locked by a running virtual machine") {
        int fd = open(f.src.path.c_str(), O_RDONLY);
        REQUIRE(flock(fd, LOCK_EX) == 0);
        f.opts.force = true;
        // flock is per open file description: the clone's own open conflicts.
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.dst, f.opts), doctest::Contains("running virtual machine"),
                             Error);
        close(fd);
    }
    SUBCASE("DST locked by a running virtual machine") {
        int fd = open(f.dst.c_str(), O_RDONLY);
        REQUIRE(flock(fd, LOCK_EX) == 0);
        f.opts.force = true;
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.dst, f.opts), doctest::Contains("running virtual machine"),
                             Error);
        close(fd);
    }
    SUBCASE("--update of a file that is not a clone") {
        f.opts.update = true;
        CHECK_THROWS_AS(clone_disk(f.src.path, f.dst, f.opts), Error);
    }
    CHECK(file_digest(f.dst) == before);
}

TEST_CASE("--force replaces an existing file with a clean sparse clone") {
    Fixture f;
    must("head -c 50M /dev/zero | tr '\\0' 'x' > '" + f.dst + "'");
    REQUIRE(file_digest(f.dst) != file_digest("/dev/null"));
    f.opts.force = true;
    clone_disk(f.src.path, f.dst, f.opts);
    check_is_clone(f);
    DiskFile d(f.dst, DiskFile::Mode::read);
    CHECK(d.size() == 48 * MiB);
}

TEST_CASE("a damaged ext filesystem is copied raw with a warning, or refused with --strict") {
    Fixture f;
    // Garble the group descriptors (block 1): the superblock still says ext4.
    write_bytes(f.src.path, f.src.ext_offset + 4096, std::vector<uint8_t>(4096, 0x5a));

    SUBCASE("default: raw copy") {
        clone_disk(f.src.path, f.dst, f.opts);
        REQUIRE(f.warnings.size() == 1);
        CHECK(f.warnings[0].find("partition 1") != std::string::npos);
        CHECK(read_bytes(f.dst, f.src.ext_offset, 16 * MiB) == read_bytes(f.src.path, f.src.ext_offset, 16 * MiB));
    }
    SUBCASE("--strict: refused, DST not created") {
        f.opts.strict = true;
        CHECK_THROWS_WITH_AS(clone_disk(f.src.path, f.dst, f.opts), doctest::Contains("--strict"), Error);
        CHECK(access(f.dst.c_str(), F_OK) != 0);
    }
}

TEST_CASE("a filesystem whose journal needs recovery is copied whole") {
    Fixture f;
    uint64_t free_off = f.free_block_offset();
    write_bytes(f.src.path, free_off, std::vector<uint8_t>(4096, 0xee));
    must("debugfs -w -R 'feature needs_recovery' '" + f.src.path + "?offset=" + std::to_string(f.src.ext_offset) + "'");
    clone_disk(f.src.path, f.dst, f.opts);
    REQUIRE(f.warnings.size() == 1);
    CHECK(f.warnings[0].find("needs recovery") != std::string::npos);
    // Even a block its bitmap calls free is there: the journal may own it.
    CHECK(read_bytes(f.dst, free_off, 4096) == std::vector<uint8_t>(4096, 0xee));
    CHECK(verify_clone(f.src.path, f.dst).ok());  // byte for byte, as raw
}

TEST_CASE("--update writes only what changed") {
    Fixture f;
    clone_disk(f.src.path, f.dst, f.opts);
    add_file_to_source(f);
    REQUIRE_FALSE(verify_clone(f.src.path, f.dst).ok());

    f.opts.update = true;
    CloneResult r = clone_disk(f.src.path, f.dst, f.opts);
    check_is_clone(f);
    CHECK(r.bytes_written < 256 * 1024);  // a few metadata blocks, the file, the area
}

TEST_CASE("--verify names a single flipped byte in a used block") {
    Fixture f;
    clone_disk(f.src.path, f.dst, f.opts);
    uint64_t off = f.used_data_offset() + 17;
    auto b = read_bytes(f.dst, off, 1);
    b[0] ^= 0x01;
    write_bytes(f.dst, off, b);
    VerifyResult v = verify_clone(f.src.path, f.dst);
    REQUIRE_FALSE(v.ok());
    CHECK(v.differences[0].find("partition 1") != std::string::npos);
    CHECK(v.differences[0].find("block " + std::to_string((off - f.src.ext_offset) / 4096)) != std::string::npos);
}

TEST_CASE("--verify notices a different inode and a different raw partition") {
    Fixture f;
    clone_disk(f.src.path, f.dst, f.opts);
    must("debugfs -w -R 'sif /etc/hostname mode 0100600' '" + f.dst + "?offset=" + std::to_string(f.src.ext_offset) +
         "'");
    write_bytes(f.dst, f.src.raw_offset + 1000, {0, 1, 2, 3});
    VerifyResult v = verify_clone(f.src.path, f.dst);
    REQUIRE_FALSE(v.ok());
    bool inode = false, raw = false;
    for (const std::string& d : v.differences) {
        inode |= d.find("inode") != std::string::npos;
        raw |= d.find("partition 2") != std::string::npos;
    }
    CHECK(inode);
    CHECK(raw);
}

TEST_CASE("an --update stopped part-way does not look finished, and --update finishes it") {
    Fixture f;
    clone_disk(f.src.path, f.dst, f.opts);
    // Changes early on the disk (a new file) and late (data in the space
    // after the last partition).
    add_file_to_source(f);
    std::vector<uint8_t> late(64 * 1024, 0x5a);
    write_bytes(f.src.path, 40 * MiB, late);
    auto ext = [&](const std::string& path) { return read_bytes(path, f.src.ext_offset, 16 * MiB); };
    REQUIRE(ext(f.dst) != ext(f.src.path));

    f.opts.update = true;
    {
        // Writes stop between the snapshot area (at 21 MiB) and the late
        // change: the earlier clone's marker must not stand over the
        // half-updated disk.
        FileSizeLimit limit(38 * MiB);
        CHECK_THROWS_AS(clone_disk(f.src.path, f.dst, f.opts), Error);
    }
    CHECK(ext(f.dst) == ext(f.src.path));  // the early change was written
    Page page0;
    DiskFile(f.dst, DiskFile::Mode::read).read_at(f.src.swap_offset, page0);
    CHECK(inspect_swap_area(page0).kind == AreaKind::not_swap);
    CHECK(is_unfinished_area_page(page0));
    DiskReport r = describe_disk(f.dst, true);
    CHECK_FALSE(r.parts.at(2).area);
    CHECK(r.parts.at(2).unfinished_clone);
    CHECK(render_text(r).find("unfinished ntc-clone") != std::string::npos);
    CHECK(render_json(r)["partitions"][2]["unfinished_clone"] == true);
    CHECK(info_exit_code(r) == info_no_checkpoint);
    VerifyResult v = verify_clone(f.src.path, f.dst);
    REQUIRE_FALSE(v.ok());
    CHECK(std::any_of(v.differences.begin(), v.differences.end(), [](const std::string& d) {
        return d.find("partition 3: an unfinished clone") != std::string::npos;
    }));

    clone_disk(f.src.path, f.dst, f.opts);
    check_is_clone(f);
    CHECK(read_bytes(f.dst, 40 * MiB, late.size()) == late);
    DiskFile(f.dst, DiskFile::Mode::read).read_at(f.src.swap_offset, page0);
    CHECK(inspect_swap_area(page0).kind == AreaKind::ntc_area);
}

TEST_CASE("an instance's overlay becomes a plain disk: the base with the instance's sectors over it") {
    Fixture f;
    std::string base_digest = file_digest(f.src.path);
    std::string cow = f.dir / "instance.cow";
    std::vector<uint8_t> written(4096, 0x5a);
    {
        Overlay overlay = Overlay::create(cow, DiskFile(f.src.path, DiskFile::Mode::read));
        overlay.write_at(f.src.raw_offset + 8192, written);
        overlay.sync();
    }
    clone_disk(cow, f.dst, f.opts);
    CHECK(file_digest(f.src.path) == base_digest);
    auto expect = read_bytes(f.src.path, 0, size_t(48 * MiB));
    std::copy(written.begin(), written.end(), expect.begin() + ptrdiff_t(f.src.raw_offset + 8192));
    CHECK(read_bytes(f.dst, 0, size_t(48 * MiB)) == expect);
    // Holes of the base stay holes.
    CHECK_FALSE(has_storage(f.dst, f.free_block_offset()));

    SUBCASE("an instance still running is refused") {
        DiskFile running(cow, DiskFile::Mode::read_write);
        REQUIRE(running.try_lock_exclusive());
        CHECK_THROWS_WITH_AS(clone_disk(cow, f.dir / "other.img", f.opts), doctest::Contains("in use"), Error);
        CHECK_FALSE(std::filesystem::exists(f.dir / "other.img"));
    }
    SUBCASE("--update and --verify are for clones of disks") {
        f.opts.update = true;
        CHECK_THROWS_WITH_AS(clone_disk(cow, f.dst, f.opts), doctest::Contains("--update"), Error);
        CHECK_THROWS_WITH_AS(verify_clone(cow, f.dst), doctest::Contains("overlay"), Error);
    }
    SUBCASE("an existing target needs --force, and the overlay is no target") {
        CHECK_THROWS_WITH_AS(clone_disk(cow, f.dst, f.opts), doctest::Contains("--force"), Error);
        f.opts.force = true;
        CHECK_THROWS_WITH_AS(clone_disk(cow, cow, f.opts), doctest::Contains("overlay itself"), Error);
        CHECK_THROWS_WITH_AS(clone_disk(cow, f.src.path, f.opts), doctest::Contains("source disk itself"), Error);
        CHECK(file_digest(f.src.path) == base_digest);
        clone_disk(cow, f.dst, f.opts);
        CHECK(read_bytes(f.dst, 0, size_t(48 * MiB)) == expect);
    }
}
