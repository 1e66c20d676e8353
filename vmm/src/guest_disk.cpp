#include "guest_disk.h"

#include <cerrno>
#include <ntc/error.h>
#include <ntc/ext_fs.h>
#include <ntc/partition_table.h>

namespace ntc::vmm {

namespace {

constexpr const char* kEntriesDir = "/boot/loader/entries";
constexpr uint64_t kMaxBootFile = 1ull << 31;

ntc::PartitionTable partition_table(const std::string& disk) {
    return ntc::read_partition_table(ntc::DiskFile(disk, ntc::DiskFile::Mode::read));
}

std::vector<uint8_t> read_file(const ntc::ExtFs& fs, const std::string& path) {
    auto data = fs.read_file(path, kMaxBootFile);
    if (!data) throw ntc::Error("file " + path + " not found");
    return std::move(*data);
}

}  // namespace

ntc::DiskFile open_vm_disk(const std::string& path, bool read_only) {
    ntc::DiskFile disk(path, read_only ? ntc::DiskFile::Mode::read : ntc::DiskFile::Mode::read_write, "disk " + path);
    if (!disk.try_lock_exclusive()) {
        if (errno == EWOULDBLOCK)
            throw ntc::Error("disk " + path + " is in use (locked by another VM or by ntc-clone)");
        ntc::throw_errno("cannot lock disk " + path);
    }
    return disk;
}

std::string partition_table_id(const std::string& disk) { return partition_table(disk).disk_id; }

BootFiles load_boot_files(const std::string& disk, const std::optional<std::string>& release) {
    bool found_entries = false;
    for (const auto& part : partition_table(disk).partitions) {
        if (!part.is_ext()) continue;
        std::optional<ntc::ExtFs> fs;
        try {
            fs.emplace(disk, part.offset, part.size);
        } catch (const ntc::Error&) {
            continue;  // a damaged filesystem holds no usable boot entry
        }
        std::vector<BootEntry> entries;
        for (const auto& name : fs->list_dir(kEntriesDir)) {
            if (!name.ends_with(".conf")) continue;
            auto text = read_file(*fs, std::string(kEntriesDir) + "/" + name);
            entries.push_back(parse_boot_entry(name.substr(0, name.size() - 5),
                                               std::string_view(reinterpret_cast<char*>(text.data()), text.size())));
        }
        if (entries.empty()) continue;
        found_entries = true;
        auto entry = choose_boot_entry(entries, release);
        if (!entry) continue;
        BootFiles files;
        files.kernel = read_file(*fs, entry->linux);
        // Several initrds are concatenated, as boot loaders do.
        for (const auto& path : entry->initrd) {
            auto part_data = read_file(*fs, path);
            files.initrd.insert(files.initrd.end(), part_data.begin(), part_data.end());
        }
        files.cmdline = entry->options;
        return files;
    }
    if (release && found_entries)
        throw ntc::Error("disk " + disk + " has no boot entry for kernel " + *release + " in " + kEntriesDir);
    throw ntc::Error("disk " + disk + " has no boot entry (" + kEntriesDir +
                     "/*.conf on an ext2/3/4 partition); give --kernel, --initrd and --append");
}

}  // namespace ntc::vmm
