#pragma once
// A guest's disk image from the host, through libntcdisk (the code ntc-clone
// and ntc-info use): the VM's hold on it, and read-only access to its
// partition table and the boot files in its ext2/3/4 filesystems, nothing
// mounted.
#include <cstdint>
#include <ntc/disk_file.h>
#include <optional>
#include <string>
#include <vector>

#include "boot_entry.h"

namespace ntc::vmm {

// Opens a disk of the VM and takes an exclusive flock on it, held for as
// long as the DiskFile lives: ntc-clone and a second VMM take the same lock
// and so refuse a disk in use.  Throws ntc::Error saying which disk is in
// use or cannot be opened.
ntc::DiskFile open_vm_disk(const std::string& path, bool read_only);

// The disk's partition table identifier (GPT disk GUID or MBR signature),
// which names the machine's MAC address; throws ntc::Error when unreadable.
std::string partition_table_id(const std::string& disk);

struct BootFiles {
    std::vector<uint8_t> kernel;
    std::vector<uint8_t> initrd;
    std::string cmdline;
};

// Finds the boot entry in /boot/loader/entries of the first ext filesystem on
// the disk that has one (see choose_boot_entry for `release`) and reads its
// kernel and initrd from that filesystem; throws ntc::Error with the reason.
BootFiles load_boot_files(const std::string& disk, const std::optional<std::string>& release);

}  // namespace ntc::vmm
