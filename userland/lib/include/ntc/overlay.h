#pragma once
// A copy-on-write overlay of a disk image (disk-layout/ntc_format.h,
// struct ntc_overlay_header): one instance's writes over a base disk that
// stays unchanged, so that any number of instances resume from one disk 2.
// ntc-vmm serves an instance's disk through it, ntc-clone turns one back
// into a plain disk.  One thread at a time.
#include <cstdint>
#include <ntc_format.h>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ntc/disk_file.h"

namespace ntc {

struct SectorRange {
    uint64_t first;
    uint64_t count;
};

class Overlay {
public:
    static constexpr uint64_t kSector = NTC_SECTOR_SIZE;

    // Makes `path`, which must not exist, an empty overlay of `base` and
    // returns it open for writing.  Throws ntc::Error (and leaves no file).
    static Overlay create(const std::string& path, DiskFile base);
    // Opens an overlay and, read-only, the base its header names.  Throws
    // ntc::Error when the file is no overlay, or the base is missing or was
    // changed after the overlay was made (unless it was being merged).
    static Overlay open(const std::string& path, DiskFile::Mode mode);
    // Whether the file starts with an overlay header's magic.
    static bool is_overlay(const DiskFile& file);

    const DiskFile& file() const { return file_; }
    const DiskFile& base() const { return base_; }
    uint64_t size() const { return header_.disk_bytes; }
    uint64_t data_offset() const { return header_.data_offset; }

    struct Run {
        bool in_overlay;
        uint64_t sectors;  // from the first, at least 1
    };
    // Where sector `first` is read from, and how many sectors from it (up
    // to `most`, at least 1) are read from the same file.
    Run run(uint64_t first, uint64_t most) const;
    // Sectors just written to the overlay file: reads find them there from
    // now on.  Durable only once a commit() that includes them returns.
    void mark(uint64_t first, uint64_t count);
    // The sectors marked since the last call.  A flush takes them before it
    // syncs the data, and commits them after.
    std::vector<SectorRange> take_marked();
    // Ranges taken and not committed (their flush failed or was dropped):
    // the next take_marked() returns them again.
    void defer(std::vector<SectorRange> ranges);
    // Sets `ranges`' bits in the file and syncs it; their data must be
    // durable already.  On failure they are deferred and ntc::Error is
    // thrown.
    void commit(const std::vector<SectorRange>& ranges);
    // Syncs the data, then commits every sector marked.
    void sync();

    // Whole reads and writes of the presented disk, sector-aligned; a write
    // is marked, not yet committed.
    void read_at(uint64_t offset, std::span<uint8_t> buffer) const;
    void write_at(uint64_t offset, std::span<const uint8_t> buffer);

    uint64_t sectors_in_overlay() const;

    // Records in the header (synced) that the overlay's sectors are about
    // to be written into its base; then open() takes the base's change as
    // expected, and whoever finds the overlay knows it must be finished.
    void begin_merge();
    bool merging() const { return header_.flags & NTC_OVERLAY_FLAG_MERGING; }
    // Writes every sector the overlay holds into `target` (its base, opened
    // for writing) and syncs it.  Throws ntc::Error.
    void copy_into(const DiskFile& target) const;

private:
    Overlay(DiskFile file, DiskFile base, const ntc_overlay_header& header);
    bool present(uint64_t sector) const { return present_[sector / 8] >> (sector % 8) & 1; }

    DiskFile file_;
    DiskFile base_;
    ntc_overlay_header header_;
    std::vector<uint8_t> present_;  // the bitmap as reads see it
    std::vector<uint8_t> durable_;  // the bitmap as the file holds it
    std::vector<SectorRange> marked_;
};

// The scratch overlay of `ntc-vmm resume DISK` in place: the guest's
// writes while the image loads, written into DISK in the end.
std::string loading_overlay_path(const std::string& disk);

// Why DISK cannot be taken as it is: a DISK.loading left by an ntc-vmm that
// stopped while writing it into DISK (or that cannot be read, so that this
// cannot be ruled out) leaves DISK half written until an ntc-vmm resume or
// run of it finishes the merge.  nullopt when there is no such file, or one
// of a resume that stopped while loading (DISK is untouched then).
std::optional<std::string> unfinished_merge(const std::string& disk);

}  // namespace ntc
