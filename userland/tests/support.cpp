#include "support.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fstream>
#include <random>

namespace testsupport {

TempDir::TempDir() {
    char tmpl[] = "/tmp/ntc-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
}

TempDir::~TempDir() { sh("rm -rf '" + path + "'"); }

int sh(const std::string& cmd) {
    int rc = std::system(("{ " + cmd + "\n} >/dev/null 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string sh_output(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

CommandRun run_command(const std::string& cmd, const std::string& redirect) {
    std::string out = sh_output("{ " + cmd + "; } " + redirect + "; echo \"@rc=$?\"");
    size_t at = out.rfind("@rc=");
    REQUIRE(at != std::string::npos);
    return {std::stoi(out.substr(at + 4)), out.substr(0, at)};
}

void must(const std::string& cmd) {
    INFO("command: " << cmd);
    REQUIRE(sh(cmd) == 0);
}

void make_tree(const std::string& dir, unsigned seed) {
    must("mkdir -p '" + dir + "/etc' '" + dir + "/var/lib/deep/deeper' '" + dir + "/empty'");
    std::mt19937 rng(seed);
    for (int i = 0; i < 20; i++) {
        std::ofstream f(dir + "/var/lib/deep/file" + std::to_string(i));
        f << "file " << i << " seed " << seed << " " << rng() << "\n";
    }
    std::ofstream big(dir + "/etc/big.bin", std::ios::binary);
    for (int i = 0; i < 600 * 1024 / 4; i++) {
        uint32_t v = rng();
        big.write(reinterpret_cast<const char*>(&v), sizeof v);
    }
    std::ofstream(dir + "/etc/hostname") << "ntc-test\n";
    must("ln -sf /etc/hostname '" + dir + "/var/link'");
}

namespace {

void format_partitions(const TestDisk& d, const std::string& tree) {
    must("mkfs.ext4 -q -F -b 4096 -L troot -E offset=" + std::to_string(d.ext_offset) + " -d '" + tree + "' '" +
         d.path + "' 16M");
    must("head -c 4M /dev/urandom | dd of='" + d.path + "' bs=1M seek=17 conv=notrunc status=none");
    must("truncate -s 16M '" + d.path + ".swap' && mkswap -L tswap '" + d.path + ".swap' && dd if='" + d.path +
         ".swap' of='" + d.path + "' bs=4096 count=1 seek=" + std::to_string(d.swap_offset / 4096) +
         " conv=notrunc status=none && rm '" + d.path + ".swap'");
}

// Writes the partition table that `table` (an sfdisk script) describes;
// sfdisk, not sgdisk, which sleeps a second after every write.  Its output
// is shown only when it fails: it always warns that the partitions it
// makes hold the signatures written above.
void partition(const TestDisk& d, const std::string& table) {
    CommandRun r = run_command("printf '" + table + "' | sfdisk -q '" + d.path + "'");
    INFO("sfdisk: " << r.output);
    REQUIRE(r.status == 0);
}

TestDisk new_disk(const TempDir& dir, const std::string& name, const std::string& tree) {
    TestDisk d;
    d.path = dir / name;
    must("truncate -s 48M '" + d.path + "'");
    format_partitions(d, tree);
    return d;
}

}  // namespace

TestDisk make_gpt_disk(const TempDir& dir, const std::string& name, const std::string& tree) {
    TestDisk d = new_disk(dir, name, tree);
    const std::string data = "0FC63DAF-8483-4772-8E79-3D69D8477DE4", swap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
    partition(d, "label: gpt\\nstart=2048, size=32768, type=" + data + ", name=root\\nstart=34816, size=8192, type=" +
                     data + ", name=raw\\nstart=43008, size=32768, type=" + swap + ", name=swap\\n");
    return d;
}

TestDisk make_mbr_disk(const TempDir& dir, const std::string& name, const std::string& tree) {
    TestDisk d = new_disk(dir, name, tree);
    partition(d, "label: dos\\nlabel-id: 0x1234abcd\\nstart=2048, size=32768, type=83\\n"
                 "start=34816, size=8192, type=83\\nstart=43008, size=32768, type=82\\n");
    return d;
}

TestDisk make_area_disk(const TempDir& dir, const std::string& name, unsigned seed) {
    make_tree(dir / "tree", seed);
    TestDisk d = make_gpt_disk(dir, name, dir / "tree");
    std::vector<uint8_t> swap = read_bytes(d.path, d.swap_offset, NTC_PAGE_SIZE);
    ntc::Page area = ntc::make_area_page(ntc::PageView(swap.data(), NTC_PAGE_SIZE), ntc::AreaSource{});
    write_bytes(d.path, d.swap_offset, {area.begin(), area.end()});
    return d;
}

std::vector<uint8_t> read_bytes(const std::string& path, uint64_t offset, size_t n) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    std::vector<uint8_t> out(n);
    f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
    REQUIRE(static_cast<size_t>(f.gcount()) == n);
    return out;
}

void write_bytes(const std::string& path, uint64_t offset, const std::vector<uint8_t>& data) {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    REQUIRE(f.good());
}

std::string file_digest(const std::string& path) { return sh_output("sha256sum '" + path + "' | cut -d' ' -f1"); }

FakeImage write_fake_checkpoint(const std::string& disk, uint64_t area_offset, uint64_t data_pages, uint64_t sequence,
                                const FakeStream& stream) {
    constexpr uint64_t pfns_per_page = NTC_PAGE_SIZE / sizeof(uint64_t);
    if (!stream.pfns.empty()) data_pages = stream.pfns.size();
    uint64_t pfn_pages = (stream.pfns.size() + pfns_per_page - 1) / pfns_per_page;
    FakeImage img;
    img.pages = 1 + pfn_pages + data_pages;
    // Map pages first, then image pages, from page 1 on, as free slots.
    uint64_t nmaps = (img.pages + NTC_MAP_PAGE_ENTRIES - 1) / NTC_MAP_PAGE_ENTRIES;
    uint64_t next = 1;
    for (uint64_t i = 0; i < nmaps; i++) img.map_pages.push_back(next++);
    for (uint64_t i = 0; i < img.pages; i++)
        img.entries.push_back(stream.slots_descending ? next + img.pages - 1 - i : next + i);
    img.first_map_page = img.map_pages[0];

    uint32_t crc = 0;
    for (uint64_t i = 0; i < img.pages; i++) {
        ntc::Page page{};
        if (i == 0) {
            ntc_swsusp_info info{};
            info.jump_address = stream.jump_address;
            info.jump_address_phys = stream.jump_address_phys;
            info.cr3 = stream.cr3;
            info.magic = NTC_X86_RESTORE_MAGIC;
            info.e820_checksum = stream.e820_checksum;
            info.num_physpages = 131072;
            info.image_pages = data_pages;
            info.pages = img.pages;
            info.size = img.pages * NTC_PAGE_SIZE;
            std::memcpy(page.data(), &info, sizeof info);
        } else if (i <= pfn_pages) {
            uint64_t first = (i - 1) * pfns_per_page;
            uint64_t n = std::min<uint64_t>(pfns_per_page, stream.pfns.size() - first);
            std::memcpy(page.data(), stream.pfns.data() + first, n * sizeof(uint64_t));
        } else {
            for (size_t b = 0; b < page.size(); b++) page[b] = static_cast<uint8_t>(i * 7 + b);
        }
        crc = ntc::crc32_update(crc, page);
        write_bytes(disk, area_offset + img.entries[i] * NTC_PAGE_SIZE, std::vector<uint8_t>(page.begin(), page.end()));
    }
    for (uint64_t m = 0; m < nmaps; m++) {
        ntc_swap_map_page map{};
        for (uint64_t k = 0; k < NTC_MAP_PAGE_ENTRIES; k++) {
            uint64_t idx = m * NTC_MAP_PAGE_ENTRIES + k;
            if (idx < img.pages) map.entries[k] = img.entries[idx];
        }
        map.next_swap = m + 1 < nmaps ? img.map_pages[m + 1] : 0;
        auto* p = reinterpret_cast<const uint8_t*>(&map);
        write_bytes(disk, area_offset + img.map_pages[m] * NTC_PAGE_SIZE, std::vector<uint8_t>(p, p + sizeof map));
    }

    std::vector<uint8_t> page0 = read_bytes(disk, area_offset, NTC_PAGE_SIZE);
    ntc_record rec;
    std::memcpy(&rec, page0.data(), sizeof rec);
    rec.state = NTC_STATE_CHECKPOINT;
    rec.sequence = sequence;
    rec.time_unix_ns = 1795000000ull * 1000000000ull;
    rec.pause_us = 123456;
    rec.total_ms = 2000;
    rec.image_pages = img.pages;
    rec.image_crc32 = crc;
    rec.cpus = 2;
    rec.ram_bytes = 512 * MiB;
    std::strcpy(rec.kernel_release, "6.1.0-test-amd64");
    std::strcpy(rec.machine, "x86_64");
    ntc::seal_record(rec);
    std::memcpy(page0.data(), &rec, sizeof rec);
    ntc_swsusp_header hdr;
    std::memcpy(&hdr, page0.data(), sizeof hdr);
    hdr.image = img.first_map_page;
    hdr.flags = NTC_SF_NOCOMPRESS_MODE;
    std::memcpy(hdr.orig_sig, NTC_SWAP_SIG, NTC_SIG_LEN);
    std::memcpy(hdr.sig, NTC_HIBERNATE_SIG, NTC_SIG_LEN);
    std::memcpy(page0.data() + offsetof(ntc_swsusp_header, hw_sig),
                reinterpret_cast<const uint8_t*>(&hdr) + offsetof(ntc_swsusp_header, hw_sig),
                NTC_PAGE_SIZE - offsetof(ntc_swsusp_header, hw_sig));
    write_bytes(disk, area_offset, page0);
    return img;
}

void change_record(const std::string& disk, uint64_t area_offset, const std::function<void(ntc_record&)>& change) {
    std::vector<uint8_t> page0 = read_bytes(disk, area_offset, NTC_PAGE_SIZE);
    ntc_record rec;
    std::memcpy(&rec, page0.data(), sizeof rec);
    change(rec);
    ntc::seal_record(rec);
    std::memcpy(page0.data(), &rec, sizeof rec);
    write_bytes(disk, area_offset, page0);
}

template <typename ChainExtent>
FakeChain write_fake_chain(const std::string& disk, uint64_t area_offset, const char* magic,
                           const std::vector<ChainExtent>& extents, uint64_t first_slot) {
    constexpr size_t per_page = NTC_CHAIN_PAGE_ENTRIES;
    FakeChain chain;
    chain.pages = static_cast<uint32_t>((extents.size() + per_page - 1) / per_page);
    if (chain.pages) chain.first_slot = first_slot;
    for (uint32_t i = 0; i < chain.pages; i++) {
        ntc_chain_page page{};
        std::memcpy(page.magic, magic, sizeof page.magic);
        page.next_slot = i + 1 < chain.pages ? first_slot + i + 1 : 0;
        for (size_t k = i * per_page; k < extents.size() && page.count < per_page; k++)
            std::memcpy(&page.extents[page.count++], &extents[k], sizeof extents[k]);
        auto* p = reinterpret_cast<const uint8_t*>(&page);
        write_bytes(disk, area_offset + (first_slot + i) * NTC_PAGE_SIZE, {p, p + sizeof page});
        chain.crc32 = ntc::crc32_update(chain.crc32, {p, sizeof page});
    }
    return chain;
}

template FakeChain write_fake_chain(const std::string&, uint64_t, const char*, const std::vector<ntc_history_extent>&,
                                    uint64_t);
template FakeChain write_fake_chain(const std::string&, uint64_t, const char*, const std::vector<ntc_journal_extent>&,
                                    uint64_t);
template FakeChain write_fake_chain(const std::string&, uint64_t, const char*, const std::vector<ntc_holding_extent>&,
                                    uint64_t);

void write_fake_journal(const std::string& disk, uint64_t area_offset, const std::vector<ntc_journal_extent>& extents,
                        uint64_t first_slot) {
    const FakeChain chain = write_fake_chain(disk, area_offset, NTC_JOURNAL_MAGIC, extents, first_slot);
    change_record(disk, area_offset, [&](ntc_record& rec) {
        rec.flags |= NTC_RECORD_JOURNAL;
        rec.journal_slot = chain.first_slot;
        rec.journal_pages = chain.pages;
        rec.journal_crc32 = chain.crc32;
        rec.journal_blocks = 0;
        for (const ntc_journal_extent& e : extents) rec.journal_blocks += e.blocks;
    });
}

void write_fake_holdings(const std::string& disk, uint64_t area_offset, const std::vector<ntc_holding_extent>& extents,
                         uint64_t first_slot) {
    const FakeChain chain = write_fake_chain(disk, area_offset, NTC_HOLDINGS_MAGIC, extents, first_slot);
    change_record(disk, area_offset, [&](ntc_record& rec) {
        rec.holdings_slot = chain.first_slot;
        rec.holdings_pages = chain.pages;
        rec.holdings_crc32 = chain.crc32;
    });
}

}  // namespace testsupport
