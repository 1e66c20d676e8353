// ntc-send and ntc-receive over a synthetic disk 2: checkpoints as ntc.ko
// leaves them (blocks written, a change history, page 0 last), shipped in
// full and incrementally, and every way a stream or a copy can go wrong.
#include "checkpoint_shipping.h"
#include "ntc/change_history.h"
#include "ntc/checkpoint_sender.h"
#include "ntc/checkpoint_stream.h"
#include "ntc/disk_report.h"
#include "ntc/snapshot_area.h"
#include "ntc/stream_receiver.h"
#include "support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

using namespace ntc;
using namespace testsupport;

namespace {

constexpr uint64_t kBlock = NTC_PAGE_SIZE;

SendResult send_to(const std::string& disk, const std::string& stream, SendOptions opts = {}) {
    int fd = ::open(stream.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    try {
        SendResult result = send_checkpoint(disk, fd, opts);
        ::close(fd);
        return result;
    } catch (...) {
        ::close(fd);
        throw;
    }
}

SendResult send_since(const std::string& disk, const std::string& stream, uint64_t since) {
    SendOptions opts;
    opts.since = since;
    return send_to(disk, stream, opts);
}

ReceiveResult receive_from(const std::string& copy, const std::string& stream, ReceiveOptions opts = {}) {
    int fd = ::open(stream.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    try {
        ReceiveResult result = receive_stream(copy, fd, opts);
        ::close(fd);
        return result;
    } catch (...) {
        ::close(fd);
        throw;
    }
}

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

uint64_t file_size(const std::string& path) {
    struct stat st;
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_size);
}

ntc_stream_header stream_header(const std::string& stream) {
    ntc_stream_header h;
    std::memcpy(&h, read_bytes(stream, 0, sizeof h).data(), sizeof h);
    return h;
}

AreaKind copy_area_kind(const FakeDisk2& d, const std::string& copy) {
    std::vector<uint8_t> page0 = read_bytes(copy, d.disk.swap_offset, kBlock);
    return inspect_swap_area(PageView(page0.data(), kBlock)).kind;
}

uint64_t nonzero_blocks(const std::string& path) {
    uint64_t n = 0, size = file_size(path);
    for (uint64_t at = 0; at < size; at += kBlock) {
        std::vector<uint8_t> block = read_bytes(path, at, kBlock);
        n += std::any_of(block.begin(), block.end(), [](uint8_t b) { return b != 0; });
    }
    return n;
}

// A copy of d at its current generation, received in full.
std::string full_copy(FakeDisk2& d) {
    std::string copy = d.dir / "copy.img", stream = d.dir / "full.stream";
    send_to(d.path(), stream);
    receive_from(copy, stream);
    return copy;
}

}  // namespace

TEST_CASE("a full stream makes a new file equal to disk 2, byte for byte, with the zero blocks left out") {
    FakeDisk2 d;
    std::string stream = d.dir / "full.stream", copy = d.dir / "copy.img";
    SendResult sent = send_to(d.path(), stream);
    CHECK(sent.full);
    CHECK(sent.from_generation == 0);
    CHECK(sent.to_generation == 1);
    CHECK(sent.blocks == nonzero_blocks(d.path()));
    CHECK(sent.blocks < file_size(d.path()) / kBlock);
    ntc_stream_header h = stream_header(stream);
    CHECK(h.flags == NTC_STREAM_FULL);
    CHECK(h.blocks == sent.blocks);
    CHECK(h.area_offset == d.disk.swap_offset);
    CHECK(std::memcmp(h.area_id, d.area_id.data(), 16) == 0);

    ReceiveResult got = receive_from(copy, stream);
    CHECK(got.full);
    CHECK(got.to_generation == 1);
    CHECK(got.blocks == sent.blocks);
    CHECK(file_digest(copy) == d.digests[1]);
    struct stat st;
    REQUIRE(::stat(copy.c_str(), &st) == 0);
    CHECK(uint64_t(st.st_blocks) * 512 < file_size(d.path()));  // sparse
    CHECK_FALSE(exists(copy + ".partial"));
}

TEST_CASE("the change history: read whole, and the blocks since a generation as sorted disjoint runs") {
    FakeDisk2 d;
    d.checkpoint({{500, 4}, {5376 + 10, 2}, {4400, 1}});
    d.checkpoint({{502, 6}, {5376 - 1, 3}});  // over page 0's block: the area's first slot is page 0
    DiskFile disk(d.path(), DiskFile::Mode::read);
    std::optional<SnapshotArea> area = find_snapshot_area(disk);
    REQUIRE(area);
    CHECK(area->page0_block() == 5376);
    ChangeHistory history = read_change_history(disk, *area);
    CHECK(history.since == 1);
    CHECK(history.generation == 3);
    CHECK(history.page_blocks == std::vector<uint64_t>{5376 + 3500});

    std::vector<BlockRun> runs = blocks_changed_since(history, 1, d.page0_block());
    std::vector<BlockRun> expected = {{500, 8},  {4400, 1},        {5375, 1},       {5377, 1},
                                      {5386, 2}, {5376 + 3000, 1}, {5376 + 3500, 1}};
    CHECK(runs == expected);
    CHECK(blocks_changed_since(history, 2, d.page0_block()) ==
          std::vector<BlockRun>{{502, 6}, {5375, 1}, {5377, 1}, {5376 + 3500, 1}});
    CHECK(error_of([&] { blocks_changed_since(history, 0, d.page0_block()); })
              .find("starts after generation 1; a copy at generation 0 needs everything: run ntc-send without "
                    "--since") != std::string::npos);
}

TEST_CASE("an incremental stream carries what changed since the copy's generation, and makes the copy equal") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    d.checkpoint({{1000, 16}, {4500, 2}, {5376 + 40, 5}});
    std::vector<BlockRun> scattered;  // 200 extents: a chain of two pages
    for (uint64_t b = 2000; b < 2400; b += 2) scattered.push_back({b, 1});
    d.checkpoint(scattered);
    REQUIRE(d.chain_slots.size() == 2);

    std::string stream = d.dir / "since1.stream";
    SendResult sent = send_since(d.path(), stream, 1);
    CHECK_FALSE(sent.full);
    CHECK(sent.from_generation == 1);
    CHECK(sent.to_generation == 3);
    CHECK(sent.blocks == d.blocks_written_after(1) + 1);
    CHECK(sent.blocks < 300);
    CHECK(stream_header(stream).blocks == sent.blocks);

    ReceiveResult got = receive_from(copy, stream);
    CHECK(got.from_generation == 1);
    CHECK(got.to_generation == 3);
    CHECK(got.blocks == sent.blocks);
    CHECK(file_digest(copy) == d.digests[3]);
    CHECK_FALSE(exists(copy + ".receiving"));
    CHECK(copy_area_kind(d, copy) == AreaKind::ntc_checkpoint);

    d.checkpoint({{1004, 2}});
    CHECK(send_since(d.path(), stream, 3).blocks == d.blocks_written_after(3) + 1);
    receive_from(copy, stream);
    CHECK(file_digest(copy) == d.digests[4]);
}

TEST_CASE("a stream from before the copy's generation applies: the blocks since then include the copy's") {
    FakeDisk2 d;
    d.checkpoint({{1000, 4}});
    std::string copy = full_copy(d);
    d.checkpoint({{1100, 4}});
    std::string stream = d.dir / "since1.stream";
    send_since(d.path(), stream, 1);
    ReceiveResult got = receive_from(copy, stream);
    CHECK(got.from_generation == 2);
    CHECK(got.to_generation == 3);
    CHECK(file_digest(copy) == d.digests[3]);
}

TEST_CASE("--since the disk's own generation: an empty stream, and nothing to do for the copy") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    std::string before = file_digest(copy), stream = d.dir / "empty.stream";
    SendResult sent = send_since(d.path(), stream, 1);
    CHECK(sent.from_generation == 1);
    CHECK(sent.to_generation == 1);
    CHECK(sent.blocks == 0);
    CHECK(sent.chunks == 0);
    CHECK(file_size(stream) == sizeof(ntc_stream_header) + sizeof(ntc_stream_chunk) + sizeof(ntc_stream_end));
    ReceiveResult got = receive_from(copy, stream);
    CHECK(got.nothing_to_do);
    CHECK(got.to_generation == 1);
    CHECK(file_digest(copy) == before);

    // A copy already past a stream's generation takes nothing from it either.
    d.checkpoint({{1000, 2}});
    send_since(d.path(), stream, 1);
    receive_from(copy, stream);
    std::string newer = file_digest(copy);
    CHECK(newer == d.digests[2]);
    CHECK(receive_from(copy, stream).nothing_to_do);
    CHECK(file_digest(copy) == newer);
}

TEST_CASE("a gap, another disk's stream and another disk size are refused, the copy unchanged") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    std::string before = file_digest(copy), stream = d.dir / "s.stream";
    d.checkpoint({{1000, 2}});
    d.checkpoint({{1100, 2}});

    send_since(d.path(), stream, 2);
    std::string why = error_of([&] { receive_from(copy, stream); });
    CHECK(why.find("gap: " + copy + " is at generation 1, the stream starts at 2; send with --since 1") !=
          std::string::npos);
    CHECK(file_digest(copy) == before);

    FakeDisk2 other(7);
    other.checkpoint({{1000, 2}});
    send_since(other.path(), stream, 1);
    why = error_of([&] { receive_from(copy, stream); });
    CHECK(why.find("is a copy of another disk (area 01010101-") != std::string::npos);
    CHECK(why.find("the stream is for area 07070707-") != std::string::npos);
    CHECK(file_digest(copy) == before);
    CHECK(error_of([&] { send_to(other.path(), stream); }).empty());
    CHECK(error_of([&] { receive_from(copy, stream); }).find("is a copy of another disk") != std::string::npos);
    CHECK(file_digest(copy) == before);

    send_since(d.path(), stream, 1);
    must("truncate -s +1M '" + copy + "'");
    std::string grown = file_digest(copy);
    why = error_of([&] { receive_from(copy, stream); });
    CHECK(why.find("it is a copy of another disk; receive a full stream into a new file") != std::string::npos);
    CHECK(file_digest(copy) == grown);
    CHECK_FALSE(exists(copy + ".receiving"));
}

TEST_CASE("a stream cut short or damaged anywhere is refused whole: the copy unchanged, no journal left") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    std::string before = file_digest(copy);
    d.checkpoint({{1000, 300}, {4500, 2}});
    std::string good = d.dir / "good.stream", bad = d.dir / "bad.stream";
    SendResult sent = send_since(d.path(), good, 1);
    const uint64_t size = file_size(good);
    const uint64_t first_data = sizeof(ntc_stream_header) + sizeof(ntc_stream_chunk);
    const uint64_t second_chunk = first_data + uint64_t{NTC_STREAM_MAX_CHUNK_BLOCKS} * kBlock;
    REQUIRE(sent.chunks >= 3);

    for (uint64_t cut : {uint64_t{0}, uint64_t{60}, first_data + 100, second_chunk + 8, size - 40, size - 1}) {
        INFO("cut at " << cut);
        must("head -c " + std::to_string(cut) + " '" + good + "' > '" + bad + "'");
        std::string why = error_of([&] { receive_from(copy, bad); });
        CHECK_FALSE(why.empty());
        if (cut > 0) CHECK(why.find("ends early") != std::string::npos);
        CHECK(file_digest(copy) == before);
        CHECK_FALSE(exists(copy + ".receiving"));
    }
    for (uint64_t at : {uint64_t{20}, first_data + 5000, second_chunk, second_chunk + 12, size - 20, size - 30}) {
        INFO("byte flipped at " << at);
        must("cp '" + good + "' '" + bad + "'");
        write_bytes(bad, at, {static_cast<uint8_t>(read_bytes(good, at, 1)[0] ^ 0x40)});
        std::string why = error_of([&] { receive_from(copy, bad); });
        CHECK(why.find("damaged") != std::string::npos);
        CHECK(file_digest(copy) == before);
        CHECK_FALSE(exists(copy + ".receiving"));
    }
    must("cp '" + good + "' '" + bad + "' && printf x >> '" + bad + "'");
    CHECK(error_of([&] { receive_from(copy, bad); }).find("bytes follow its end") != std::string::npos);
    CHECK(file_digest(copy) == before);

    receive_from(copy, good);
    CHECK(file_digest(copy) == d.digests[2]);
}

TEST_CASE("a full stream cut short leaves no copy and no partial file") {
    FakeDisk2 d;
    std::string stream = d.dir / "full.stream", bad = d.dir / "bad.stream", copy = d.dir / "copy.img";
    send_to(d.path(), stream);
    must("head -c 300000 '" + stream + "' > '" + bad + "'");
    CHECK(error_of([&] { receive_from(copy, bad); }).find("ends early") != std::string::npos);
    CHECK_FALSE(exists(copy));
    CHECK_FALSE(exists(copy + ".partial"));
}

TEST_CASE("an apply stopped after the copy was marked leaves it not resumable, and the next run finishes it") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    d.checkpoint({{1000, 20}, {4500, 2}});
    std::string stream = d.dir / "s.stream", empty = d.dir / "empty";
    send_since(d.path(), stream, 1);
    must("touch '" + empty + "'");

    ReceiveOptions crash;
    crash.after_step = [](ReceiveStep step) {
        if (step == ReceiveStep::marked) throw Error("power cut");
    };
    CHECK(error_of([&] { receive_from(copy, stream, crash); }) == "power cut");
    CHECK(copy_area_kind(d, copy) == AreaKind::ntc_area);
    CHECK(exists(copy + ".receiving"));
    CopyStatus status = copy_status(copy);
    CHECK_FALSE(status.resumable);
    REQUIRE(status.pending);
    CHECK(status.pending->applies);
    CHECK(status.pending->to_generation == 2);
    CHECK(status.generation == 1);

    std::vector<std::string> notes;
    ReceiveOptions again;
    again.note = [&notes](const std::string& n) { notes.push_back(n); };
    ReceiveResult got = receive_from(copy, empty, again);
    CHECK(got.to_generation == 2);
    CHECK(notes == std::vector<std::string>{"finishing the interrupted receive of generation 2"});
    CHECK(file_digest(copy) == d.digests[2]);
    CHECK_FALSE(exists(copy + ".receiving"));
    CHECK(copy_area_kind(d, copy) == AreaKind::ntc_checkpoint);
}

TEST_CASE("an apply stopped after the journal: the copy is still resumable, the same stream again finishes it") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    d.checkpoint({{1000, 20}});
    std::string stream = d.dir / "s.stream";
    send_since(d.path(), stream, 1);
    ReceiveOptions crash;
    crash.after_step = [](ReceiveStep step) {
        if (step == ReceiveStep::journaled) throw Error("killed");
    };
    CHECK(error_of([&] { receive_from(copy, stream, crash); }) == "killed");
    CHECK(copy_area_kind(d, copy) == AreaKind::ntc_checkpoint);
    CHECK(file_digest(copy) == d.digests[1]);
    ReceiveResult got = receive_from(copy, stream);
    CHECK_FALSE(got.nothing_to_do);
    CHECK(got.from_generation == 1);
    CHECK(got.to_generation == 2);
    CHECK(file_digest(copy) == d.digests[2]);
    CHECK_FALSE(exists(copy + ".receiving"));

    // A journal cut short is dropped, and the copy keeps its generation.
    d.checkpoint({{1100, 20}});
    send_since(d.path(), stream, 2);
    must("head -c 5000 '" + stream + "' > '" + copy + ".receiving'");
    std::string before = file_digest(copy);
    CHECK(copy_status(copy).pending);
    CHECK_FALSE(copy_status(copy).pending->applies);
    must("touch '" + d.dir / "empty" + "'");
    CHECK(error_of([&] { receive_from(copy, d.dir / "empty"); }).find("no stream came on standard input") !=
          std::string::npos);
    CHECK_FALSE(exists(copy + ".receiving"));
    CHECK(file_digest(copy) == before);
}

TEST_CASE("a damaged change history makes ntc-send refuse --since, and a full send still works") {
    FakeDisk2 d;
    d.checkpoint({{1000, 4}});
    d.checkpoint({{1100, 4}});
    std::string stream = d.dir / "s.stream";
    const ntc_record good = d.record();
    const uint64_t slot = good.history_slot;
    const ntc_chain_page page = d.history_page(slot);

    // ntc-info --check says whether the history is sound, without calling the disk damaged.
    auto history_problem = [&] {
        DiskReport report = describe_disk(d.path(), true);
        for (const PartitionReport& pr : report.parts)
            if (pr.history_problem) return *pr.history_problem;
        FAIL("ntc-info --check did not look at the change history");
        return std::string();
    };
    CHECK(history_problem().empty());

    ntc_record rec = good;
    rec.history_crc32 ^= 1;
    d.write_page0(rec, NTC_HIBERNATE_SIG);
    std::string why = error_of([&] { send_since(d.path(), stream, 1); });
    CHECK(why == d.path() + ": the change history is damaged (its pages do not match the record's CRC); send "
                            "everything (omit --since)");
    CHECK(history_problem() == why);
    CHECK(render_text(describe_disk(d.path(), true)).find("history      " + why) != std::string::npos);

    rec = good;
    rec.history_pages = 2;
    ntc_chain_page loop = page;
    loop.next_slot = slot;
    d.write_history_page(slot, loop);
    d.write_page0(rec, NTC_HIBERNATE_SIG);
    CHECK(error_of([&] { send_since(d.path(), stream, 1); }).find("the chain comes back to slot") != std::string::npos);

    ntc_chain_page outside = page;
    outside.extents[0].first_block = file_size(d.path()) / kBlock - 1;
    outside.extents[0].blocks = 2;
    d.write_history_page(slot, outside);
    rec = good;
    rec.history_crc32 = crc32_update(0, {reinterpret_cast<const uint8_t*>(&outside), sizeof outside});
    d.write_page0(rec, NTC_HIBERNATE_SIG);
    CHECK(error_of([&] { send_since(d.path(), stream, 1); }).find("outside the disk's") != std::string::npos);

    ntc_chain_page no_magic = page;
    no_magic.magic[0] = 'X';
    d.write_history_page(slot, no_magic);
    CHECK(error_of([&] {
              send_since(d.path(), stream, 1);
          }).find("page 1 at slot " + std::to_string(slot) + " has no history magic") != std::string::npos);

    std::string copy = d.dir / "copy.img";
    send_to(d.path(), stream);
    receive_from(copy, stream);
    CHECK(file_digest(copy) == file_digest(d.path()));
}

TEST_CASE("ntc-send refuses a disk without a complete checkpoint, or one without change history") {
    FakeDisk2 d;
    std::string stream = d.dir / "s.stream";
    d.begin_checkpoint();
    CHECK_THROWS_AS(send_to(d.path(), stream), CheckpointInProgress);
    CHECK(error_of([&] { send_to(d.path(), stream); }) ==
          "a checkpoint is being written to " + d.path() + "; run again when it is done");
    CHECK(file_size(stream) == 0);

    ntc_record rec = d.record();
    rec.state = NTC_STATE_CHECKPOINT;
    rec.generation = 0;
    std::memset(rec.area_id, 0, 16);
    d.write_page0(rec, NTC_HIBERNATE_SIG);
    CHECK(error_of([&] { send_to(d.path(), stream); }).find("without change history") != std::string::npos);

    d.write_page0(rec, NTC_SWAP_SIG);
    CHECK(error_of([&] { send_to(d.path(), stream); }).find("was resumed") != std::string::npos);
    CHECK(error_of([&] { send_to(d.disk.path + "-nope", stream); }).find("cannot open") != std::string::npos);
}

TEST_CASE("ntc-send refuses a checkpoint whose redo journal is not yet in place, before it writes anything") {
    FakeDisk2 d;
    d.checkpoint({{1000, 4}});
    write_fake_journal(d.path(), d.disk.swap_offset, {{1000, 2000, 4, 0}}, 2500);
    std::string stream = d.dir / "s.stream";
    const std::string why =
        d.path() +
        ": checkpoint 2's redo journal is not yet applied (its guest is copying the journal's blocks into place, or "
        "stopped between the commit and that copy); if the guest runs, send again in a moment, else resume the "
        "checkpoint once with 'ntc-vmm resume " +
        d.path() + "', whose kernel finishes the copy, and send the checkpoint its guest takes next";
    CHECK(error_of([&] { send_to(d.path(), stream); }) == why);
    CHECK(file_size(stream) == 0);
    CHECK(error_of([&] { send_since(d.path(), stream, 1); }) == why);
    CHECK(file_size(stream) == 0);
    // What the ship loop asks before it sends.
    CopyStatus status = copy_status(d.path());
    CHECK(status.resumable);
    CHECK(status.journal_pending);
    CHECK(render_status_json(status)["journal_pending"] == true);
    CHECK(render_status_text(status).find("its redo journal is not yet in place") != std::string::npos);

    change_record(d.path(), d.disk.swap_offset, [](ntc_record& rec) { rec.flags |= 2; });
    CHECK(error_of([&] { send_to(d.path(), stream); })
              .find(": the NTC record has flags 0x3, of which these host tools know only NTC_RECORD_JOURNAL (0x1): a "
                    "newer ntc.ko wrote it") != std::string::npos);
    CHECK(file_size(stream) == 0);

    // As ntc.ko leaves page 0 once the journal is in place.
    change_record(d.path(), d.disk.swap_offset, [](ntc_record& rec) {
        rec.flags = 0;
        rec.journal_slot = rec.journal_blocks = 0;
        rec.journal_pages = rec.journal_crc32 = 0;
    });
    CHECK_FALSE(copy_status(d.path()).journal_pending);
    std::string copy = d.dir / "copy.img";
    CHECK(send_to(d.path(), stream).to_generation == 2);
    receive_from(copy, stream);
    CHECK(file_digest(copy) == file_digest(d.path()));
    CHECK(send_since(d.path(), stream, 1).blocks == d.blocks_written_after(1) + 1);
}

TEST_CASE("a disk that changes while it is sent gives a stream without an end, which the receiver refuses") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    std::string before = file_digest(copy);
    d.checkpoint({{1000, 8}});
    std::string stream = d.dir / "s.stream";
    SendOptions opts;
    opts.since = 1;
    opts.before_recheck = [&d] { d.begin_checkpoint(); };
    std::string why;
    try {
        send_to(d.path(), stream, opts);
    } catch (const CheckpointInProgress& e) {
        why = e.what();
    }
    CHECK(why.find(d.path() + " changed while it was sent (a new checkpoint began)") != std::string::npos);
    CHECK(stream_header(stream).blocks == d.blocks_written_after(1) + 1);
    CHECK(error_of([&] { receive_from(copy, stream); }).find("ends early") != std::string::npos);
    CHECK(file_digest(copy) == before);
    CHECK_FALSE(exists(copy + ".receiving"));
}

TEST_CASE("--keep 2 keeps the two generations before the copy's, each as it was") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    std::string stream = d.dir / "s.stream";
    std::vector<std::string> notes;
    ReceiveOptions opts;
    opts.keep = 2;
    opts.note = [&notes](const std::string& n) { notes.push_back(n); };
    for (uint64_t g = 2; g <= 4; g++) {
        d.checkpoint({{1000 + g * 10, 5}});
        send_since(d.path(), stream, g - 1);
        receive_from(copy, stream, opts);
        CHECK(file_digest(copy) == d.digests[g]);
    }
    CHECK(copy_status(copy).kept == std::vector<uint64_t>{2, 3});
    CHECK_FALSE(exists(copy + ".gen-1"));
    CHECK(file_digest(copy + ".gen-2") == d.digests[2]);
    CHECK(file_digest(copy + ".gen-3") == d.digests[3]);
    for (const std::string& n : notes) CHECK(n.find("kept a full copy of 48.0 MiB") != std::string::npos);

    // A full stream replaces the copy and keeps the one it replaces.
    d.checkpoint({{1100, 5}});
    send_to(d.path(), stream);
    ReceiveResult got = receive_from(copy, stream, opts);
    CHECK(got.full);
    CHECK(got.from_generation == 4);
    CHECK(file_digest(copy) == d.digests[5]);
    CHECK(copy_status(copy).kept == std::vector<uint64_t>{3, 4});
    CHECK(file_digest(copy + ".gen-4") == d.digests[4]);
}

TEST_CASE("--status: no copy, a good copy, a copy resumed in place") {
    FakeDisk2 d;
    std::string copy = d.dir / "copy.img";
    CopyStatus none = copy_status(copy);
    CHECK_FALSE(none.exists);
    CHECK(none.generation == 0);
    nlohmann::json j = render_status_json(none);
    CHECK(j["generation"] == 0);
    CHECK(j["exists"] == false);

    full_copy(d);
    CopyStatus good = copy_status(copy);
    CHECK(good.exists);
    CHECK(good.resumable);
    CHECK(good.generation == 1);
    CHECK(good.time_unix_ns == 1795000001ull * 1000000000ull);
    REQUIRE(good.area_id);
    CHECK(*good.area_id == d.area_id);
    CHECK_FALSE(good.pending);
    j = render_status_json(good);
    CHECK(j["generation"] == 1);
    CHECK(j["area_id"] == "01010101-0101-0101-0101-010101010101");
    // Of disk 2 itself: how old a copy ntc-send --since can bring up to date.
    d.checkpoint({{1000, 4}});
    j = render_status_json(copy_status(d.path()));
    CHECK(j["generation"] == 2);
    CHECK(j["history_since"] == 1);
    CHECK(j["resumable"] == true);
    std::string text = render_status_text(good);
    CHECK(text.find("generation   1 (ntc-send --since 1)") != std::string::npos);
    CHECK(text.find("resumable    yes") != std::string::npos);

    std::vector<uint8_t> page0 = read_bytes(copy, d.disk.swap_offset, kBlock);
    std::memcpy(page0.data() + NTC_OFF_SIG, NTC_SWAP_SIG, NTC_SIG_LEN);
    write_bytes(copy, d.disk.swap_offset, page0);
    CopyStatus resumed = copy_status(copy);
    CHECK_FALSE(resumed.resumable);
    CHECK(resumed.generation == 0);
    CHECK(resumed.why_not.find("resumed in place") != std::string::npos);
    std::string before = file_digest(copy), stream = d.dir / "s.stream";
    d.checkpoint({{1000, 2}});
    send_since(d.path(), stream, 1);
    CHECK(error_of([&] { receive_from(copy, stream); }).find("was resumed in place") != std::string::npos);
    send_to(d.path(), stream);
    CHECK(error_of([&] { receive_from(copy, stream); }).find("may hold the work") != std::string::npos);
    CHECK(file_digest(copy) == before);
}

TEST_CASE("a copy in use by a VM is refused and left alone") {
    FakeDisk2 d;
    std::string copy = full_copy(d);
    d.checkpoint({{1000, 2}});
    std::string stream = d.dir / "s.stream";
    send_since(d.path(), stream, 1);
    DiskFile vm(copy, DiskFile::Mode::read_write);
    REQUIRE(vm.try_lock_exclusive());
    CHECK(error_of([&] { receive_from(copy, stream); }) ==
          copy + " is in use (ntc-vmm running on it?); stop it, then receive again");
    CHECK(file_digest(copy) == d.digests[1]);
}

TEST_CASE("ntc-send | ntc-receive: a full and then an incremental round trip, driven by --status --json") {
    FakeDisk2 d;
    const std::string copy = d.dir / "copy.img";
    const std::string since = receive_bin + " --status --json '" + copy +
                              "' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"generation\"])'";
    CHECK(sh_output(since) == "0\n");
    CommandRun r =
        run_command(send_bin + " --since $(" + since + ") -q '" + d.path() + "' | " + receive_bin + " '" + copy + "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("ntc-receive: " + copy + " is at generation 1 (new, full): ") != std::string::npos);
    CHECK(file_digest(copy) == d.digests[1]);

    d.checkpoint({{1000, 30}});
    CHECK(sh_output(since) == "1\n");
    r = run_command(send_bin + " --since $(" + since + ") '" + d.path() + "' | " + receive_bin + " --json '" + copy +
                    "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("ntc-send: generation 1 -> 2 of " + d.path() + ": " +
                        std::to_string(d.blocks_written_after(1) + 1) + " blocks") != std::string::npos);
    CHECK(r.output.find("\"generation\":2") != std::string::npos);
    CHECK(file_digest(copy) == d.digests[2]);

    r = run_command(send_bin + " --since 2 '" + d.path() + "' | " + receive_bin + " '" + copy + "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("nothing new to send") != std::string::npos);
    CHECK(r.output.find("is at generation 2 already: nothing to do") != std::string::npos);

    r = run_command(receive_bin + " --status '" + copy + "'");
    CHECK(r.status == 0);
    CHECK(r.output.find("generation   2") != std::string::npos);

    d.begin_checkpoint();
    r = run_command(send_bin + " '" + d.path() + "' > /dev/null");
    CHECK(r.status == 75);
    CHECK(r.output.find("run again when it is done") != std::string::npos);

    r = run_command("printf garbage | " + receive_bin + " '" + copy + "'");
    CHECK(r.status == 1);
    CHECK(file_digest(copy) == d.digests[2]);
}

TEST_CASE("ntc-send and ntc-receive: usage errors exit 2, --help 0") {
    for (const std::string& bin : {send_bin, receive_bin}) {
        INFO("tool: " << bin);
        CHECK(run_command(bin + " --bogus x </dev/null >/dev/null").status == 2);
        CommandRun r = run_command(bin + " </dev/null >/dev/null");
        CHECK(r.status == 2);
        CHECK(r.output.find("is required") != std::string::npos);
        CHECK(run_command(bin + " --help").status == 0);
    }
    CHECK(run_command(receive_bin + " --status --keep 2 x").status == 2);
}

TEST_CASE("scripts/ntc-ship-loop.sh --once: everything first, then what is new, nothing while nothing complete is") {
    FakeDisk2 d;
    must("mkdir -p '" + d.dir / "dr" + "'");
    const std::string copy = d.dir / "dr/copy.img";
    const ShipLoop ship{d, copy};
    ship.check_generations_1_and_2();

    // Nothing new, a checkpoint whose journal is not yet in place, and one
    // being written: nothing sent, nothing said.
    CommandRun r = ship.once();
    CHECK(r.status == 0);
    CHECK(r.output.empty());
    d.checkpoint({{1000, 2}});
    write_fake_journal(d.path(), d.disk.swap_offset, {{1000, 2000, 2, 0}}, 2500);
    r = ship.once();
    CHECK(r.status == 0);
    CHECK(r.output.empty());
    CHECK(file_digest(copy) == d.digests[2]);
    d.begin_checkpoint();
    r = ship.once();
    CHECK(r.status == 0);
    CHECK(r.output.empty());
    CHECK(file_digest(copy) == d.digests[2]);
}

TEST_CASE("scripts/ntc-ship-loop.sh DISK2 HOST:COPY: the copy's side is reached through ssh") {
    FakeDisk2 d;
    // A stand-in ssh that runs a command as OpenSSH does: its words joined by
    // spaces and given to the remote user's shell, so the script's quoting is
    // what keeps a path with spaces whole.  It logs each command.
    const std::string stand_in = d.dir / "stand-in";
    std::filesystem::create_directories(stand_in);
    std::filesystem::create_directories(d.dir / "dr site");
    const std::string ssh_log = stand_in + "/ssh.log";
    {
        std::ofstream ssh(stand_in + "/ssh");
        ssh << "#!/bin/sh\n"
            << "[ \"$1\" = dr-site ] || { echo \"ssh: Could not resolve hostname $1\" >&2; exit 255; }\n"
            << "shift\n"
            << "echo \"$*\" >> '" << ssh_log << "'\n"
            << "exec sh -c \"$*\"\n";
    }
    std::filesystem::permissions(stand_in + "/ssh", std::filesystem::perms::owner_all);
    const ShipLoop ship{d, d.dir / "dr site/copy of disk2.img", stand_in};
    ship.check_generations_1_and_2("dr-site");
    // Each round asked the copy's status, then received, both over ssh.
    INFO("ssh ran:\n" << sh_output("cat '" + ssh_log + "'"));
    CHECK(sh_output("grep -c -e '--status --json' '" + ssh_log + "'") == "2\n");
    CHECK(sh_output("grep -c -e '--keep 1' '" + ssh_log + "'") == "2\n");

    ship.check_unreachable("elsewhere", "Could not resolve hostname elsewhere");
}
