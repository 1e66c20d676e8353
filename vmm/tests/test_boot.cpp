#include <doctest/doctest.h>

#include <cstring>
#include <ntc/error.h>

#include "acpi.h"
#include "boot_params.h"
#include "e820.h"
#include "instance_record.h"
#include "layout.h"
#include "vm_generation.h"

using namespace ntc::vmm;

namespace {

// A minimal bzImage: setup header in the first sector, code after it.
std::vector<uint8_t> fake_bzimage(uint16_t version = 0x020f, uint16_t xloadflags = XLF_KERNEL_64) {
    std::vector<uint8_t> image(0x3000, 0);
    setup_header h{};
    h.setup_sects = 1;
    h.boot_flag = 0xaa55;
    h.jump = 0x6aeb;  // header length byte 0x6a at 0x201
    h.header = 0x53726448;
    h.version = version;
    h.xloadflags = xloadflags;
    h.init_size = 0x800000;
    h.initrd_addr_max = 0x7fffffff;
    h.cmdline_size = 2047;
    h.loadflags = LOADED_HIGH;
    std::memcpy(&image[0x1f1], &h, 0x202 + 0x6a - 0x1f1);
    image[0x400] = 0xcc;  // first byte of protected-mode code
    return image;
}

}  // namespace

TEST_CASE("e820 is a pure function of RAM size") {
    for (uint64_t mib : {64ull, 512ull, 3072ull, 4096ull, 16384ull}) {
        uint64_t ram = mib << 20;
        auto map = e820_map(ram);
        CHECK(map == e820_map(ram));
        uint64_t usable = 0;
        for (const auto& e : map)
            if (e.type == E820Type::Ram) usable += e.size;
        // Everything but the EBDA and the legacy hole is RAM the guest sees.
        CHECK(usable == ram - (layout::kKernelLoad - layout::kEbda));
        for (size_t i = 1; i < map.size(); i++) CHECK(map[i].address >= map[i - 1].address + map[i - 1].size);
    }
    auto small = e820_map(512ull << 20);
    REQUIRE(small.size() == 4);
    CHECK(small[3] == E820Entry{0x100000, (512ull << 20) - 0x100000, E820Type::Ram});
    auto big = e820_map(4ull << 30);
    REQUIRE(big.size() == 5);
    CHECK(big[3].address + big[3].size == 3ull << 30);
    CHECK(big[4] == E820Entry{4ull << 30, 1ull << 30, E820Type::Ram});
}

TEST_CASE("bzImage header is checked") {
    auto image = fake_bzimage();
    auto kernel = parse_bzimage(image);
    CHECK(kernel.code.size() == image.size() - 0x400);
    CHECK(kernel.code[0] == 0xcc);
    CHECK_THROWS_AS(parse_bzimage(fake_bzimage(0x0209)), ntc::Error);
    CHECK_THROWS_AS(parse_bzimage(fake_bzimage(0x020f, 0)), ntc::Error);
    image[0x202] = 'X';
    CHECK_THROWS_AS(parse_bzimage(image), ntc::Error);
    CHECK_THROWS_AS(parse_bzimage(std::vector<uint8_t>(100)), ntc::Error);
}

TEST_CASE("zero page carries command line, initrd, RSDP and e820") {
    auto image = fake_bzimage();
    auto kernel = parse_bzimage(image);
    auto e820 = e820_map(512ull << 20);
    auto p = make_boot_params(kernel, {0x20000, 0x1f000000, 0x123456, 0xe0000}, e820);
    CHECK(p.hdr.type_of_loader == 0xff);
    CHECK((p.hdr.loadflags & LOADED_HIGH));
    CHECK((p.hdr.loadflags & CAN_USE_HEAP));
    CHECK(uint64_t(p.hdr.cmd_line_ptr) == 0x20000);
    CHECK(uint64_t(p.hdr.ramdisk_image) == 0x1f000000);
    CHECK(uint64_t(p.hdr.ramdisk_size) == 0x123456);
    CHECK(uint64_t(p.acpi_rsdp_addr) == 0xe0000);
    CHECK(uint64_t(p.hdr.boot_flag) == 0xaa55);
    REQUIRE(size_t(p.e820_entries) == e820.size());
    CHECK(uint64_t(p.e820_table[3].addr) == 0x100000);
    CHECK(uint64_t(p.e820_table[3].type) == 1);
}

TEST_CASE("initrd goes high in low RAM, clear of the kernel") {
    auto kernel = parse_bzimage(fake_bzimage());
    uint64_t at = place_initrd(kernel.header, 512ull << 20, 10 << 20);
    CHECK(at % 4096 == 0);
    CHECK(at + (10 << 20) <= 512ull << 20);
    CHECK(at >= layout::kKernelLoad + kernel.header.init_size);
    CHECK_THROWS_AS(place_initrd(kernel.header, 16 << 20, 10 << 20), ntc::Error);
}

TEST_CASE("ACPI tables have valid checksums and list every CPU") {
    const uint64_t base = 0xe0000;
    auto t = build_acpi_tables(base, 4, 2);
    auto sum = [&](size_t off, size_t len) {
        uint8_t s = 0;
        for (size_t i = 0; i < len; i++) s += t[off + i];
        return s;
    };
    CHECK(std::memcmp(t.data(), "RSD PTR ", 8) == 0);
    CHECK(sum(0, 20) == 0);
    CHECK(sum(0, 36) == 0);
    uint64_t xsdt;
    std::memcpy(&xsdt, &t[24], 8);
    size_t xoff = xsdt - base;
    uint32_t xlen;
    std::memcpy(&xlen, &t[xoff + 4], 4);
    CHECK(sum(xoff, xlen) == 0);
    int lapics = -1;
    for (size_t entry = xoff + 36; entry < xoff + xlen; entry += 8) {
        uint64_t addr;
        std::memcpy(&addr, &t[entry], 8);
        size_t off = addr - base;
        uint32_t len;
        std::memcpy(&len, &t[off + 4], 4);
        CHECK(sum(off, len) == 0);
        if (std::memcmp(&t[off], "APIC", 4) == 0) {
            lapics = 0;
            for (size_t e = off + 44; e < off + len; e += t[e + 1])
                if (t[e] == 0) lapics++;
        }
        if (std::memcmp(&t[off], "FACP", 4) == 0) {
            uint64_t dsdt;
            std::memcpy(&dsdt, &t[off + 140], 8);
            CHECK(std::memcmp(&t[dsdt - base], "DSDT", 4) == 0);
            uint32_t dlen;
            std::memcpy(&dlen, &t[dsdt - base + 4], 4);
            CHECK(sum(dsdt - base, dlen) == 0);
            std::string aml(t.begin() + long(dsdt - base), t.begin() + long(dsdt - base + dlen));
            CHECK(aml.find("_S5_") != std::string::npos);
            CHECK(aml.find("_PRT") != std::string::npos);
        }
    }
    CHECK(lapics == 4);
}

namespace {

// AML as the tests spell it: names and bytes, joined.
std::vector<int> text(const char* s) { return std::vector<int>(s, s + std::strlen(s)); }
std::vector<int> join(std::initializer_list<std::vector<int>> parts) {
    std::vector<int> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace

TEST_CASE("the tables present the VM generation ID at its address and announce a new one through GPE 0") {
    const uint64_t base = layout::kAcpiTables;
    auto t = build_acpi_tables(base, 2, 2);
    auto has = [&](const std::vector<int>& bytes) {
        std::string wanted(bytes.begin(), bytes.end());
        return std::string(t.begin(), t.end()).find(wanted) != std::string::npos;
    };
    // Name (_HID, "VMGENCTR"), the ID Linux's vmgenid driver matches.
    CHECK(has(join({{0x08}, text("_HID"), {0x0d}, text("VMGENCTR"), {0x00}})));
    // Name (ADDR, Package (2) {0xff000, 0}): the ID's address, low and high dwords.
    static_assert(layout::kVmGenerationId == 0xff000);
    CHECK(has(join({{0x08}, text("ADDR"), {0x12, 0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0f, 0x00, 0x00}})));
    // Method (_E00) { Notify (\_SB.VGEN, 0x80) } in Scope (\_GPE).
    CHECK(has(join({text("_E00"), {0x00, 0x86, 0x5c, 0x2e}, text("_SB_VGEN"), {0x0a, 0x80}})));
    CHECK(has(join({{0x5c}, text("_GPE"), {0x14}})));
    CHECK(has(join({{0x5b, 0x82}, {0x22}, text("VGEN")})));  // Device (VGEN), 33 bytes after its length

    uint64_t xsdt;
    std::memcpy(&xsdt, &t[24], 8);
    uint64_t fadt;
    std::memcpy(&fadt, &t[xsdt - base + 36], 8);
    REQUIRE(std::memcmp(&t[fadt - base], "FACP", 4) == 0);
    size_t f = fadt - base;
    uint32_t gpe0;
    std::memcpy(&gpe0, &t[f + 80], 4);
    CHECK(gpe0 == layout::kGpe0Block);
    CHECK(t[f + 92] == 2);   // a status byte and an enable byte
    CHECK(t[f + 220] == 1);  // X_GPE0_BLK: system I/O
    CHECK(t[f + 221] == 16);
    uint64_t x_gpe0;
    std::memcpy(&x_gpe0, &t[f + 224], 8);
    CHECK(x_gpe0 == layout::kGpe0Block);
}

TEST_CASE("the instance name is checked, and stored where \\NTCI says, NUL-terminated") {
    auto t = build_acpi_tables(layout::kAcpiTables, 1, 1);
    std::string tables(t.begin(), t.end());
    // Name (NTCI, Package (2) {0xff010, 104}) at the root.
    static_assert(layout::kInstanceRecord == 0xff010 && layout::kInstanceRecordBytes == 104);
    auto ntci = join({{0x08}, text("NTCI"), {0x12, 0x09, 0x02, 0x0c, 0x10, 0xf0, 0x0f, 0x00, 0x0a, 0x68}});
    CHECK(tables.find(std::string(ntci.begin(), ntci.end())) != std::string::npos);

    std::vector<uint8_t> ram(2 << 20, 0xee);
    GuestMemory memory({{0, ram.size(), ram.data()}});
    const MacAddress mac{0x02, 0x4e, 0x54, 1, 2, 3};
    store_instance_record(memory, "inst-1.a_b", {{3 << 3, mac}});
    ntc_instance_record record;
    std::memcpy(&record, &ram[layout::kInstanceRecord], sizeof record);
    CHECK(std::string(record.name) == "inst-1.a_b");
    CHECK(record.card_count == 1);
    CHECK(record.cards[0].devfn == (3 << 3));
    CHECK(std::memcmp(record.cards[0].mac, mac.data(), 6) == 0);
    CHECK(ram[layout::kInstanceRecord + layout::kInstanceRecordBytes] == 0xee);
    store_instance_record(memory, "", {});
    CHECK(ram[layout::kInstanceRecord] == 0);
    CHECK(ram[layout::kInstanceRecord + offsetof(ntc_instance_record, card_count)] == 0);
    CHECK_NOTHROW(check_instance_name(std::string(kInstanceNameMax, 'x')));
    CHECK_THROWS_AS(check_instance_name(std::string(kInstanceNameMax + 1, 'x')), ntc::Error);
    CHECK_THROWS_AS(check_instance_name("a b"), ntc::Error);
    CHECK_THROWS_AS(check_instance_name("a;rm"), ntc::Error);
    CHECK_THROWS_AS(store_instance_record(memory, "x/y", {}), ntc::Error);
    CHECK_THROWS_AS(store_instance_record(memory, "x", std::vector<InstanceCard>(5, {0, mac})), ntc::Error);
    CHECK(ram[layout::kInstanceRecord] == 0);  // a refusal changes nothing
}

TEST_CASE("each boot or resume stores a new VM generation ID") {
    std::vector<uint8_t> ram(2 << 20, 0);
    GuestMemory memory({{0, ram.size(), ram.data()}});
    VmGenerationId first = new_vm_generation_id(), second = new_vm_generation_id();
    CHECK(first != second);
    store_vm_generation_id(memory, first);
    CHECK(std::equal(first.begin(), first.end(), &ram[layout::kVmGenerationId]));
    CHECK(ram[layout::kVmGenerationId + 16] == 0);
}
