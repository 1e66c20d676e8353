#include "image_restore.h"

#include <cstring>
#include <ntc/disk_file.h>
#include <ntc/disk_report.h>
#include <ntc/error.h>
#include <ntc/swap_area.h>
#include <vector>

#include "boot_loader.h"
#include "e820.h"

namespace ntc::vmm {

namespace {

constexpr uint64_t kPageShift = 12;
constexpr uint64_t kAddressMask = 0x000ffffffffff000ull;  // bits 51..12 of a CR3 or table entry
constexpr uint64_t kPresent = 1, kLargePage = 0x80;
constexpr uint64_t kCr4La57 = 1ull << 12;

ntc::Partition partition_of(const ImageLocation& image) {
    ntc::Partition part;
    part.offset = image.partition_offset;
    part.size = image.partition_bytes;
    return part;
}

// Why the image cannot be resumed on this machine.  load_image lets it
// through as it is, where an error reading the disk gets "cannot read the
// image: " before it.
struct ImageRefused : ntc::Error {
    using ntc::Error::Error;
};

// Takes the header and PFN pages of the image stream as map_image reads them.
class LayoutReader {
public:
    explicit LayoutReader(const GuestMemory& memory, ImageLayout& layout) : memory_(memory), layout_(layout) {}

    void take(uint64_t index, ntc::PageView page) {
        if (index == 0) return take_header(page);
        take_pfns(page);
    }

private:
    void take_header(ntc::PageView page) {
        std::memcpy(&layout_.info, page.data(), sizeof layout_.info);
        // snapshot.c: one header page, then the PFNs of the data pages as
        // unsigned longs, then the data pages.
        const ntc_swsusp_info& info = layout_.info;
        uint64_t per_page = NTC_PAGE_SIZE / sizeof(uint64_t);
        if (info.pages != 1 + (info.image_pages + per_page - 1) / per_page + info.image_pages)
            throw ImageRefused("the image header's page counts do not add up");
        layout_.frames.reserve(info.image_pages);
    }

    // The frames come in ascending order (memory_bm_next_pfn), which also
    // rules out a frame given twice; each must be RAM of this machine.
    void take_pfns(ntc::PageView page) {
        std::vector<uint64_t>& frames = layout_.frames;
        const uint8_t* p = page.data();
        for (size_t i = 0; i < NTC_PAGE_SIZE / 8 && frames.size() < layout_.info.image_pages; i++, p += 8) {
            uint64_t pfn;
            std::memcpy(&pfn, p, 8);
            if (!frames.empty() && pfn <= frames.back())
                throw ImageRefused("the image's page frame list is out of order at frame " + std::to_string(pfn));
            if (pfn > (UINT64_MAX >> kPageShift) || !memory_.span(pfn << kPageShift, NTC_PAGE_SIZE))
                throw ImageRefused("the image holds page frame " + std::to_string(pfn) +
                                   ", which is not RAM in this machine");
            frames.push_back(pfn);
        }
    }

    const GuestMemory& memory_;
    ImageLayout& layout_;
};

std::string problems_text(const ntc::ImageCheck& check) {
    std::string text;
    for (const auto& p : check.problems) text += "\n  " + p;
    return text;
}

}  // namespace

std::optional<uint64_t> translate(const GuestMemory& memory, uint64_t cr3, uint64_t virt, bool five_level) {
    uint64_t table = cr3 & kAddressMask;
    for (int level = five_level ? 5 : 4; level >= 1; level--) {
        unsigned shift = unsigned(kPageShift) + 9 * unsigned(level - 1);
        auto entry = memory.read<uint64_t>(table + ((virt >> shift) & 511) * 8);
        if (!entry || !(*entry & kPresent)) return std::nullopt;
        uint64_t frame = *entry & kAddressMask;
        if (level == 1 || ((level == 2 || level == 3) && (*entry & kLargePage))) {
            uint64_t offset_mask = (1ull << shift) - 1;
            return (frame & ~offset_mask) | (virt & offset_mask);
        }
        table = frame;
    }
    return std::nullopt;
}

uint64_t ImageLayout::run(uint64_t k, uint64_t max) const {
    uint64_t n = 1;
    while (n < max && k + n < frames.size() && frames[k + n] == frames[k] + n &&
           offsets[k + n] == offsets[k] + n * NTC_PAGE_SIZE)
        n++;
    return n;
}

ImageLayout read_image_layout(const ImageLocation& image, const GuestMemory& memory, uint64_t ram_bytes) {
    ImageLayout layout;
    LayoutReader reader_of_pages(memory, layout);
    ntc::ImageCheck check;
    std::vector<uint64_t> slots;
    try {
        ntc::DiskFile disk(image.disk, ntc::DiskFile::Mode::read);
        ntc::PartitionPageReader reader(disk, partition_of(image));
        ntc::Page page0;
        reader.read_page(0, page0);
        ntc::SwapArea area = ntc::inspect_swap_area(page0);
        if (!(area.image_flags & NTC_SF_NOCOMPRESS_MODE))
            throw ImageRefused("the image is compressed; ntc-vmm reads only uncompressed images "
                               "(resume it with --boot-kernel)");
        check = ntc::map_image(
            reader, area, [&](uint64_t i, ntc::PageView p) { reader_of_pages.take(i, p); }, slots);
        if (area.record && area.kind == ntc::AreaKind::ntc_checkpoint) layout.image_crc32 = area.record->image_crc32;
    } catch (const ImageRefused&) {
        throw;
    } catch (const ntc::Error& e) {
        throw ntc::Error(std::string("cannot read the image: ") + e.what());
    }
    if (!check.ok()) throw ntc::Error("the image on " + image.disk + " is damaged:" + problems_text(check));
    if (slots.size() != layout.frames.size())
        throw ntc::Error("the image on " + image.disk + " is damaged: its swap map lists " +
                         std::to_string(slots.size()) + " data pages, its header " +
                         std::to_string(layout.frames.size()));
    layout.head_crc32 = check.crc32;
    layout.offsets.reserve(slots.size());
    for (uint64_t slot : slots) layout.offsets.push_back(image.partition_offset + slot * NTC_PAGE_SIZE);

    if (layout.info.e820_checksum != e820_checksum(e820_map(ram_bytes)))
        throw ntc::Error("the image was taken on a machine with another memory map than this one "
                         "(ntc-vmm with " +
                         std::to_string(ram_bytes >> 20) + " MiB); it cannot resume here");
    return layout;
}

std::optional<std::string> image_crc_problem(const ImageLayout& layout, uint32_t pages_crc32) {
    if (!layout.image_crc32 || *layout.image_crc32 == pages_crc32) return std::nullopt;
    return "image CRC mismatch: the record says " + std::to_string(*layout.image_crc32) + ", the pages give " +
           std::to_string(pages_crc32);
}

RestoreEntry load_image(const ImageLocation& image, const ImageLayout& layout, const GuestMemory& memory) {
    constexpr uint64_t kRunPages = 256;
    uint32_t crc = layout.head_crc32;
    try {
        ntc::DiskFile disk(image.disk, ntc::DiskFile::Mode::read);
        for (uint64_t k = 0; k < layout.frames.size();) {
            uint64_t n = layout.run(k, kRunPages);
            uint8_t* dst = memory.span(layout.frames[k] << kPageShift, n * NTC_PAGE_SIZE);
            if (!dst) {  // the run crosses from one RAM region into the next
                n = 1;
                dst = memory.span(layout.frames[k] << kPageShift, NTC_PAGE_SIZE);
            }
            disk.read_at(layout.offsets[k], {dst, n * NTC_PAGE_SIZE});
            crc = ntc::crc32_update(crc, {dst, n * NTC_PAGE_SIZE});
            k += n;
        }
    } catch (const ntc::Error& e) {
        throw ntc::Error(std::string("cannot read the image: ") + e.what());
    }
    if (auto problem = image_crc_problem(layout, crc))
        throw ntc::Error("the image on " + image.disk + " is damaged:\n  " + *problem);
    return restore_entry(layout, memory);
}

RestoreEntry restore_entry(const ImageLayout& layout, const GuestMemory& memory) {
    // The image kernel maps restore_registers() in its own page tables,
    // 4- or 5-level; which one is whichever finds it at its physical address.
    const ntc_swsusp_info& info = layout.info;
    for (bool five_level : {false, true})
        if (translate(memory, info.cr3, info.jump_address, five_level) == info.jump_address_phys)
            return {info.jump_address, info.cr3 & kAddressMask, five_level, info.size};
    throw ntc::Error("the image kernel's page tables do not map its restore entry; "
                     "resume it with --boot-kernel");
}

void retire_image(const ImageLocation& image, ntc::Overlay* overlay) {
    try {
        // The same steps on the disk file or through the overlay.
        auto retire = [&image](auto& disk) {
            ntc::Page page0;
            disk.read_at(image.partition_offset, page0);
            std::memcpy(page0.data() + NTC_OFF_SIG, page0.data() + NTC_OFF_ORIG_SIG, NTC_SIG_LEN);
            disk.write_at(image.partition_offset, page0);
            disk.sync();
        };
        if (overlay) {
            retire(*overlay);
        } else {
            ntc::DiskFile disk(image.disk, ntc::DiskFile::Mode::read_write);
            retire(disk);
        }
    } catch (const ntc::Error& e) {
        std::string where = overlay ? "the overlay " + overlay->file().path() : image.disk;
        throw ntc::Error("cannot mark the image on " + where + " as resumed: " + e.what());
    }
}

// The GDT and IDT registers are left as for a boot: nothing uses them before
// restore_registers() loads the image kernel's own.
void restore_cpu_registers(const RestoreEntry& entry, kvm_regs& regs, kvm_sregs& sregs) {
    long_mode_registers(entry.jump_address, entry.cr3, regs, sregs);
    regs.r9 = entry.cr3;     // restore_registers() loads it into CR3 first
    sregs.cr0 = 0x80050033;  // PG, AM, WP, NE, ET, MP, PE: as the kernel runs
    if (entry.five_level) sregs.cr4 |= kCr4La57;
    sregs.efer |= 0x801;  // NXE, SCE: the kernel's page tables set NX bits
}

}  // namespace ntc::vmm
