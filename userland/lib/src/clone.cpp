#include "ntc/clone.h"

#include "ntc/block_copier.h"
#include "ntc/error.h"
#include "ntc/ext_fs.h"
#include "ntc/overlay.h"
#include "ntc/progress.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

namespace ntc {
namespace {

Page read_page(const DiskFile& disk, uint64_t offset) {
    Page page;
    disk.read_at(offset, page);
    return page;
}

// Page 0 of a partition that holds a swap (or hibernation, or NTC) header.
std::optional<Page> swap_header(const DiskFile& disk, const Partition& p) {
    if (p.size < 2 * NTC_PAGE_SIZE) return std::nullopt;
    Page page = read_page(disk, p.offset);
    if (inspect_swap_area(page).kind == AreaKind::not_swap) return std::nullopt;
    return page;
}

bool same_layout(const PartitionTable& a, const PartitionTable& b) {
    if (a.scheme != b.scheme || a.disk_id != b.disk_id || a.partitions.size() != b.partitions.size()) return false;
    for (size_t i = 0; i < a.partitions.size(); i++) {
        const Partition &x = a.partitions[i], &y = b.partitions[i];
        if (x.number != y.number || x.offset != y.offset || x.size != y.size || x.type != y.type ||
            x.part_uuid != y.part_uuid || x.name != y.name)
            return false;
    }
    return true;
}

AreaSource area_source(const ClonePlan& plan, int partno) {
    AreaSource s;
    if (plan.table.scheme == "gpt") parse_guid(plan.table.disk_id, s.disk_guid);
    else s.mbr_id = static_cast<uint32_t>(std::strtoul(plan.table.disk_id.c_str(), nullptr, 16));
    s.partno = static_cast<uint32_t>(partno);
    s.disk_bytes = plan.table.disk_size;
    s.created_unix = static_cast<uint64_t>(std::time(nullptr));
    s.origin = plan.origin;
    return s;
}

// Each ext partition's superblock CRC, as ntc.ko computes it (ntc_format.h,
// struct ntc_origin_partition); past NTC_ORIGIN_PARTITIONS, partitions are
// left to the first checkpoint's compare.
std::vector<ntc_origin_partition> clone_origin(const DiskFile& src, const PartitionTable& table) {
    constexpr uint64_t kSuperblockOffset = 1024, kMagicOffset = 56;
    std::vector<ntc_origin_partition> origin;
    for (const Partition& p : table.partitions) {
        if (!p.is_ext() || p.size < 2 * kSuperblockOffset || origin.size() == NTC_ORIGIN_PARTITIONS) continue;
        std::array<uint8_t, 1024> sb;
        src.read_at(p.offset + kSuperblockOffset, sb);
        if (sb[kMagicOffset] != 0x53 || sb[kMagicOffset + 1] != 0xef) continue;
        ntc_origin_partition o{};
        o.start_sector = p.offset / NTC_SECTOR_SIZE;
        o.sectors = p.size / NTC_SECTOR_SIZE;
        o.partno = static_cast<uint32_t>(p.number);
        o.superblock_crc32 = crc32_update(0, sb);
        origin.push_back(o);
    }
    return origin;
}

// DST as the clone will write it, opened only once every check has passed.
struct Target {
    DiskFile file;
    bool created = false;
    BlockCopier::Target mode;
};

std::optional<struct stat> stat_path(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return st;
    if (errno != ENOENT) throw_errno("cannot look at " + path);
    return std::nullopt;
}

void check_update_target(const DiskFile& src, const ClonePlan& plan, const DiskFile& dst) {
    if (dst.size() != src.size())
        throw Error("--update: " + dst.path() + " is not the size of " + src.path() + ", so it is not a clone of it");
    PartitionTable dst_table = read_partition_table(dst);
    if (!same_layout(plan.table, dst_table))
        throw Error("--update: " + dst.path() + " has another partition table than " + src.path() +
                    "; make a new clone with --force instead");
    for (const ClonePlan::Part& part : plan.parts) {
        if (part.how != ClonePlan::How::snapshot_area) continue;
        Page page = read_page(dst, part.extent.offset);
        if (!inspect_swap_area(page).record && !is_unfinished_area_page(page))
            throw Error("--update: partition " + std::to_string(part.partno) + " of " + dst.path() +
                        " is not an NTC snapshot area; make a new clone with --force");
    }
}

Target open_target(const std::string& dst_path, const DiskFile& src, const ClonePlan& plan, const CloneOptions& opts) {
    std::optional<struct stat> st = stat_path(dst_path);
    if (!st) {
        if (opts.update)
            throw Error("--update: " + dst_path + " does not exist; leave out --update to make a new clone");
        return {DiskFile::create_sparse(dst_path, src.size()), true, BlockCopier::Target::fresh};
    }
    DiskFile dst(dst_path, DiskFile::Mode::read_write);
    if (dst.same_file_as(src)) throw Error(dst_path + " is the source disk itself; name another file");
    if (!dst.try_lock_exclusive())
        throw Error(dst_path + " is in use by a running virtual machine (it holds a lock on it); "
                               "stop it first");
    if (dst.is_block_device()) {
        if (dst.size() < src.size())
            throw Error(dst_path + " is too small: " + human_bytes(dst.size()) + ", the source needs " +
                        human_bytes(src.size()));
        // O_EXCL on a block device fails while it is mounted or otherwise claimed.
        int excl = ::open(dst_path.c_str(), O_RDWR | O_EXCL | O_CLOEXEC);
        if (excl < 0) throw_errno(dst_path + " is busy (mounted or in use)");
        ::close(excl);
    } else if (!opts.force && !opts.update) {
        throw Error(dst_path + " exists; use --force to replace it or --update to refresh an earlier clone");
    }
    if (opts.update) {
        check_update_target(src, plan, dst);
        return {std::move(dst), false, BlockCopier::Target::update};
    }
    if (dst.is_block_device()) return {std::move(dst), false, BlockCopier::Target::overwrite};
    dst.reset_sparse(src.size());
    return {std::move(dst), false, BlockCopier::Target::fresh};
}

uint64_t planned_bytes(const ClonePlan& plan) {
    uint64_t total = 0;
    for (const ClonePlan::Part& part : plan.parts) {
        if (part.how == ClonePlan::How::ext_used_blocks) total += part.fs->used_blocks() * part.fs->block_size();
        else if (part.how == ClonePlan::How::raw) total += part.extent.length;
    }
    return total;
}

// Where ntc-dkms installs its udev rule; with merged /usr, /lib is a link.
constexpr const char* kSnapshotDiskRules[] = {"/usr/lib/udev/rules.d/60-ntc-snapshot-disk.rules",
                                              "/lib/udev/rules.d/60-ntc-snapshot-disk.rules"};

// Disk 1 and its clone carry the same filesystem UUIDs and labels, so a guest
// that names its disks that way may mount the wrong one (two devices match),
// unless it has ntc-dkms, whose udev rule and initramfs script keep the
// office VM on disk 1 (disk-layout.md, "Duplicate UUIDs").
void warn_about_fstab(const ClonePlan& plan, const CloneOptions& opts) {
    for (const ClonePlan::Part& part : plan.parts) {
        if (part.how != ClonePlan::How::ext_used_blocks) continue;
        std::optional<std::vector<uint8_t>> fstab = part.fs->read_file("/etc/fstab", 1 << 20);
        if (!fstab) continue;
        bool guarded = false;
        for (const char* rules : kSnapshotDiskRules) guarded = guarded || part.fs->read_file(rules, 1 << 20);
        if (guarded) continue;
        std::string text(fstab->begin(), fstab->end());
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
            pos = end == std::string::npos ? text.size() : end + 1;
            size_t first = line.find_first_not_of(" \t");
            if (first == std::string::npos || line[first] == '#') continue;
            std::string spec = line.substr(first, line.find_first_of(" \t", first) - first);
            for (const char* tag : {"UUID=", "PARTUUID=", "LABEL=", "PARTLABEL="}) {
                if (spec.rfind(tag, 0) == 0) {
                    opts.warn("partition " + std::to_string(part.partno) + ": /etc/fstab names " + spec +
                              ", which disk 1 and its clone share; install ntc-dkms in the guest "
                              "(its udev rule keeps the office VM on disk 1) or name devices by path "
                              "(/dev/vda1)");
                    break;
                }
            }
        }
    }
}

// Page 0 of every snapshot area of DST: a finished area's, or an unfinished
// clone's (a record without a signature, see make_unfinished_area_page).
void write_area_pages(const DiskFile& dst, const ClonePlan& plan, bool finished) {
    for (const ClonePlan::Part& part : plan.parts) {
        if (part.how != ClonePlan::How::snapshot_area) continue;
        AreaSource source = area_source(plan, part.partno);
        dst.write_at(part.extent.offset, finished ? make_area_page(*part.swap_header, source)
                                                  : make_unfinished_area_page(*part.swap_header, source));
    }
}

bool ext_needs_recovery(const DiskFile& src, const Partition& p) {
    try {
        return ExtFs::needs_recovery(src.path(), p.offset);
    } catch (const Error&) {
        return false;  // unreadable: the damage path below reports it
    }
}

// An instance's overlay as a plain disk: the base's bytes (holes stay holes,
// reflinked where the filesystem can) with the overlay's sectors over them.
CloneResult flatten_overlay(const std::string& overlay_path, const std::string& dst_path, const CloneOptions& opts) {
    if (opts.update)
        throw Error("--update refreshes a clone of a disk; " + overlay_path +
                    " is an instance's overlay: make a new plain disk of it (without --update)");
    Overlay overlay = Overlay::open(overlay_path, DiskFile::Mode::read);
    if (!overlay.file().try_lock_shared())
        throw Error(overlay_path + " is in use by a running instance (ntc-vmm holds a lock on it); stop it first");
    if (!overlay.base().try_lock_shared())
        throw Error(overlay.base().path() + ", the base of " + overlay_path +
                    ", is in use by a virtual machine that writes it; stop it first");
    if (std::optional<struct stat> st = stat_path(dst_path);
        st && st->st_dev == overlay.file().stat().st_dev && st->st_ino == overlay.file().stat().st_ino)
        throw Error(dst_path + " is the overlay itself; name another file");
    Target dst = open_target(dst_path, overlay.base(), ClonePlan{}, opts);
    Progress progress("ntc-clone", overlay.size(), opts.progress);
    uint64_t from_overlay = 0;
    try {
        BlockCopier copier(overlay.base(), dst.file, dst.mode, !dst.created, [&](uint64_t n) { progress.advance(n); });
        copier.copy({0, overlay.size()});
        BlockCopier::Stats stats = copier.finish();
        std::vector<uint8_t> buffer(1 << 20);
        const uint64_t sectors = overlay.size() / Overlay::kSector;
        for (uint64_t sector = 0; sector < sectors;) {
            Overlay::Run run = overlay.run(sector, buffer.size() / Overlay::kSector);
            uint64_t bytes = run.sectors * Overlay::kSector;
            if (run.in_overlay) {
                std::span<uint8_t> piece(buffer.data(), bytes);
                overlay.file().read_at(overlay.data_offset() + sector * Overlay::kSector, piece);
                dst.file.write_at(sector * Overlay::kSector, piece);
                from_overlay += bytes;
            }
            sector += run.sectors;
        }
        dst.file.sync();
        progress.finish();
        CloneResult result;
        result.bytes_written = stats.written + from_overlay;
        result.bytes_skipped = overlay.size() - std::min(overlay.size(), stats.written);
        result.seconds = progress.elapsed_seconds();
        return result;
    } catch (...) {
        if (dst.created) ::unlink(dst_path.c_str());
        throw;
    }
}

}  // namespace

ClonePlan plan_clone(const DiskFile& src, const CloneOptions& opts) {
    ClonePlan plan;
    plan.table = read_partition_table(src);
    for (Extent gap : space_outside_partitions(plan.table)) plan.parts.push_back({ClonePlan::How::raw, gap, 0, {}});
    for (const Partition& p : plan.table.partitions) {
        ClonePlan::Part part{ClonePlan::How::raw, {p.offset, p.size}, p.number, p.fs_type};
        if (p.is_ext() && ext_needs_recovery(src, p)) {
            // Blocks its journal will write home may still be free in its
            // bitmaps; only a copy of every block keeps them.
            opts.warn("partition " + std::to_string(p.number) + " (" + p.fs_type +
                      ") has a journal that needs recovery (mounted, or not cleanly "
                      "unmounted): copying all of it, not only the blocks in use");
        } else if (p.is_ext()) {
            try {
                part.fs = std::make_shared<const ExtFs>(src.path(), p.offset, p.size);
                part.how = ClonePlan::How::ext_used_blocks;
            } catch (const Error& e) {
                if (opts.strict)
                    throw Error("partition " + std::to_string(p.number) + ": " + e.what() +
                                " (--strict refuses to copy it raw)");
                opts.warn("partition " + std::to_string(p.number) + " (" + p.fs_type +
                          ") looks damaged, copying it raw: " + e.what());
            }
        } else {
            part.swap_header = swap_header(src, p);
            if (part.swap_header) part.how = ClonePlan::How::snapshot_area;
        }
        plan.parts.push_back(part);
    }
    std::sort(plan.parts.begin(), plan.parts.end(),
              [](const auto& a, const auto& b) { return a.extent.offset < b.extent.offset; });
    plan.origin = clone_origin(src, plan.table);
    return plan;
}

CloneResult clone_disk(const std::string& src_path, const std::string& dst_path, const CloneOptions& opts) {
    DiskFile src(src_path, DiskFile::Mode::read);
    if (Overlay::is_overlay(src)) return flatten_overlay(src_path, dst_path, opts);
    if (!src.try_lock_shared())
        throw Error(src_path + " is in use by a running virtual machine (it holds a lock on it); "
                               "stop the VM, or checkpoint from inside it with 'echo checkpoint > /proc/ntc'");
    if (std::optional<std::string> why = unfinished_merge(src_path)) throw Error(*why);
    ClonePlan plan = plan_clone(src, opts);
    Target dst = open_target(dst_path, src, plan, opts);
    warn_about_fstab(plan, opts);

    // Before any data, each snapshot area's page 0 becomes an unfinished
    // clone's, which has no signature: DST may be an earlier clone (--update,
    // a block device), whose marker must not stand over half-rewritten
    // partitions.  The markers come back last, so a clone stopped part-way,
    // killed or not, never looks finished; ntc-clone --update finishes it.
    // DST is flushed after the unfinished marks, after the data and after
    // the markers: a disk may be unplugged when we return, an earlier clone
    // must never look finished with half of the new data, even after a
    // power cut, and the markers carry the clone origin, by which the first
    // checkpoint onto DST trusts its blocks without comparing them.
    Progress progress("ntc-clone", planned_bytes(plan), opts.progress);
    BlockCopier copier(src, dst.file, dst.mode, true, [&](uint64_t n) { progress.advance(n); });
    BlockCopier::Stats stats;
    try {
        write_area_pages(dst.file, plan, false);
        dst.file.sync();
        for (const ClonePlan::Part& part : plan.parts) {
            switch (part.how) {
            case ClonePlan::How::raw:
                copier.copy(part.extent);
                break;
            case ClonePlan::How::ext_used_blocks:
                part.fs->for_each_used_run([&](Extent run) {
                    copier.copy({part.extent.offset + run.offset, run.length});
                });
                break;
            case ClonePlan::How::snapshot_area:
                break;
            }
        }
        stats = copier.finish();
        dst.file.sync();
        write_area_pages(dst.file, plan, true);
        dst.file.sync();
    } catch (...) {
        if (dst.created) ::unlink(dst_path.c_str());
        throw;
    }
    progress.finish();
    CloneResult result;
    result.bytes_written = stats.written;
    result.bytes_skipped = src.size() - std::min(src.size(), stats.written);
    result.seconds = progress.elapsed_seconds();
    return result;
}

}  // namespace ntc
