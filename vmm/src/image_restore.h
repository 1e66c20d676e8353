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
#include <optional>
#include <string>
#include <vector>

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

// Where each data page of an image goes and where it comes from.
struct ImageLayout {
    ntc_swsusp_info info{};
    std::vector<uint64_t> frames;         // data page k belongs in page frame frames[k] (ascending)
    std::vector<uint64_t> offsets;        // and is read from byte offsets[k] of the disk
    uint32_t head_crc32 = 0;              // CRC-32 of the header and PFN pages
    std::optional<uint32_t> image_crc32;  // the record's, of the whole stream (NTC checkpoints)

    // How many data pages from k on (at most `max`) lie one after the
    // other both in RAM and on disk: one read and one copy.
    uint64_t run(uint64_t k, uint64_t max) const;
};

// Reads the image's header and PFN pages and walks its swap map, without its
// data pages.  Throws ntc::Error, before anything is changed, when the map or
// header is damaged, the image was taken on another memory map than that of
// a machine of `ram_bytes`, or a frame is not RAM of this machine.
ImageLayout read_image_layout(const ImageLocation& image, const GuestMemory& memory, uint64_t ram_bytes);

// Reads every data page into guest RAM and checks the stream's CRC, then
// finds the entry.  Throws ntc::Error, with nothing on disk changed, when
// the image is damaged or its entry does not fit this machine.
RestoreEntry load_image(const ImageLocation& image, const ImageLayout& layout, const GuestMemory& memory);

// The entry of an image whose pages guest RAM holds, or serves on demand.
RestoreEntry restore_entry(const ImageLayout& layout, const GuestMemory& memory);

// "image CRC mismatch: ..." when `pages_crc32` is not what the layout's
// record says, else nothing.
std::optional<std::string> image_crc_problem(const ImageLayout& layout, uint32_t pages_crc32);

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
