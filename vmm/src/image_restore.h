#pragma once
// Resuming a hibernation image without a boot kernel.
//
// A stock resume boots a second kernel only to read the image, copy each page
// back to its frame and jump into the image kernel's restore_registers().  A
// VMM owns guest RAM outright, so it can put the pages in place itself and
// start the boot CPU at restore_registers(), in the state the boot kernel's
// core_restore_code() leaves it in: long mode on page tables that map that
// entry, interrupts off, %r9 = the image kernel's CR3.  The image kernel then
// restores its own registers, GDT, IDT and MSRs and resumes its devices, as
// after any resume (kernel/power/hibernate.c, arch/x86/power/).
#include <cstdint>
#include <ntc/overlay.h>
#include <string>

#include "guest_memory.h"
#include "kvm.h"

namespace ntc::vmm {

// Where and how the image kernel is entered (its restore_data_record).
struct RestoreEntry {
    uint64_t jump_address;  // virtual address of restore_registers()
    uint64_t cr3;           // the image kernel's page tables, no PCID bits
    bool five_level;        // those page tables are 5-level (CR4.LA57)
    uint64_t image_bytes;   // the image as read, header and PFN pages included
};

// A swap partition of a disk holding an uncompressed image.
struct ImageLocation {
    std::string disk;
    uint64_t partition_offset;
    uint64_t partition_bytes;
};

// Reads and checks the whole image and copies its pages into guest RAM of a
// machine of `ram_bytes`.  Throws ntc::Error, before anything on the disk is
// changed, when the image is damaged, was taken on another memory map, or
// its pages or entry do not fit this machine.
RestoreEntry load_image(const ImageLocation& image, const GuestMemory& memory, uint64_t ram_bytes);

// Puts the swap signature back (orig_sig) and makes it durable, as the stock
// resume does before it loads: the area becomes the resumed machine's swap
// and the same image is never resumed twice.
// With an overlay (an instance over a shared disk 2), the page goes there.
void retire_image(const ImageLocation& image, ntc::Overlay* overlay);

// Register state of the boot CPU at restore_registers().
void restore_cpu_registers(const RestoreEntry& entry, kvm_regs& regs, kvm_sregs& sregs);

// The physical address `virt` maps to under the 4- or 5-level page tables at
// `cr3`, if it is mapped.
std::optional<uint64_t> translate(const GuestMemory& memory, uint64_t cr3, uint64_t virt, bool five_level);

}  // namespace ntc::vmm
