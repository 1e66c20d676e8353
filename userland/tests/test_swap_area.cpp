#include "ntc/swap_area.h"
#include "support.h"

#include <algorithm>
#include <cstring>
#include <doctest/doctest.h>
#include <stdexcept>

using namespace ntc;
using namespace testsupport;

namespace {

Page mkswap_page(const TempDir& dir) {
    std::string f = dir / "swap.img";
    must("truncate -s 8M '" + f + "' && mkswap -L mylabel -U 11111111-2222-3333-4444-555555555555 '" + f + "'");
    auto bytes = read_bytes(f, 0, NTC_PAGE_SIZE);
    Page p;
    std::copy(bytes.begin(), bytes.end(), p.begin());
    return p;
}

class MemoryPages : public PageReader {
public:
    explicit MemoryPages(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
    uint64_t page_count() const override { return bytes_.size() / NTC_PAGE_SIZE; }
    void read_page(uint64_t i, std::span<uint8_t, NTC_PAGE_SIZE> out) override {
        REQUIRE(i < page_count());
        std::memcpy(out.data(), bytes_.data() + i * NTC_PAGE_SIZE, NTC_PAGE_SIZE);
    }

private:
    std::vector<uint8_t> bytes_;
};

// A swap area file holding an NTC area made from mkswap's header, and the
// image written by the same code path the disk tests use.
struct AreaWithImage {
    TempDir dir;
    std::string path = dir / "area.img";
    FakeImage image;
    explicit AreaWithImage(uint64_t data_pages, const FakeStream& stream = {}) {
        Page src = mkswap_page(dir);
        must("truncate -s 8M '" + path + "'");
        Page area = make_area_page(src, AreaSource{});
        write_bytes(path, 0, std::vector<uint8_t>(area.begin(), area.end()));
        image = write_fake_checkpoint(path, 0, data_pages, 1, stream);
    }
    ImageCheck check() {
        auto bytes = read_bytes(path, 0, 8 * MiB);
        Page p0;
        std::copy_n(bytes.begin(), NTC_PAGE_SIZE, p0.begin());
        MemoryPages pages(bytes);
        return check_image(pages, inspect_swap_area(p0));
    }
    void poke_u64(uint64_t page, size_t index, uint64_t value) {
        std::vector<uint8_t> b(8);
        std::memcpy(b.data(), &value, 8);
        write_bytes(path, page * NTC_PAGE_SIZE + index * 8, b);
    }
};

}  // namespace

TEST_CASE("format offsets match kernel/power/swap.c and include/linux/swap.h") {
    CHECK(offsetof(ntc_swsusp_header, sig) == 4086);
    CHECK(offsetof(ntc_swsusp_header, orig_sig) == 4076);
    CHECK(offsetof(ntc_swsusp_header, flags) == 4072);
    CHECK(offsetof(ntc_swsusp_header, image) == 4064);
    CHECK(offsetof(ntc_swsusp_header, crc32) == 4060);
    CHECK(offsetof(ntc_swap_header_info, last_page) == 1028);
    CHECK(offsetof(ntc_swap_header_info, sws_volume) == NTC_OFF_SWAP_LABEL);
    CHECK(offsetof(ntc_swsusp_info, num_physpages) == 400);
    CHECK(offsetof(ntc_swsusp_info, image_pages) == 416);
    CHECK(offsetof(ntc_swsusp_info, pages) == 424);
    CHECK(NTC_MAP_PAGE_ENTRIES == 511);
    CHECK(sizeof(ntc_record) == 1024);
}

TEST_CASE("crc32 is zlib's (IEEE) CRC") {
    const char* s = "123456789";
    CHECK(crc32_update(0, {reinterpret_cast<const uint8_t*>(s), 9}) == 0xCBF43926u);
    // Chained over pieces it is the same as over the whole.
    uint32_t c = crc32_update(0, {reinterpret_cast<const uint8_t*>(s), 4});
    CHECK(crc32_update(c, {reinterpret_cast<const uint8_t*>(s) + 4, 5}) == 0xCBF43926u);
}

TEST_CASE("ordinary swap, made by mkswap, is recognised with its UUID and label") {
    TempDir dir;
    SwapArea a = inspect_swap_area(mkswap_page(dir));
    CHECK(a.kind == AreaKind::swap);
    CHECK(a.label == "mylabel");
    CHECK(uuid_string(a.uuid) == "11111111-2222-3333-4444-555555555555");
    CHECK(a.last_page == 8 * MiB / NTC_PAGE_SIZE - 1);
    CHECK_FALSE(a.record);
    CHECK(a.problem.empty());
}

TEST_CASE("a snapshot area keeps the swap identity and carries a sealed record") {
    TempDir dir;
    Page src = mkswap_page(dir);
    AreaSource from;
    from.partno = 3;
    from.disk_bytes = 1234 * MiB;
    REQUIRE(parse_guid("AABBCCDD-0011-2233-4455-66778899AABB", from.disk_guid));
    Page area = make_area_page(src, from);
    SwapArea a = inspect_swap_area(area);
    CHECK(a.kind == AreaKind::ntc_area);
    CHECK(a.label == "mylabel");
    CHECK(uuid_string(a.uuid) == "11111111-2222-3333-4444-555555555555");
    CHECK(a.last_page == 8 * MiB / NTC_PAGE_SIZE - 1);
    REQUIRE(a.record);
    CHECK(a.record->state == NTC_STATE_EMPTY);
    CHECK(a.record->source_partno == 3);
    CHECK(uuid_string(std::to_array(a.record->source_disk_guid)) == "aabbccdd-0011-2233-4455-66778899aabb");
    CHECK(std::memcmp(area.data() + NTC_OFF_SIG, NTC_AREA_SIG, 10) == 0);
    // Neither swap's nor hibernation's signature is left for swapon to find.
    CHECK(std::memcmp(area.data() + NTC_OFF_SIG, NTC_SWAP_SIG, 10) != 0);

    SUBCASE("a damaged record is reported, not used") {
        area[100] ^= 0x40;
        SwapArea d = inspect_swap_area(area);
        CHECK(d.kind == AreaKind::ntc_area);
        CHECK_FALSE(d.record);
        CHECK(d.problem.find("damaged") != std::string::npos);
    }
}

TEST_CASE("an unfinished clone's area page carries the record but no signature at all") {
    TempDir dir;
    Page src = mkswap_page(dir);
    AreaSource from;
    from.partno = 3;
    Page unfinished = make_unfinished_area_page(src, from);
    // Nothing takes it for swap, a snapshot area or an image.
    SwapArea a = inspect_swap_area(unfinished);
    CHECK(a.kind == AreaKind::not_swap);
    CHECK_FALSE(a.record);
    CHECK(std::all_of(unfinished.begin() + NTC_OFF_SIG, unfinished.end(), [](uint8_t b) { return b == 0; }));
    CHECK(is_unfinished_area_page(unfinished));
    // The finished page differs only in the signature.
    Page done = make_area_page(src, from);
    CHECK(std::equal(unfinished.begin(), unfinished.begin() + NTC_OFF_SIG, done.begin()));

    CHECK_FALSE(is_unfinished_area_page(done));
    CHECK_FALSE(is_unfinished_area_page(src));
    CHECK_FALSE(is_unfinished_area_page(Page{}));
    unfinished[100] ^= 0x40;  // a damaged record
    CHECK_FALSE(is_unfinished_area_page(unfinished));
}

TEST_CASE("a page without a swap signature is not swap, and cannot become an area") {
    Page zero{};
    CHECK(inspect_swap_area(zero).kind == AreaKind::not_swap);
    CHECK_THROWS_AS(make_area_page(zero, AreaSource{}), std::runtime_error);
}

TEST_CASE("check_image accepts a sound checkpoint, single and multi map page") {
    for (uint64_t data_pages : {5ull, 510ull, 511ull, 1200ull}) {
        CAPTURE(data_pages);
        AreaWithImage a(data_pages);
        ImageCheck c = a.check();
        CHECK(c.ok());
        CHECK(c.pages_walked == data_pages + 1);
        CHECK(c.map_pages == (data_pages + 1 + 510) / 511);
        REQUIRE(c.info);
        CHECK(c.info->pages == data_pages + 1);
    }
}

TEST_CASE("map_image reads the header and PFN pages only, and gives the data pages' slots in stream order") {
    for (uint64_t data_pages : {5ull, 513ull, 1200ull}) {
        CAPTURE(data_pages);
        FakeStream stream;
        for (uint64_t pfn = 0; pfn < data_pages; pfn++) stream.pfns.push_back(pfn);
        AreaWithImage a(data_pages, stream);
        auto bytes = read_bytes(a.path, 0, 8 * MiB);
        Page p0;
        std::copy_n(bytes.begin(), NTC_PAGE_SIZE, p0.begin());
        MemoryPages pages(bytes);
        std::vector<uint64_t> seen, slots;
        ImageCheck c = map_image(
            pages, inspect_swap_area(p0), [&](uint64_t i, PageView) { seen.push_back(i); }, slots);
        CHECK(c.ok());
        uint64_t meta = (data_pages + 511) / 512;
        CHECK(seen.size() == 1 + meta);
        REQUIRE(slots.size() == data_pages);
        CHECK(std::equal(slots.begin(), slots.end(), a.image.entries.begin() + 1 + long(meta)));
        // The CRC of the pages read; with the data's, check_image's.
        uint32_t crc = c.crc32;
        for (uint64_t slot : slots) crc = crc32_update(crc, {&bytes[slot * NTC_PAGE_SIZE], NTC_PAGE_SIZE});
        CHECK(crc == a.check().crc32);
    }
}

TEST_CASE("map_image refuses a compressed image, whose pages have no slots of their own") {
    AreaWithImage a(5);
    auto bytes = read_bytes(a.path, 0, 8 * MiB);
    Page p0;
    std::copy_n(bytes.begin(), NTC_PAGE_SIZE, p0.begin());
    SwapArea area = inspect_swap_area(p0);
    area.image_flags &= ~NTC_SF_NOCOMPRESS_MODE;
    MemoryPages pages(bytes);
    std::vector<uint64_t> slots;
    ImageCheck c = map_image(pages, area, {}, slots);
    REQUIRE_FALSE(c.ok());
    CHECK(c.problems[0].find("compressed") != std::string::npos);
}

TEST_CASE("check_image stops at a map chain that loops back on itself") {
    AreaWithImage a(1021);  // 1022 pages: two full map pages
    REQUIRE(a.image.map_pages.size() == 2);
    a.poke_u64(a.image.map_pages[1], NTC_MAP_PAGE_ENTRIES, a.image.first_map_page);
    // The header claims more pages, so the walk follows next_swap.
    a.poke_u64(a.image.entries[0], offsetof(ntc_swsusp_info, pages) / 8, 1500);
    a.poke_u64(a.image.entries[0], offsetof(ntc_swsusp_info, size) / 8, 1500 * NTC_PAGE_SIZE);
    ImageCheck c = a.check();
    REQUIRE_FALSE(c.ok());
    CHECK(c.problems[0].find("swap map page at page " + std::to_string(a.image.first_map_page) + " is used twice") !=
          std::string::npos);
}

TEST_CASE("check_image rejects damaged images") {
    AreaWithImage a(600);
    const uint64_t map0 = a.image.first_map_page;

    SUBCASE("entry outside the partition") {
        a.poke_u64(map0, 3, 1u << 30);
        ImageCheck c = a.check();
        REQUIRE_FALSE(c.ok());
        CHECK(c.problems[0].find("outside") != std::string::npos);
    }
    SUBCASE("the same page twice") {
        a.poke_u64(map0, 4, a.image.entries[3]);
        ImageCheck c = a.check();
        REQUIRE_FALSE(c.ok());
        CHECK(c.problems[0].find("twice") != std::string::npos);
    }
    SUBCASE("a map entry pointing at a map page") {
        a.poke_u64(map0, 7, a.image.map_pages[1]);
        CHECK_FALSE(a.check().ok());
    }
    SUBCASE("a flipped byte in a data page breaks the CRC") {
        auto b = read_bytes(a.path, a.image.entries[42] * NTC_PAGE_SIZE + 9, 1);
        b[0] ^= 1;
        write_bytes(a.path, a.image.entries[42] * NTC_PAGE_SIZE + 9, b);
        ImageCheck c = a.check();
        REQUIRE_FALSE(c.ok());
        CHECK(c.problems[0].find("CRC") != std::string::npos);
    }
    SUBCASE("the map ends before the header's page count") {
        a.poke_u64(a.image.map_pages[1], 10, 0);
        ImageCheck c = a.check();
        REQUIRE_FALSE(c.ok());
        CHECK(c.problems[0].find("ends after") != std::string::npos);
    }
    SUBCASE("inconsistent page counts in the image header") {
        a.poke_u64(a.image.entries[0], offsetof(ntc_swsusp_info, pages) / 8, 1u << 28);
        CHECK_FALSE(a.check().ok());
    }
}
