#pragma once
// Test support: temporary directories and small disk images made with the
// same tools a user has (sgdisk, sfdisk, mkfs.ext4 -d, mkswap); nothing is
// mounted and nothing needs root.
#include "ntc/swap_area.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace testsupport {

constexpr uint64_t MiB = 1024 * 1024;

struct TempDir {
    TempDir();
    ~TempDir();
    std::string path;
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs a shell command; returns its exit status.
int sh(const std::string& cmd);
std::string sh_output(const std::string& cmd);
// A command's exit status and what it printed (redirect: which of its
// streams; by default both).
struct CommandRun {
    int status;
    std::string output;
};
CommandRun run_command(const std::string& cmd, const std::string& redirect = "2>&1");
void must(const std::string& cmd);  // fails the test when cmd fails

// Writes a small file tree under dir (nested dirs, a few files, one larger).
void make_tree(const std::string& dir, unsigned seed);

// A GPT disk of 48 MiB: 1 ext4 "root" (16 MiB, files from tree),
// 2 raw data (4 MiB, random bytes), 3 swap (16 MiB, label "tswap").
// Partition starts: 1, 17, 21 MiB.
struct TestDisk {
    std::string path;
    uint64_t ext_offset = 1 * MiB, raw_offset = 17 * MiB, swap_offset = 21 * MiB;
    uint64_t swap_size = 16 * MiB;
};
TestDisk make_gpt_disk(const TempDir& dir, const std::string& name, const std::string& tree);
// The same layout with an MBR (DOS) partition table.
TestDisk make_mbr_disk(const TempDir& dir, const std::string& name, const std::string& tree);
// A GPT disk (files from a tree made with `seed`) as ntc-clone leaves disk
// 2: its swap partition a snapshot area without a checkpoint.
TestDisk make_area_disk(const TempDir& dir, const std::string& name, unsigned seed);

std::vector<uint8_t> read_bytes(const std::string& path, uint64_t offset, size_t n);
void write_bytes(const std::string& path, uint64_t offset, const std::vector<uint8_t>& data);
std::string file_digest(const std::string& path);  // sha256 of the whole file

struct FakeImage {
    uint64_t pages = 0;  // all image pages (header + PFN pages + data)
    uint64_t first_map_page = 0;
    std::vector<uint64_t> entries;  // page offsets of the image pages
    std::vector<uint64_t> map_pages;
};

// The image stream as snapshot.c lays it out, for readers that restore it:
// the header's restore fields, and the page frames of the data pages, which
// then follow PFN pages (unsigned longs) instead of the header directly.
struct FakeStream {
    std::vector<uint64_t> pfns;
    uint64_t jump_address = 0, jump_address_phys = 0, cr3 = 0, e820_checksum = 0;
    // The swap map names the stream's slots from the highest down, as an
    // incremental image names slots in no particular order.
    bool slots_descending = false;
};

// Writes a synthetic NTC checkpoint image into the swap area at
// area_offset: header page, data pages with a pattern (byte b of stream
// page i is i * 7 + b), stock swap map, swsusp_header with S1SUSPEND and an
// NTC record (state checkpoint) that counts and CRCs the pages the way
// ntc.ko does.  With stream.pfns, there is one data page per frame.
FakeImage write_fake_checkpoint(const std::string& disk, uint64_t area_offset, uint64_t data_pages,
                                uint64_t sequence = 1, const FakeStream& stream = {});

// Rewrites the NTC record of the area at area_offset as `change` leaves it,
// sealed again.
void change_record(const std::string& disk, uint64_t area_offset, const std::function<void(ntc_record&)>& change);

// A chain of pages in the area as the record names it.
struct FakeChain {
    uint64_t first_slot = 0;  // 0 when there are no pages
    uint32_t pages = 0;
    uint32_t crc32 = 0;
};

// Writes `extents` (the history's, the journal's or the holdings') into a
// chain of ntc_chain_pages with `magic`, each page as full as ntc.ko fills
// it, at slots first_slot, first_slot + 1, ... of the area at area_offset.
template <typename ChainExtent>
FakeChain write_fake_chain(const std::string& disk, uint64_t area_offset, const char* magic,
                           const std::vector<ChainExtent>& extents, uint64_t first_slot);

// Writes a redo journal of `extents` from first_slot on and names it in the
// record, as ntc.ko commits a checkpoint that kept the previous one.
void write_fake_journal(const std::string& disk, uint64_t area_offset, const std::vector<ntc_journal_extent>& extents,
                        uint64_t first_slot);

// Writes holdings of `extents` from first_slot on and names them in the
// record, as ntc.ko commits a checkpoint.
void write_fake_holdings(const std::string& disk, uint64_t area_offset, const std::vector<ntc_holding_extent>& extents,
                         uint64_t first_slot);

}  // namespace testsupport
