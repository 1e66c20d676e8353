#include "ntc/partition_table.h"

#include "ntc/error.h"

#include <algorithm>
#include <blkid/blkid.h>
#include <cstdio>
#include <fcntl.h>
#include <memory>

namespace ntc {
namespace {

// blkid_probe_set_device() advises the kernel that the descriptor will be
// read at random, which turns readahead off for it.  The descriptor is ours
// and the copy that follows reads it in order, so the advice is taken back.
struct ProbeDeleter {
    int fd;
    void operator()(blkid_probe pr) const {
        blkid_free_probe(pr);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_NORMAL);
    }
};
using Probe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, ProbeDeleter>;

Probe new_probe(const DiskFile& disk, uint64_t offset, uint64_t size) {
    Probe pr(blkid_new_probe(), ProbeDeleter{disk.fd()});
    if (!pr || blkid_probe_set_device(pr.get(), disk.fd(), static_cast<blkid_loff_t>(offset),
                                      static_cast<blkid_loff_t>(size)) != 0)
        throw Error("libblkid cannot probe " + disk.path());
    return pr;
}

std::string lookup(blkid_probe pr, const char* name) {
    const char* value = nullptr;
    if (blkid_probe_lookup_value(pr, name, &value, nullptr) == 0 && value) return value;
    return {};
}

void probe_contents(const DiskFile& disk, Partition& part) {
    Probe pr = new_probe(disk, part.offset, part.size);
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
    blkid_probe_enable_partitions(pr.get(), 0);
    if (blkid_do_safeprobe(pr.get()) == 0) {
        part.fs_type = lookup(pr.get(), "TYPE");
        part.fs_label = lookup(pr.get(), "LABEL");
        part.fs_uuid = lookup(pr.get(), "UUID");
    }
}

void check_layout(const PartitionTable& table, const std::string& path) {
    uint64_t prev_end = 0;
    for (const Partition& p : table.partitions) {
        if (p.size == 0 || p.end() > table.disk_size)
            throw Error("damaged partition table on " + path + ": partition " + std::to_string(p.number) +
                        " reaches past the end of the disk");
        if (p.offset < prev_end)
            throw Error("damaged partition table on " + path + ": partition " + std::to_string(p.number) +
                        " overlaps the one before it");
        prev_end = p.end();
    }
}

}  // namespace

PartitionTable read_partition_table(const DiskFile& disk) {
    PartitionTable table;
    table.disk_size = disk.size();
    Probe pr = new_probe(disk, 0, 0);
    blkid_probe_enable_superblocks(pr.get(), 0);
    blkid_probe_enable_partitions(pr.get(), 1);
    blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_ENTRY_DETAILS);
    table.sector_size = blkid_probe_get_sectorsize(pr.get());
    if (blkid_do_fullprobe(pr.get()) < 0) throw Error("cannot read the partition table of " + disk.path());
    blkid_partlist list = blkid_probe_get_partitions(pr.get());
    blkid_parttable root = list ? blkid_partlist_get_table(list) : nullptr;
    if (!root)
        throw Error("no partition table found on " + disk.path() +
                    " (none at all, or a damaged GPT)\n"
                    "NTC works on whole partitioned disks, such as scripts/build-guest-disk.sh makes");
    table.scheme = blkid_parttable_get_type(root);
    if (const char* id = blkid_parttable_get_id(root)) table.disk_id = id;

    int n = blkid_partlist_numof_partitions(list);
    for (int i = 0; i < n; i++) {
        blkid_partition bp = blkid_partlist_get_partition(list, i);
        if (blkid_partition_is_extended(bp)) continue;  // a container: its EBRs are copied as outside space
        Partition p;
        p.number = blkid_partition_get_partno(bp);
        p.offset = static_cast<uint64_t>(blkid_partition_get_start(bp)) * 512;
        p.size = static_cast<uint64_t>(blkid_partition_get_size(bp)) * 512;
        if (const char* t = blkid_partition_get_type_string(bp)) {
            p.type = t;
        } else {
            char code[8];
            std::snprintf(code, sizeof code, "0x%02x", blkid_partition_get_type(bp));
            p.type = code;
        }
        if (const char* u = blkid_partition_get_uuid(bp)) p.part_uuid = u;
        if (const char* name = blkid_partition_get_name(bp)) p.name = name;
        table.partitions.push_back(p);
    }
    std::sort(table.partitions.begin(), table.partitions.end(),
              [](const Partition& a, const Partition& b) { return a.offset < b.offset; });
    check_layout(table, disk.path());
    for (Partition& p : table.partitions) probe_contents(disk, p);
    return table;
}

std::vector<Extent> space_outside_partitions(const PartitionTable& table) {
    std::vector<Extent> out;
    uint64_t pos = 0;
    for (const Partition& p : table.partitions) {
        if (p.offset > pos) out.push_back({pos, p.offset - pos});
        pos = p.end();
    }
    if (table.disk_size > pos) out.push_back({pos, table.disk_size - pos});
    return out;
}

}  // namespace ntc
