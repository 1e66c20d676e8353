#pragma once
// A guest's disk image from the host, through libntcdisk (the code ntc-clone
// and ntc-info use): the VM's hold on it, and read-only access to its
// partition table and the boot files in its ext2/3/4 filesystems, nothing
// mounted.
#include <cstdint>
#include <ntc/disk_file.h>
#include <ntc/overlay.h>
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

// Opens an instance's overlay for writing: the overlay file held
// exclusively, its base shared, so that instances share a base and a VM
// that writes the base in place excludes them all.  Throws ntc::Error.
ntc::Overlay open_vm_overlay(const std::string& path);

// Makes `path` a new, empty overlay of `base` (which must not be in use by a
// VM in place).  Throws ntc::Error, leaving no file.
void create_vm_overlay(const std::string& path, const std::string& base);

// The disk's partition table identifier (GPT disk GUID or MBR signature),
// which names the machine's MAC address; throws ntc::Error when unreadable.
std::string partition_table_id(const std::string& disk);

struct BootFiles {
    std::vector<uint8_t> kernel;
    std::vector<uint8_t> initrd;
    std::string cmdline;
    std::string source;  // what named them, for the operator: "the entry 'Debian' of /boot/grub/grub.cfg, ..."
};

// Finds the kernel, initrd and command line on the disk's ext2/3/4
// filesystems, in this order, each looked for on every partition before the
// next: the Boot Loader Specification entry in /boot/loader/entries
// (choose_boot_entry); GRUB's default entry in /boot/grub/grub.cfg, or in
// /grub/grub.cfg of a /boot partition (choose_grub_entry); /vmlinuz and
// /initrd.img, or /boot/vmlinuz and /boot/initrd.img, with "root=DEVICE ro"
// from /etc/fstab.  The files are read from the filesystem that names them.
// With a release, only that kernel is taken (/boot/vmlinuz-RELEASE and
// /boot/initrd.img-RELEASE in the last case).  A command line without
// console= gets console=ttyS0, the machine's one console.  Throws
// ntc::Error saying what was looked for when nothing is found, or which
// named file is missing.
BootFiles load_boot_files(const std::string& disk, const std::optional<std::string>& release);

// Whether a kernel command line has the option `name`, with a value or without.
bool has_kernel_option(const std::string& cmdline, const std::string& name);

}  // namespace ntc::vmm
