#pragma once
// Disk 2 as ntc.ko leaves it after each checkpoint, and
// scripts/ntc-ship-loop.sh run on it towards a copy, here or over ssh:
// shared by the checkpoint stream's tests and the one through a real sshd.
#include "ntc/change_history.h"
#include "support.h"

#include <array>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace testsupport {

// Disk 2 as ntc.ko leaves it after each checkpoint: the blocks it wrote, a
// change history of the generations since the first listing them, and
// page 0 with the next generation.
struct FakeDisk2 {
    static constexpr uint64_t kBlock = NTC_PAGE_SIZE;

    TempDir dir;
    TestDisk disk;
    std::array<uint8_t, 16> area_id{};
    uint64_t generation = 0, since = 0;
    std::vector<ntc_history_extent> extents;
    std::vector<uint64_t> chain_slots;
    std::map<uint64_t, std::set<uint64_t>> written;  // blocks each generation wrote, page 0 aside
    std::map<uint64_t, std::string> digests;         // the disk's at each generation

    explicit FakeDisk2(uint8_t id = 1) {
        disk = make_area_disk(dir, "disk2.img", 21);
        area_id.fill(id);
        checkpoint({{300, 8}, {4400, 3}});
    }

    const std::string& path() const { return disk.path; }
    uint64_t page0_block() const { return disk.swap_offset / kBlock; }

    void checkpoint(const std::vector<ntc::BlockRun>& writes) {
        const uint64_t g = ++generation;
        for (const ntc::BlockRun& run : writes) {
            for (uint64_t b = run.first; b < run.end(); b++) {
                std::vector<uint8_t> data(kBlock);
                for (size_t i = 0; i < kBlock; i++) data[i] = static_cast<uint8_t>(b * 31 + g * 7 + i);
                write_bytes(disk.path, b * kBlock, data);
                written[g].insert(b);
            }
        }
        ntc_record rec = record();
        if (g == 1) {
            since = 1;
        } else {
            for (uint64_t slot : chain_slots) extents.push_back({page0_block() + slot, g - 1, 1, 0});
            for (const ntc::BlockRun& run : writes)
                extents.push_back({run.first, g, static_cast<uint32_t>(run.count), 0});
            write_chain(g, rec);
        }
        std::memcpy(rec.area_id, area_id.data(), 16);
        rec.state = NTC_STATE_CHECKPOINT;
        rec.generation = g;
        rec.history_since = since;
        rec.time_unix_ns = (1795000000 + g) * 1000000000ull;
        write_page0(rec, NTC_HIBERNATE_SIG);
        digests[g] = file_digest(disk.path);
    }

    void write_chain(uint64_t g, ntc_record& rec) {
        const FakeChain chain =
            write_fake_chain(disk.path, disk.swap_offset, NTC_HISTORY_MAGIC, extents, 3000 + (g % 2) * 500);
        chain_slots.clear();
        for (uint64_t slot = chain.first_slot; slot < chain.first_slot + chain.pages; slot++) {
            chain_slots.push_back(slot);
            written[g].insert(page0_block() + slot);
        }
        rec.history_slot = chain.first_slot;
        rec.history_pages = chain.pages;
        rec.history_crc32 = chain.crc32;
    }

    void write_history_page(uint64_t slot, const ntc_chain_page& page) {
        auto* p = reinterpret_cast<const uint8_t*>(&page);
        write_bytes(disk.path, disk.swap_offset + slot * kBlock, {p, p + sizeof page});
    }
    ntc_chain_page history_page(uint64_t slot) {
        ntc_chain_page page;
        std::vector<uint8_t> bytes = read_bytes(disk.path, disk.swap_offset + slot * kBlock, kBlock);
        std::memcpy(&page, bytes.data(), sizeof page);
        return page;
    }

    ntc_record record() {
        ntc_record rec;
        std::memcpy(&rec, read_bytes(disk.path, disk.swap_offset, sizeof rec).data(), sizeof rec);
        return rec;
    }
    void write_page0(ntc_record rec, const char* sig) {
        std::vector<uint8_t> page0 = read_bytes(disk.path, disk.swap_offset, kBlock);
        ntc::seal_record(rec);
        std::memcpy(page0.data(), &rec, sizeof rec);
        std::memcpy(page0.data() + NTC_OFF_ORIG_SIG, NTC_SWAP_SIG, NTC_SIG_LEN);
        std::memcpy(page0.data() + NTC_OFF_SIG, sig, NTC_SIG_LEN);
        write_bytes(disk.path, disk.swap_offset, page0);
    }
    // What ntc.ko does first of all in a checkpoint.
    void begin_checkpoint() {
        ntc_record rec = record();
        rec.state = NTC_STATE_WRITING;
        write_page0(rec, NTC_AREA_SIG);
    }

    // Blocks a copy at `g` lacks, page 0 aside.
    uint64_t blocks_written_after(uint64_t g) const {
        std::set<uint64_t> blocks;
        for (const auto& [gen, set] : written)
            if (gen > g) blocks.insert(set.begin(), set.end());
        return blocks.size();
    }
};

inline const std::string send_bin = NTC_SEND_BIN;
inline const std::string receive_bin = NTC_RECEIVE_BIN;
inline const std::string ntc_bin_dir = std::filesystem::path(NTC_SEND_BIN).parent_path();
inline const std::string ship_loop = NTC_SHIP_LOOP;

// Rounds of scripts/ntc-ship-loop.sh --once --keep 1 from d to `copy`, or to
// HOST:copy through the `ssh` in ssh_dir, with the build's ntc-send and
// ntc-receive on both sides (NTC_BIN), each bounded to 2 minutes.
struct ShipLoop {
    FakeDisk2& d;
    std::string copy;
    std::string ssh_dir;

    CommandRun once(const std::string& host = "") const {
        const std::string dest = host.empty() ? copy : host + ":" + copy;
        const std::string path = ssh_dir.empty() ? "" : "PATH='" + ssh_dir + "':\"$PATH\" ";
        return run_command(path + "NTC_BIN='" + ntc_bin_dir + "' timeout 120 " + ship_loop + " --once --keep 1 '" +
                           d.path() + "' \"" + dest + "\" </dev/null");
    }

    // The first round sends everything, the next one what checkpoint 2
    // wrote, and keeps generation 1.
    void check_generations_1_and_2(const std::string& host = "") const {
        const CommandRun first = once(host);
        INFO("the first round said:\n" << first.output);
        CHECK(first.status == 0);
        CHECK(first.output.find("is at generation 1 (new, full)") != std::string::npos);
        CHECK(file_digest(copy) == d.digests[1]);

        d.checkpoint({{1000, 4}});
        const CommandRun second = once(host);
        INFO("the second round said:\n" << second.output);
        CHECK(second.status == 0);
        CHECK(second.output.find("generation 1 -> 2") != std::string::npos);
        CHECK(second.output.find("is at generation 2 (from 1)") != std::string::npos);
        CHECK(file_digest(copy) == d.digests[2]);
        CHECK(file_digest(copy + ".gen-1") == d.digests[1]);
    }

    // A round towards a site ssh cannot reach, with a new checkpoint to
    // send: it fails with ssh's word, and the copy stays as it was.
    void check_unreachable(const std::string& host, const std::string& ssh_says) const {
        const std::string before = file_digest(copy);
        d.checkpoint({{2000, 4}});
        CommandRun r = once(host);
        INFO("the round said:\n" << r.output);
        CHECK(r.status != 0);
        CHECK(r.output.find(ssh_says) != std::string::npos);
        CHECK(file_digest(copy) == before);
    }
};

}  // namespace testsupport
