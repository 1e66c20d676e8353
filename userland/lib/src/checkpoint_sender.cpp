#include "ntc/checkpoint_sender.h"

#include "ntc/block_copier.h"
#include "ntc/change_history.h"
#include "ntc/checkpoint_stream.h"
#include "ntc/overlay.h"
#include "ntc/progress.h"
#include "ntc/redo_journal.h"
#include "ntc/snapshot_area.h"

#include <algorithm>
#include <cstring>
#include <ctime>

namespace ntc {
namespace {

constexpr uint64_t chunk_bytes = uint64_t{NTC_STREAM_MAX_CHUNK_BLOCKS} * NTC_PAGE_SIZE;

SnapshotArea checkpoint_area(const DiskFile& disk) {
    const std::string& path = disk.path();
    std::optional<SnapshotArea> area = find_snapshot_area(disk);
    if (!area)
        throw Error(path + " has no NTC snapshot area, so it is not disk 2 of an NTC machine ('ntc-info " + path +
                    "' shows what it holds)");
    const ntc_record& rec = *area->swap.record;
    switch (area->swap.kind) {
    case AreaKind::ntc_checkpoint:
        return *area;
    case AreaKind::ntc_area:
        if (rec.state == NTC_STATE_WRITING)
            throw CheckpointInProgress("a checkpoint is being written to " + path + "; run again when it is done");
        throw Error(path + " holds no checkpoint yet (an empty snapshot area); take one in the guest first");
    case AreaKind::swap:
        throw Error("the checkpoint on " + path +
                    " was resumed (its area is ordinary swap again), so there is none to send until the guest "
                    "takes a new one");
    default:
        throw Error(path + " holds no complete NTC checkpoint ('ntc-info " + path + "' says what it holds)");
    }
}

// Reads blocks [first, first + count) into buffer, the part past the end of
// the disk as zeros.
void read_blocks(const DiskFile& disk, uint64_t first, uint64_t count, std::vector<uint8_t>& buffer) {
    buffer.assign(count * NTC_PAGE_SIZE, 0);
    uint64_t offset = first * NTC_PAGE_SIZE;
    disk.read_at(offset, {buffer.data(), std::min<uint64_t>(buffer.size(), disk.size() - offset)});
}

// Every block of the disk that is not all zeros, but page 0 of the area.
// Only what may hold data is read: a clone's holes are skipped unread.
std::vector<BlockRun> nonzero_blocks(const DiskFile& disk, uint64_t page0_block, bool progress_bar) {
    const uint64_t blocks = (disk.size() + NTC_PAGE_SIZE - 1) / NTC_PAGE_SIZE;
    Progress progress("ntc-send: reading", disk.size(), progress_bar);
    std::vector<BlockRun> runs;
    std::vector<uint8_t> buffer;
    uint64_t next = 0;  // the first block not looked at
    while (std::optional<Extent> data = next_data(disk, next * NTC_PAGE_SIZE, disk.size())) {
        const uint64_t end = std::min(blocks, (data->end() + NTC_PAGE_SIZE - 1) / NTC_PAGE_SIZE);
        for (uint64_t first = std::max(next, data->offset / NTC_PAGE_SIZE); first < end;
             first += NTC_STREAM_MAX_CHUNK_BLOCKS) {
            uint64_t count = std::min<uint64_t>(NTC_STREAM_MAX_CHUNK_BLOCKS, end - first);
            read_blocks(disk, first, count, buffer);
            for (uint64_t i = 0; i < count; i++) {
                uint64_t block = first + i;
                if (block == page0_block || all_zero({buffer.data() + i * NTC_PAGE_SIZE, NTC_PAGE_SIZE})) continue;
                if (!runs.empty() && runs.back().end() == block) runs.back().count++;
                else runs.push_back({block, 1});
            }
        }
        progress.advance((end - next) * NTC_PAGE_SIZE);
        next = end;
        if (next >= blocks) break;
    }
    progress.finish();
    return runs;
}

}  // namespace

SendResult send_checkpoint(const std::string& disk_path, int out_fd, const SendOptions& opts) {
    if (std::optional<std::string> why = unfinished_merge(disk_path)) throw Error(*why);
    DiskFile disk(disk_path, DiskFile::Mode::read);
    const SnapshotArea area = checkpoint_area(disk);
    const ntc_record& rec = *area.swap.record;
    require_known_flags(disk_path, rec);
    // Until its journal is in place, disk 2 holds some of the previous
    // checkpoint's blocks: a copy would be this checkpoint only to a kernel
    // that resumes it, not to anything that reads it as a disk.
    if (journal_pending(rec))
        throw Error(disk_path + ": checkpoint " + std::to_string(rec.generation) +
                    "'s redo journal is not yet applied (its guest is copying the journal's blocks into place, or "
                    "stopped between the commit and that copy); if the guest runs, send again in a moment, else "
                    "resume the checkpoint once with 'ntc-vmm resume " +
                    disk_path + "', whose kernel finishes the copy, and send the checkpoint its guest takes next");
    require_change_history(disk_path, rec);

    SendResult result;
    result.to_generation = rec.generation;
    result.full = !opts.since || *opts.since == 0;
    result.from_generation = result.full ? 0 : *opts.since;
    if (result.from_generation > rec.generation)
        throw Error(disk_path + " is at generation " + std::to_string(rec.generation) + ", before the copy's " +
                    std::to_string(result.from_generation) +
                    ": the copy is not of this disk as it is now (replaced, or cloned anew?); send everything "
                    "(omit --since) into a new file");
    const bool changed = result.from_generation < result.to_generation;
    std::vector<BlockRun> runs;
    if (result.full) runs = nonzero_blocks(disk, area.page0_block(), opts.progress);
    else if (changed)
        runs = blocks_changed_since(read_change_history(disk, area), result.from_generation, area.page0_block());
    for (const BlockRun& run : runs) result.blocks += run.count;
    if (changed) result.blocks++;  // page 0

    ntc_stream_header header{};
    std::memcpy(header.area_id, rec.area_id, sizeof header.area_id);
    header.disk_bytes = disk.size();
    header.area_offset = area.offset;
    header.from_generation = result.from_generation;
    header.to_generation = result.to_generation;
    header.time_unix_ns = rec.time_unix_ns;
    header.blocks = result.blocks;
    header.created_unix = static_cast<uint64_t>(std::time(nullptr));
    header.flags = result.full ? NTC_STREAM_FULL : 0;

    Progress progress("ntc-send", result.blocks * NTC_PAGE_SIZE, opts.progress);
    StreamWriter writer(out_fd, "the stream", header);
    std::vector<uint8_t> buffer;
    buffer.reserve(chunk_bytes);
    for (const BlockRun& run : runs) {
        for (uint64_t first = run.first; first < run.end(); first += NTC_STREAM_MAX_CHUNK_BLOCKS) {
            uint64_t count = std::min<uint64_t>(NTC_STREAM_MAX_CHUNK_BLOCKS, run.end() - first);
            read_blocks(disk, first, count, buffer);
            writer.write_chunk(first, buffer);
            progress.advance(buffer.size());
        }
    }
    opts.before_recheck();
    Page page0;
    disk.read_at(area.offset, page0);
    if (page0 != area.page0)
        throw CheckpointInProgress(disk_path +
                                   " changed while it was sent (a new checkpoint began), so the stream was cut "
                                   "short and ntc-receive will refuse it; run again");
    if (changed) writer.write_chunk(area.page0_block(), area.page0);
    writer.finish();
    progress.advance(changed ? NTC_PAGE_SIZE : 0);
    progress.finish();
    result.chunks = writer.chunks();
    result.seconds = progress.elapsed_seconds();
    return result;
}

}  // namespace ntc
