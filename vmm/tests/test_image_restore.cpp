// Resuming an image without a boot kernel: the image into fake guest RAM,
// whole or on demand (userfaultfd), the refusals, the signature put back,
// what a stopped resume left beside disk 2, the entry's page-table
// walk.
#include <doctest/doctest.h>
#include <support.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <ntc/error.h>
#include <ntc/swap_area.h>
#include <optional>
#include <thread>

#include "e820.h"
#include "fake_guest.h"
#include "guest_disk.h"
#include "image_pager.h"
#include "image_restore.h"
#include "loading_overlay.h"

using namespace ntc::vmm;
using ntc::vmm::testing::FakeRam;
using testsupport::MiB;

namespace {

constexpr uint64_t kRam = 4 * MiB;
constexpr uint64_t kCr3 = 0x100000;
constexpr uint64_t kJump = 0xffffffff81234567ull;  // the kernel text mapping
constexpr uint64_t kJumpPhys = 0x2234567;

// Guest RAM as ntc-vmm maps it (anonymous, private, untouched), which
// userfaultfd can serve, with FakeRam's accessors.
struct MappedRam {
    uint8_t* bytes;
    GuestMemory memory;
    explicit MappedRam(uint64_t size)
        : bytes(static_cast<uint8_t*>(
              ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0))),
          memory({{0, size, bytes}}) {
        REQUIRE(bytes != MAP_FAILED);
    }
    ~MappedRam() { ::munmap(bytes, kRam); }
    template <typename T>
    void put(uint64_t address, const T& value) {
        std::memcpy(bytes + address, &value, sizeof(T));
    }
    template <typename T>
    T get(uint64_t address) const {
        T value;
        std::memcpy(&value, bytes + address, sizeof(T));
        return value;
    }
};

// Kernel-like page tables for kJump in 4-level form: PML4 at kCr3, then a
// PDPT and a page directory mapping kJump's 2 MiB page.
template <typename Ram>
void map_kernel_text(Ram& ram, uint64_t jump_phys) {
    uint64_t pdpt = kCr3 + 0x1000, pd = kCr3 + 0x2000;
    ram.template put<uint64_t>(kCr3 + ((kJump >> 39) & 511) * 8, pdpt | 0x63);
    ram.template put<uint64_t>(pdpt + ((kJump >> 30) & 511) * 8, pd | 0x63);
    uint64_t nx = 1ull << 63;  // ignored by the walk, as the address bits are
    ram.template put<uint64_t>(pd + ((kJump >> 21) & 511) * 8, (jump_phys & ~0x1fffffull) | 0x1e3 | nx);
}

testsupport::TestDisk make_disk(const testsupport::TempDir& dir) {
    testsupport::make_tree(dir / "tree", 1);
    return testsupport::make_gpt_disk(dir, "disk.img", dir / "tree");
}

// A disk whose swap partition (at 21 MiB) holds an uncompressed image of
// data pages for `pfns`, restoring into machine RAM of kRam.
struct DiskWithImage {
    testsupport::TempDir dir;
    testsupport::TestDisk disk = make_disk(dir);
    ImageLocation location{disk.path, disk.swap_offset, disk.swap_size};

    explicit DiskWithImage(std::vector<uint64_t> pfns, uint64_t e820 = e820_checksum(e820_map(kRam)),
                           bool slots_descending = false) {
        auto swap = page0();
        ntc::Page area = ntc::make_area_page(ntc::PageView(swap.data(), NTC_PAGE_SIZE), ntc::AreaSource{});
        testsupport::write_bytes(disk.path, disk.swap_offset, {area.begin(), area.end()});
        testsupport::FakeStream stream{std::move(pfns), kJump, kJumpPhys, kCr3, e820, slots_descending};
        testsupport::write_fake_checkpoint(disk.path, disk.swap_offset, 0, 1, stream);
    }
    std::vector<uint8_t> page0() const { return testsupport::read_bytes(disk.path, disk.swap_offset, NTC_PAGE_SIZE); }
    ntc::AreaKind area_kind() const {
        auto page = page0();
        return ntc::inspect_swap_area(ntc::PageView(page.data(), NTC_PAGE_SIZE)).kind;
    }
};

std::string load_error(const DiskWithImage& d, FakeRam& ram) {
    try {
        load_image(d.location, read_image_layout(d.location, ram.memory, kRam), ram.memory);
    } catch (const ntc::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("every data page of the image lands on its frame; frames not in the image stay as they were") {
    FakeRam ram(kRam);
    map_kernel_text(ram, kJumpPhys);
    std::vector<uint64_t> pfns = {0, 7, 8, 600, 1023};
    // An incremental image's map names slots in any order (kmod.md).
    bool slots_descending = false;
    SUBCASE("slots in stream order") {}
    SUBCASE("slots from the highest down") { slots_descending = true; }
    DiskWithImage d(pfns, e820_checksum(e820_map(kRam)), slots_descending);
    ram.bytes[9 * NTC_PAGE_SIZE] = 0xab;

    RestoreEntry entry = load_image(d.location, read_image_layout(d.location, ram.memory, kRam), ram.memory);
    CHECK(entry.jump_address == kJump);
    CHECK(entry.cr3 == kCr3);
    CHECK_FALSE(entry.five_level);
    CHECK(entry.image_bytes == (2 + pfns.size()) * NTC_PAGE_SIZE);
    // Stream page 0 is the header, 1 the PFN page, data from 2 on.
    for (size_t k = 0; k < pfns.size(); k++) {
        uint64_t i = 2 + k;
        const uint8_t* frame = ram.bytes.data() + pfns[k] * NTC_PAGE_SIZE;
        CHECK(frame[0] == uint8_t(i * 7));
        CHECK(frame[4095] == uint8_t(i * 7 + 4095));
    }
    CHECK(ram.bytes[9 * NTC_PAGE_SIZE] == 0xab);
    CHECK(ram.get<uint64_t>(kCr3 + ((kJump >> 39) & 511) * 8) != 0);
}

TEST_CASE("an image is refused, and the disk left alone, when it does not fit this machine or is damaged") {
    FakeRam ram(kRam);
    map_kernel_text(ram, kJumpPhys);
    SUBCASE("a frame beyond this machine's RAM") {
        DiskWithImage d({1, 2, kRam / NTC_PAGE_SIZE});
        CHECK(load_error(d, ram).find("not RAM in this machine") != std::string::npos);
    }
    SUBCASE("frames out of order") {
        DiskWithImage d({5, 4});
        CHECK(load_error(d, ram).find("out of order") != std::string::npos);
        // The image's own refusal, not dressed up as a failure to read the disk.
        CHECK(load_error(d, ram).starts_with("the image's page frame list is out of order"));
    }
    SUBCASE("another memory map") {
        DiskWithImage d({1, 2}, e820_checksum(e820_map(2 * kRam)));
        CHECK(load_error(d, ram).find("another memory map") != std::string::npos);
    }
    SUBCASE("a flipped byte in a data page") {
        DiskWithImage d({1, 2});
        REQUIRE(d.area_kind() == ntc::AreaKind::ntc_checkpoint);
        // The test image lays pages out in order: map page 1, stream pages 2...
        uint64_t data_page = d.disk.swap_offset + 5 * NTC_PAGE_SIZE;
        auto byte = testsupport::read_bytes(d.disk.path, data_page + 100, 1);
        byte[0] ^= 1;
        testsupport::write_bytes(d.disk.path, data_page + 100, byte);
        auto before = d.page0();
        CHECK(load_error(d, ram).find("damaged") != std::string::npos);
        CHECK(d.page0() == before);
    }
    SUBCASE("an entry its page tables do not map") {
        DiskWithImage d({1, 2});
        map_kernel_text(ram, kJumpPhys + (4 * MiB));
        CHECK(load_error(d, ram).find("do not map its restore entry") != std::string::npos);
    }
}

TEST_CASE("retiring an image turns the area back into swap, as the kernel's resume does") {
    DiskWithImage d({1});
    REQUIRE(d.area_kind() == ntc::AreaKind::ntc_checkpoint);
    retire_image(d.location, nullptr);
    CHECK(d.area_kind() == ntc::AreaKind::swap);
}

TEST_CASE("an instance retires its image in its overlay, and disk 2 keeps the checkpoint") {
    DiskWithImage d({1});
    std::string digest = testsupport::file_digest(d.disk.path);
    std::string cow = d.dir / "instance.cow";
    {
        auto overlay = ntc::Overlay::create(cow, ntc::DiskFile(d.disk.path, ntc::DiskFile::Mode::read));
        retire_image(d.location, &overlay);
    }
    CHECK(d.area_kind() == ntc::AreaKind::ntc_checkpoint);
    CHECK(testsupport::file_digest(d.disk.path) == digest);
    // Committed: the overlay opened again reads the retired page.
    auto overlay = ntc::Overlay::open(cow, ntc::DiskFile::Mode::read);
    ntc::Page page;
    overlay.read_at(d.disk.swap_offset, page);
    CHECK(ntc::inspect_swap_area(ntc::PageView(page.data(), NTC_PAGE_SIZE)).kind == ntc::AreaKind::swap);
}

TEST_CASE("what a stopped resume left beside disk 2 is dropped, or finished if it was merging") {
    DiskWithImage d({1});
    const std::string loading = ntc::loading_overlay_path(d.disk.path);
    const std::vector<uint8_t> written(4096, 0x5a);
    const uint64_t at = d.disk.swap_offset + d.disk.swap_size - 4096;  // one of the area's pages
    auto leave_overlay = [&](bool merging) {
        auto overlay = ntc::Overlay::create(loading, ntc::DiskFile(d.disk.path, ntc::DiskFile::Mode::read));
        overlay.write_at(at, written);
        overlay.sync();
        if (merging) overlay.begin_merge();
    };
    std::string digest = testsupport::file_digest(d.disk.path);

    SUBCASE("nothing left: nothing done") {
        settle_loading_overlay(d.disk.path);
        CHECK(testsupport::file_digest(d.disk.path) == digest);
    }
    SUBCASE("stopped while loading: the writes of a machine whose memory is gone are dropped") {
        leave_overlay(false);
        settle_loading_overlay(d.disk.path);
        CHECK(::access(loading.c_str(), F_OK) != 0);
        CHECK(testsupport::file_digest(d.disk.path) == digest);
        CHECK(d.area_kind() == ntc::AreaKind::ntc_checkpoint);
    }
    SUBCASE("stopped while merging, before the image was retired: retired and written in") {
        leave_overlay(true);
        settle_loading_overlay(d.disk.path);
        CHECK(::access(loading.c_str(), F_OK) != 0);
        CHECK(d.area_kind() == ntc::AreaKind::swap);
        CHECK(testsupport::read_bytes(d.disk.path, at, 4096) == written);
    }
    SUBCASE("stopped while merging, the image retired and the disk part written: written in to the end") {
        leave_overlay(true);
        retire_image(d.location, nullptr);
        testsupport::write_bytes(d.disk.path, at, {1, 2, 3});
        settle_loading_overlay(d.disk.path);
        CHECK(::access(loading.c_str(), F_OK) != 0);
        CHECK(d.area_kind() == ntc::AreaKind::swap);
        CHECK(testsupport::read_bytes(d.disk.path, at, 4096) == written);
    }
    SUBCASE("a leftover that cannot be read: refused, nothing touched") {
        std::ofstream(loading) << std::string(4096, '\xee');
        CHECK_THROWS_WITH_AS(settle_loading_overlay(d.disk.path), doctest::Contains("cannot be told"), ntc::Error);
        CHECK(::access(loading.c_str(), F_OK) == 0);
        CHECK(testsupport::file_digest(d.disk.path) == digest);
    }
    SUBCASE("a disk in use: its overlay belongs to the resume that runs it") {
        leave_overlay(true);
        ntc::DiskFile held = open_vm_disk(d.disk.path, false);
        CHECK_THROWS_WITH_AS(settle_loading_overlay(d.disk.path), doctest::Contains("in use"), ntc::Error);
        CHECK(::access(loading.c_str(), F_OK) == 0);
        CHECK(testsupport::file_digest(d.disk.path) == digest);
    }
}

TEST_CASE("translate walks 4- and 5-level tables with 4 KiB, 2 MiB and 1 GiB pages") {
    FakeRam ram(kRam);
    const uint64_t virt = 0xff11223344556789ull;
    auto index = [&](unsigned level) { return (virt >> (12 + 9 * (level - 1))) & 511; };
    // 5 levels: tables at 1, 2, 3, 4 MiB - 4 KiB ... one per level.
    uint64_t t5 = 0x10000, t4 = 0x11000, t3 = 0x12000, t2 = 0x13000, t1 = 0x14000;
    ram.put<uint64_t>(t5 + index(5) * 8, t4 | 3);
    ram.put<uint64_t>(t4 + index(4) * 8, t3 | 3);
    ram.put<uint64_t>(t3 + index(3) * 8, t2 | 3);
    ram.put<uint64_t>(t2 + index(2) * 8, t1 | 3);
    ram.put<uint64_t>(t1 + index(1) * 8, 0x345000 | 3);
    CHECK(translate(ram.memory, t5, virt, true) == 0x345789u);
    CHECK(translate(ram.memory, t4, virt, false) == 0x345789u);
    CHECK(translate(ram.memory, t5 | 0x18, virt, true) == 0x345789u);  // PWT/PCD bits in CR3

    ram.put<uint64_t>(t2 + index(2) * 8, 0x40000000ull | 0x83 | (1ull << 12));  // 2 MiB, PAT bit set
    CHECK(translate(ram.memory, t4, virt, false) == 0x40000000ull + (virt & 0x1fffff));
    ram.put<uint64_t>(t3 + index(3) * 8, 0x80000000ull | 0x83);  // 1 GiB
    CHECK(translate(ram.memory, t4, virt, false) == 0x80000000ull + (virt & 0x3fffffff));

    ram.put<uint64_t>(t3 + index(3) * 8, 0x80000000ull);  // not present
    CHECK_FALSE(translate(ram.memory, t4, virt, false));
    ram.put<uint64_t>(t4 + index(4) * 8, (kRam + 0x1000) | 3);  // table outside RAM
    CHECK_FALSE(translate(ram.memory, t4, virt, false));
}

TEST_CASE("the boot CPU enters restore_registers() in long mode with the image kernel's CR3 in r9") {
    RestoreEntry entry{kJump, kCr3, true, 0};
    kvm_regs regs;
    kvm_sregs sregs{};
    restore_cpu_registers(entry, regs, sregs);
    CHECK(regs.rip == kJump);
    CHECK(regs.r9 == kCr3);
    CHECK(sregs.cr3 == kCr3);
    CHECK((sregs.cr4 & (1u << 12)) != 0);  // LA57
    CHECK((sregs.efer & 0xd00) == 0xd00);  // LMA, LME, NXE
    CHECK(regs.rflags == 2);               // interrupts off
    entry.five_level = false;
    restore_cpu_registers(entry, regs, sregs);
    CHECK((sregs.cr4 & (1u << 12)) == 0);
}

TEST_CASE("the memory map checksum is CRC-32 of the kernel's packed struct e820_table") {
    CHECK(e820_checksum({}) == 0x2144df1cu);  // crc32 of a zero u32 count
    auto map = e820_map(kRam);
    auto changed = map;
    changed.back().type = E820Type::Reserved;
    CHECK(e820_checksum(map) != e820_checksum(changed));
    CHECK(e820_checksum(e820_map(kRam)) == e820_checksum(map));
}

namespace {

// What the test image puts in data page k (stream page 2 + k), as read
// back from a frame.
bool frame_holds_page(const MappedRam& ram, uint64_t pfn, uint64_t k) {
    const uint8_t* frame = ram.bytes + pfn * NTC_PAGE_SIZE;
    uint64_t i = 2 + k;
    for (uint64_t b = 0; b < NTC_PAGE_SIZE; b++)
        if (frame[b] != uint8_t(i * 7 + b)) return false;
    return true;
}

// userfaultfd is for root on these machines (vm.unprivileged_userfaultfd=0),
// as ntc-vmm runs; without it the test says so and checks nothing.
bool have_userfaultfd() {
    if (::geteuid() == 0) return true;
    MESSAGE("not root: the image pager's tests need a userfaultfd and are skipped");
    return false;
}

}  // namespace

TEST_CASE("the pager serves image pages on first touch, zero pages elsewhere, and loads the rest") {
    if (!have_userfaultfd()) return;
    MappedRam ram(kRam);
    map_kernel_text(ram, kJumpPhys);
    std::vector<uint64_t> pfns = {0, 7, 8, 9, 600, 1023};
    DiskWithImage d(pfns);
    // A frame written before the pager, as the firmware tables' huge page
    // may be: the image's page replaces it at once.
    ram.bytes[8 * NTC_PAGE_SIZE] = 0xab;
    auto before = d.page0();

    ImageLayout layout = read_image_layout(d.location, ram.memory, kRam);
    std::optional<std::string> failure;
    ImagePager pager(d.disk.path, layout, ram.memory, [&](const std::string& why) { failure = why; });
    CHECK(frame_holds_page(ram, 8, 2));
    // Touched before the loader runs: the faults are served.
    CHECK(frame_holds_page(ram, 600, 4));
    CHECK(ram.get<uint64_t>(10 * NTC_PAGE_SIZE) == 0);  // not in the image
    CHECK(ram.get<uint64_t>(1000 * NTC_PAGE_SIZE) == 0);
    RestoreEntry entry = restore_entry(layout, ram.memory);  // walks page tables through the pager too
    CHECK(entry.jump_address == kJump);

    std::optional<ImagePager::Loaded> loaded;
    pager.start_loading([&](const ImagePager::Loaded& l) { loaded = l; });
    CHECK(pager.wait_until_loaded());
    pager.stop();
    CHECK_FALSE(failure);
    REQUIRE(loaded);
    CHECK(loaded->pages == pfns.size());
    CHECK(loaded->on_first_touch == 2);  // frame 8 at once, 600 on its fault
    for (size_t k = 0; k < pfns.size(); k++) CHECK(frame_holds_page(ram, pfns[k], k));
    CHECK(d.page0() == before);  // the machine retires the image, not the pager
}

TEST_CASE("the pager reports a damaged image once all is read, and never says it is loaded") {
    if (!have_userfaultfd()) return;
    MappedRam ram(kRam);
    map_kernel_text(ram, kJumpPhys);
    DiskWithImage d({1, 2, 3});
    uint64_t data_page = d.disk.swap_offset + 6 * NTC_PAGE_SIZE;  // map page 1, stream pages 2...
    auto byte = testsupport::read_bytes(d.disk.path, data_page + 100, 1);
    byte[0] ^= 1;
    testsupport::write_bytes(d.disk.path, data_page + 100, byte);

    ImageLayout layout = read_image_layout(d.location, ram.memory, kRam);  // the data is not read yet
    std::atomic<bool> failed{false};
    std::string why;
    ImagePager pager(d.disk.path, layout, ram.memory, [&](const std::string& w) {
        why = w;
        failed = true;
    });
    bool loaded_called = false;
    pager.start_loading([&](const ImagePager::Loaded&) { loaded_called = true; });
    CHECK_FALSE(pager.wait_until_loaded());
    pager.stop();
    CHECK(failed);
    CHECK(why.find("image CRC mismatch") != std::string::npos);
    CHECK_FALSE(loaded_called);
}

TEST_CASE("a machine stopped before its image is in lets its waiting writes fail") {
    if (!have_userfaultfd()) return;
    MappedRam ram(kRam);
    map_kernel_text(ram, kJumpPhys);
    DiskWithImage d({1, 2});
    ImagePager pager(d.disk.path, read_image_layout(d.location, ram.memory, kRam), ram.memory, {});
    std::atomic<int> answer{-1};
    std::thread writer([&] { answer = pager.wait_until_loaded() ? 1 : 0; });
    pager.stop();  // the loader never started
    writer.join();
    CHECK(answer == 0);
}
