#include "guest_disk.h"

#include <blkid/blkid.h>
#include <ext2fs/ext2fs.h>

#include <memory>

#include "error.h"

namespace ntcvmm {

namespace {

constexpr const char* kEntriesDir = "/boot/loader/entries";

std::vector<uint8_t> read_file(ext2_filsys fs, const std::string& path) {
    ext2_ino_t ino;
    if (ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino) != 0)
        throw UserError("file " + path + " not found");
    ext2_file_t file;
    if (ext2fs_file_open(fs, ino, 0, &file) != 0) throw UserError("cannot open " + path);
    std::unique_ptr<std::remove_pointer_t<ext2_file_t>, decltype(&ext2fs_file_close)> closer(file, ext2fs_file_close);
    __u64 size = 0;
    ext2fs_file_get_lsize(file, &size);
    if (size > (1ull << 31)) throw UserError(path + " is too large");
    std::vector<uint8_t> data(size);
    size_t done = 0;
    while (done < size) {
        unsigned int got = 0;
        unsigned int want = unsigned(std::min<uint64_t>(size - done, 1u << 20));
        if (ext2fs_file_read(file, data.data() + done, want, &got) != 0 || got == 0)
            throw UserError("cannot read " + path);
        done += got;
    }
    return data;
}

std::vector<std::string> list_dir(ext2_filsys fs, const std::string& path) {
    std::vector<std::string> names;
    ext2_ino_t ino;
    if (ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino) != 0) return names;
    auto collect = [](ext2_ino_t, int, ext2_dir_entry* dirent, int, int, char*, void* priv) -> int {
        auto* out = static_cast<std::vector<std::string>*>(priv);
        out->emplace_back(dirent->name, ext2fs_dirent_name_len(dirent));
        return 0;
    };
    ext2fs_dir_iterate2(fs, ino, 0, nullptr, collect, &names);
    return names;
}

struct Filesystem {
    ext2_filsys fs = nullptr;
    ~Filesystem() {
        if (fs) ext2fs_close_free(&fs);
    }
};

}  // namespace

namespace {

using Probe = std::unique_ptr<blkid_struct_probe, decltype(&blkid_free_probe)>;

Probe partition_probe(const std::string& disk) {
    Probe probe(blkid_new_probe_from_filename(disk.c_str()), blkid_free_probe);
    if (!probe) throw UserError(errno_text("cannot read disk " + disk));
    blkid_probe_enable_partitions(probe.get(), 1);
    return probe;
}

}  // namespace

std::string partition_table_id(const std::string& disk) {
    Probe probe = partition_probe(disk);
    blkid_partlist list = blkid_probe_get_partitions(probe.get());
    blkid_parttable table = list ? blkid_partlist_get_table(list) : nullptr;
    const char* id = table ? blkid_parttable_get_id(table) : nullptr;
    return id ? id : "";
}

std::vector<Partition> read_partitions(const std::string& disk) {
    Probe probe = partition_probe(disk);
    blkid_partlist list = blkid_probe_get_partitions(probe.get());
    std::vector<Partition> parts;
    if (!list) return parts;
    int n = blkid_partlist_numof_partitions(list);
    for (int i = 0; i < n; i++) {
        blkid_partition p = blkid_partlist_get_partition(list, i);
        parts.push_back({unsigned(blkid_partition_get_partno(p)), uint64_t(blkid_partition_get_start(p)) * 512,
                         uint64_t(blkid_partition_get_size(p)) * 512});
    }
    return parts;
}

BootFiles load_boot_files(const std::string& disk, const std::optional<std::string>& release) {
    auto parts = read_partitions(disk);
    if (parts.empty()) throw UserError("disk " + disk + " has no partition table");
    bool found_entries = false;
    for (const auto& part : parts) {
        Filesystem f;
        std::string options = "offset=" + std::to_string(part.offset);
        if (ext2fs_open2(disk.c_str(), options.c_str(), EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &f.fs) != 0) {
            f.fs = nullptr;
            continue;
        }
        std::vector<BootEntry> entries;
        for (const auto& name : list_dir(f.fs, kEntriesDir)) {
            if (!name.ends_with(".conf")) continue;
            auto text = read_file(f.fs, std::string(kEntriesDir) + "/" + name);
            entries.push_back(parse_boot_entry(name.substr(0, name.size() - 5),
                                               std::string_view(reinterpret_cast<char*>(text.data()), text.size())));
        }
        if (entries.empty()) continue;
        found_entries = true;
        auto entry = choose_boot_entry(entries, release);
        if (!entry) continue;
        BootFiles files;
        files.kernel = read_file(f.fs, entry->linux);
        // Several initrds are concatenated, as boot loaders do.
        for (const auto& path : entry->initrd) {
            auto part_data = read_file(f.fs, path);
            files.initrd.insert(files.initrd.end(), part_data.begin(), part_data.end());
        }
        files.cmdline = entry->options;
        return files;
    }
    if (release && found_entries)
        throw UserError("disk " + disk + " has no boot entry for kernel " + *release + " in " + kEntriesDir);
    throw UserError("disk " + disk + " has no boot entry (" + kEntriesDir +
                    "/*.conf on an ext2/3/4 partition); give --kernel, --initrd and --append");
}

}  // namespace ntcvmm
