#include "guest_disk.h"

#include <cerrno>
#include <memory>
#include <ntc/error.h>
#include <ntc/ext_fs.h>
#include <ntc/partition_table.h>
#include <sstream>

#include "fstab.h"
#include "grub_config.h"

namespace ntc::vmm {

namespace {

constexpr const char* kEntriesDir = "/boot/loader/entries";
constexpr uint64_t kMaxBootFile = 1ull << 31;

ntc::PartitionTable partition_table(const std::string& disk) {
    return ntc::read_partition_table(ntc::DiskFile(disk, ntc::DiskFile::Mode::read));
}

struct ExtPartition {
    std::string name;  // "partition N of disk D"
    std::unique_ptr<ntc::ExtFs> fs;
};

std::vector<ExtPartition> ext_partitions(const std::string& disk) {
    std::vector<ExtPartition> partitions;
    for (const auto& part : partition_table(disk).partitions) {
        if (!part.is_ext()) continue;
        try {
            partitions.push_back({"partition " + std::to_string(part.number) + " of disk " + disk,
                                  std::make_unique<ntc::ExtFs>(disk, part.offset, part.size, ntc::ExtFs::Read::files)});
        } catch (const ntc::Error&) {
            // A damaged filesystem holds no usable boot files.
        }
    }
    return partitions;
}

std::optional<std::string> read_text(const ExtPartition& part, const std::string& path) {
    auto data = part.fs->read_file(path, kMaxBootFile);
    if (!data) return std::nullopt;
    return std::string(data->begin(), data->end());
}

// The files of the entry chosen to boot: one missing is an error, not a
// reason to look elsewhere, which would boot something else than the disk
// says.
BootFiles read_boot_files(const ExtPartition& part, const std::string& kernel, const std::vector<std::string>& initrds,
                          const std::string& cmdline, const std::string& named_by) {
    auto read = [&](const std::string& path) {
        auto data = part.fs->read_file(path, kMaxBootFile);
        if (!data) throw ntc::Error(part.name + ": " + path + ", named by " + named_by + ", not found");
        return std::move(*data);
    };
    BootFiles files{read(kernel), {}, cmdline, kernel + ", named by " + named_by + ", " + part.name};
    // Several initrds are concatenated, as boot loaders do.
    for (const auto& path : initrds) {
        auto data = read(path);
        files.initrd.insert(files.initrd.end(), data.begin(), data.end());
    }
    return files;
}

std::optional<BootFiles> from_boot_entries(const ExtPartition& part, const std::optional<std::string>& release) {
    std::vector<BootEntry> entries;
    for (const auto& name : part.fs->list_dir(kEntriesDir)) {
        if (!name.ends_with(".conf")) continue;
        if (auto text = read_text(part, std::string(kEntriesDir) + "/" + name))
            entries.push_back(parse_boot_entry(name.substr(0, name.size() - 5), *text));
    }
    auto entry = choose_boot_entry(std::move(entries), release);
    if (!entry) return std::nullopt;
    return read_boot_files(part, entry->linux, entry->initrd, entry->options,
                           std::string(kEntriesDir) + "/" + entry->name + ".conf");
}

std::optional<BootFiles> from_grub_menu(const ExtPartition& part, const std::optional<std::string>& release) {
    // In the root filesystem, or at the top of a /boot partition; the paths
    // in it are relative to the filesystem it is on.
    for (std::string dir : {"/boot/grub", "/grub"}) {
        auto text = read_text(part, dir + "/grub.cfg");
        if (!text) continue;
        auto config = parse_grub_config(*text, read_text(part, dir + "/grubenv").value_or(""));
        auto entry = choose_grub_entry(config, release);
        if (!entry) continue;
        return read_boot_files(part, entry->linux, entry->initrd, entry->args,
                               "the entry '" + entry->path.back().title + "' of " + dir + "/grub.cfg");
    }
    return std::nullopt;
}

std::optional<BootFiles> from_kernel_links(const ExtPartition& part, const std::optional<std::string>& release) {
    auto fstab = read_text(part, "/etc/fstab");
    auto root = fstab ? fstab_root(*fstab) : std::nullopt;
    if (!root) return std::nullopt;
    // Debian's links to the newest kernel and its initrd are in /, or in
    // /boot on newer installs; a given release has its own files.
    std::vector<std::pair<std::string, std::string>> candidates = {{"/vmlinuz", "/initrd.img"},
                                                                   {"/boot/vmlinuz", "/boot/initrd.img"}};
    if (release) candidates = {{"/boot/vmlinuz-" + *release, "/boot/initrd.img-" + *release}};
    for (const auto& [kernel, initrd] : candidates) {
        auto kernel_data = part.fs->read_file(kernel, kMaxBootFile);
        if (!kernel_data) continue;
        // A kernel with its disk drivers built in boots without an initrd.
        auto initrd_data = part.fs->read_file(initrd, kMaxBootFile);
        return BootFiles{std::move(*kernel_data), initrd_data.value_or(std::vector<uint8_t>()), "root=" + *root + " ro",
                         kernel + " with the root in /etc/fstab, " + part.name};
    }
    return std::nullopt;
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

namespace {

void lock_shared(const ntc::DiskFile& base) {
    if (!base.try_lock_shared()) {
        if (errno == EWOULDBLOCK)
            throw ntc::Error("disk " + base.path() + " is in use by a VM that writes it in place (or by ntc-clone): " +
                             "an instance's base must stay unchanged");
        ntc::throw_errno("cannot lock disk " + base.path());
    }
}

}  // namespace

ntc::Overlay open_vm_overlay(const std::string& path) {
    ntc::Overlay overlay = ntc::Overlay::open(path, ntc::DiskFile::Mode::read_write);
    if (!overlay.file().try_lock_exclusive()) {
        if (errno == EWOULDBLOCK) throw ntc::Error("overlay " + path + " is in use (by another VM or by ntc-clone)");
        ntc::throw_errno("cannot lock overlay " + path);
    }
    lock_shared(overlay.base());
    return overlay;
}

void create_vm_overlay(const std::string& path, const std::string& base) {
    ntc::DiskFile disk(base, ntc::DiskFile::Mode::read, "disk " + base);
    lock_shared(disk);
    ntc::Overlay::create(path, std::move(disk));
}

std::string partition_table_id(const std::string& disk) { return partition_table(disk).disk_id; }

bool has_kernel_option(const std::string& cmdline, const std::string& name) {
    std::istringstream in(cmdline);
    std::string word;
    while (in >> word)
        if (word == name || word.starts_with(name + "=")) return true;
    return false;
}

BootFiles load_boot_files(const std::string& disk, const std::optional<std::string>& release) {
    auto partitions = ext_partitions(disk);
    for (auto find : {from_boot_entries, from_grub_menu, from_kernel_links})
        for (const auto& part : partitions)
            if (auto files = find(part, release)) {
                // ntc-vmm's one console is COM1; a command line written for a
                // PC's screen (Debian's installer writes no console=) would
                // show the operator nothing.
                if (!has_kernel_option(files->cmdline, "console")) {
                    files->cmdline += files->cmdline.empty() ? "console=ttyS0" : " console=ttyS0";
                    files->source += ", console=ttyS0 added";
                }
                return std::move(*files);
            }
    if (release) {
        std::string kernel = "/boot/vmlinuz-" + *release;
        throw ntc::Error("disk " + disk + " has no kernel " + *release + " to boot: no " + kEntriesDir +
                         "/*.conf for it, no /boot/grub/grub.cfg or /grub/grub.cfg with a menu entry for it, no " +
                         kernel +
                         " with a root in /etc/fstab, on any ext2/3/4 partition\nResume without --boot-kernel.");
    }
    throw ntc::Error("disk " + disk + " has no kernel to boot: no " + kEntriesDir +
                     "/*.conf, no /boot/grub/grub.cfg or /grub/grub.cfg with a menu entry to boot, no /vmlinuz or "
                     "/boot/vmlinuz with a root in /etc/fstab, on any ext2/3/4 partition\n"
                     "Give --kernel, --initrd and --append.");
}

}  // namespace ntc::vmm
