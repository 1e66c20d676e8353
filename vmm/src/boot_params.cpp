#include "boot_params.h"

#include <algorithm>
#include <cstring>
#include <ntc/error.h>

#include "layout.h"

namespace ntc::vmm {

namespace {
constexpr uint32_t kHeaderMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kMinProtocol = 0x020c;      // xloadflags, 64-bit entry
constexpr size_t kSetupHeaderOffset = 0x1f1;
}  // namespace

KernelImage parse_bzimage(std::span<const uint8_t> image) {
    if (image.size() < 0x1000) throw ntc::Error("kernel image is too small to be a bzImage");
    setup_header header;
    // The header's length is given by the jump at 0x200; never copy past ours.
    size_t length = std::min<size_t>(sizeof(header), 0x202 + image[0x201] - kSetupHeaderOffset);
    std::memset(&header, 0, sizeof(header));
    std::memcpy(&header, image.data() + kSetupHeaderOffset, length);
    if (header.boot_flag != 0xaa55 || header.header != kHeaderMagic)
        throw ntc::Error("kernel image is not a bzImage (no boot protocol header)");
    if (header.version < kMinProtocol) throw ntc::Error("kernel boot protocol is older than 2.12");
    if (!(header.xloadflags & XLF_KERNEL_64)) throw ntc::Error("kernel has no 64-bit entry point");
    size_t setup_sects = header.setup_sects ? header.setup_sects : 4;
    size_t code_offset = (setup_sects + 1) * 512;
    if (code_offset >= image.size()) throw ntc::Error("kernel image is truncated");
    return {header, image.subspan(code_offset)};
}

boot_params make_boot_params(const KernelImage& kernel, const BootSetup& setup, const std::vector<E820Entry>& e820) {
    boot_params params;
    std::memset(&params, 0, sizeof(params));
    params.hdr = kernel.header;
    params.hdr.type_of_loader = 0xff;  // undefined loader
    params.hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
    params.hdr.loadflags &= ~KEEP_SEGMENTS;
    params.hdr.heap_end_ptr = 0xfe00;
    params.hdr.cmd_line_ptr = static_cast<uint32_t>(setup.cmdline_address);
    params.ext_cmd_line_ptr = static_cast<uint32_t>(setup.cmdline_address >> 32);
    params.hdr.ramdisk_image = static_cast<uint32_t>(setup.initrd_address);
    params.ext_ramdisk_image = static_cast<uint32_t>(setup.initrd_address >> 32);
    params.hdr.ramdisk_size = static_cast<uint32_t>(setup.initrd_size);
    params.ext_ramdisk_size = static_cast<uint32_t>(setup.initrd_size >> 32);
    params.hdr.code32_start = layout::kKernelLoad;
    params.acpi_rsdp_addr = setup.rsdp_address;
    size_t n = std::min<size_t>(e820.size(), E820_MAX_ENTRIES_ZEROPAGE);
    for (size_t i = 0; i < n; i++) {
        params.e820_table[i].addr = e820[i].address;
        params.e820_table[i].size = e820[i].size;
        params.e820_table[i].type = static_cast<uint32_t>(e820[i].type);
    }
    params.e820_entries = static_cast<uint8_t>(n);
    return params;
}

uint64_t place_initrd(const setup_header& header, uint64_t low_ram_end, uint64_t initrd_size) {
    uint64_t limit = std::min<uint64_t>(low_ram_end, uint64_t(header.initrd_addr_max) + 1);
    uint64_t kernel_end = layout::kKernelLoad + header.init_size;
    if (initrd_size > limit || ((limit - initrd_size) & ~0xfffull) < kernel_end)
        throw ntc::Error("initrd does not fit in guest RAM beside the kernel; give the VM more memory");
    return (limit - initrd_size) & ~0xfffull;
}

}  // namespace ntc::vmm
