#include "ntc/block_copier.h"
#include "ntc/clone.h"
#include "ntc/error.h"
#include "ntc/ext_fs.h"
#include "ntc/overlay.h"

#include <cstring>

namespace ntc {
namespace {

class Verifier {
public:
    Verifier(const std::string& src, const std::string& dst, unsigned max)
        : src_path_(src), dst_path_(dst), src_(src, DiskFile::Mode::read), dst_(dst, DiskFile::Mode::read), max_(max) {}

    VerifyResult run() {
        ClonePlan plan = plan_clone(src_, CloneOptions{});
        PartitionTable dst_table = read_partition_table(dst_);
        if (!compare_tables(plan.table, dst_table)) return result_;
        for (const ClonePlan::Part& part : plan.parts) {
            if (full()) break;
            switch (part.how) {
            case ClonePlan::How::raw:
                compare_range(part.extent, where(part));
                break;
            case ClonePlan::How::ext_used_blocks:
                compare_ext(part);
                break;
            case ClonePlan::How::snapshot_area:
                compare_area(part);
                break;
            }
        }
        return result_;
    }

private:
    bool full() const { return result_.differences.size() >= max_; }
    void differ(std::string text) {
        if (!full()) result_.differences.push_back(std::move(text));
    }

    static std::string where(const ClonePlan::Part& part) {
        return part.partno ? "partition " + std::to_string(part.partno) : "space outside partitions";
    }

    bool compare_tables(const PartitionTable& a, const PartitionTable& b) {
        if (a.scheme != b.scheme || a.disk_id != b.disk_id)
            differ("partition table: " + a.scheme + " " + a.disk_id + " vs " + b.scheme + " " + b.disk_id);
        if (a.partitions.size() != b.partitions.size()) {
            differ("partition table: " + std::to_string(a.partitions.size()) + " vs " +
                   std::to_string(b.partitions.size()) + " partitions");
            return false;
        }
        for (size_t i = 0; i < a.partitions.size(); i++) {
            const Partition &x = a.partitions[i], &y = b.partitions[i];
            if (x.offset != y.offset || x.size != y.size || x.type != y.type || x.part_uuid != y.part_uuid ||
                x.name != y.name) {
                differ("partition table: partition " + std::to_string(x.number) +
                       " differs (start, size, type, GUID or name)");
                return false;
            }
        }
        return result_.differences.empty();
    }

    bool compare_range(Extent range, const std::string& what) {
        result_.bytes_compared += range.length;
        std::optional<uint64_t> at = first_difference(src_, dst_, range);
        if (at) differ(what + ": byte " + std::to_string(*at) + " of the disk differs");
        return !at;
    }

    void compare_ext(const ClonePlan::Part& part) {
        const ExtFs& a = *part.fs;
        a.for_each_used_run([&](Extent run) {
            if (full()) return;
            Extent abs{part.extent.offset + run.offset, run.length};
            result_.bytes_compared += run.length;
            std::optional<uint64_t> at = first_difference(src_, dst_, abs);
            if (at)
                differ(where(part) + " (" + part.fs_type + "): used block " +
                       std::to_string((*at - part.extent.offset) / a.block_size()) + " differs (disk byte " +
                       std::to_string(*at) + ")");
        });
        std::optional<ExtFs> b;
        try {
            b.emplace(dst_path_, part.extent.offset, part.extent.length);
        } catch (const Error& e) {
            differ(where(part) + ": the clone's filesystem cannot be opened: " + e.what());
            return;
        }
        if (a.inodes_count() != b->inodes_count()) {
            differ(where(part) + ": inode counts differ");
            return;
        }
        for (uint32_t ino = 1; ino <= a.inodes_count() && !full(); ino++) {
            bool used = a.inode_in_use(ino);
            if (used != b->inode_in_use(ino)) {
                differ(where(part) + ": inode " + std::to_string(ino) +
                       (used ? " is in use only in the source" : " is in use only in the clone"));
                continue;
            }
            if (!used) continue;
            result_.inodes_compared++;
            if (a.read_raw_inode(ino) != b->read_raw_inode(ino))
                differ(where(part) + ": inode " + std::to_string(ino) + " differs");
        }
    }

    void compare_area(const ClonePlan::Part& part) {
        Page dp;
        dst_.read_at(part.extent.offset, dp);
        SwapArea s = inspect_swap_area(*part.swap_header), d = inspect_swap_area(dp);
        if (!d.record) {
            if (is_unfinished_area_page(dp))
                differ(where(part) + ": an unfinished clone (ntc-clone was interrupted; "
                                     "ntc-clone --update finishes it)");
            else differ(where(part) + ": not an NTC snapshot area" + (d.problem.empty() ? "" : " (" + d.problem + ")"));
            return;
        }
        if (s.uuid != d.uuid || s.label != d.label)
            differ(where(part) + ": swap UUID or label differs from the source's");
    }

    std::string src_path_, dst_path_;
    DiskFile src_, dst_;
    unsigned max_;
    VerifyResult result_;
};

}  // namespace

VerifyResult verify_clone(const std::string& src_path, const std::string& dst_path, unsigned max_differences) {
    if (Overlay::is_overlay(DiskFile(src_path, DiskFile::Mode::read)))
        throw Error("--verify proves that a disk was cloned; " + src_path +
                    " is an instance's overlay, which ntc-clone copies as a plain disk, not a clone");
    return Verifier(src_path, dst_path, max_differences).run();
}

}  // namespace ntc
