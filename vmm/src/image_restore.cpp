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

// Follows the image stream page by page: header, PFN pages, data pages.
class ImageLoader {
public:
    explicit ImageLoader(const GuestMemory& memory) : memory_(memory) {}

    void take(uint64_t index, ntc::PageView page) {
        if (index == 0) return take_header(page);
        if (index <= meta_pages_) return take_pfns(page);
        uint64_t k = index - 1 - meta_pages_;
        if (k >= pfns_.size()) throw ImageRefused("the image holds more data pages than its header says");
        std::memcpy(memory_.span(pfns_[k] << kPageShift, NTC_PAGE_SIZE), page.data(), NTC_PAGE_SIZE);
    }

    const ntc_swsusp_info& info() const { return info_; }

private:
    void take_header(ntc::PageView page) {
        std::memcpy(&info_, page.data(), sizeof info_);
        // snapshot.c: one header page, then the PFNs of the data pages as
        // unsigned longs, then the data pages.
        uint64_t per_page = NTC_PAGE_SIZE / sizeof(uint64_t);
        meta_pages_ = (info_.image_pages + per_page - 1) / per_page;
        if (info_.pages != 1 + meta_pages_ + info_.image_pages)
            throw ImageRefused("the image header's page counts do not add up");
        pfns_.reserve(info_.image_pages);
    }

    // The frames come in ascending order (memory_bm_next_pfn), which also
    // rules out a frame given twice; each must be RAM of this machine.
    void take_pfns(ntc::PageView page) {
        const uint8_t* p = page.data();
        for (size_t i = 0; i < NTC_PAGE_SIZE / 8 && pfns_.size() < info_.image_pages; i++, p += 8) {
            uint64_t pfn;
            std::memcpy(&pfn, p, 8);
            if (!pfns_.empty() && pfn <= pfns_.back())
                throw ImageRefused("the image's page frame list is out of order at frame " + std::to_string(pfn));
            if (pfn > (UINT64_MAX >> kPageShift) || !memory_.span(pfn << kPageShift, NTC_PAGE_SIZE))
                throw ImageRefused("the image holds page frame " + std::to_string(pfn) +
                                   ", which is not RAM in this machine");
            pfns_.push_back(pfn);
        }
    }

    const GuestMemory& memory_;
    ntc_swsusp_info info_{};
    uint64_t meta_pages_ = 0;
    std::vector<uint64_t> pfns_;
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

RestoreEntry load_image(const ImageLocation& image, const GuestMemory& memory, uint64_t ram_bytes) {
    ImageLoader loader(memory);
    ntc::ImageCheck check;
    try {
        ntc::DiskFile disk(image.disk, ntc::DiskFile::Mode::read);
        ntc::PartitionPageReader reader(disk, partition_of(image));
        ntc::Page page0;
        reader.read_page(0, page0);
        ntc::SwapArea area = ntc::inspect_swap_area(page0);
        if (!(area.image_flags & NTC_SF_NOCOMPRESS_MODE))
            throw ImageRefused("the image is compressed; ntc-vmm reads only uncompressed images "
                               "(resume it with --boot-kernel)");
        check = ntc::check_image(reader, area, [&](uint64_t i, ntc::PageView p) { loader.take(i, p); });
    } catch (const ImageRefused&) {
        throw;
    } catch (const ntc::Error& e) {
        throw ntc::Error(std::string("cannot read the image: ") + e.what());
    }
    if (!check.ok()) throw ntc::Error("the image on " + image.disk + " is damaged:" + problems_text(check));

    const ntc_swsusp_info& info = loader.info();
    if (info.e820_checksum != e820_checksum(e820_map(ram_bytes)))
        throw ntc::Error("the image was taken on a machine with another memory map than this one "
                         "(ntc-vmm with " +
                         std::to_string(ram_bytes >> 20) + " MiB); it cannot resume here");

    // The image kernel maps restore_registers() in its own page tables,
    // 4- or 5-level; which one is whichever finds it at its physical address.
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
