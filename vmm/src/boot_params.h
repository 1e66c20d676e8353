#pragma once
// Linux x86 boot protocol (Documentation/x86/boot.rst): a bzImage's setup
// header, and the zero page the VMM hands to the kernel's 64-bit entry.
#include <asm/bootparam.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "e820.h"

namespace ntc::vmm {

struct KernelImage {
    setup_header header;            // as found in the bzImage
    std::span<const uint8_t> code;  // the protected-mode part, loaded at 1 MiB
};

// Validates the bzImage (boot flag, "HdrS", protocol >= 2.12, 64-bit entry)
// and splits it; throws ntc::Error with the reason when it is not usable.
KernelImage parse_bzimage(std::span<const uint8_t> image);

struct BootSetup {
    uint64_t cmdline_address;
    uint64_t initrd_address;
    uint64_t initrd_size;
    uint64_t rsdp_address;
};

// The zero page: the kernel's own setup header plus what the loader fills in.
boot_params make_boot_params(const KernelImage& kernel, const BootSetup& setup, const std::vector<E820Entry>& e820);

// Highest page-aligned address for an initrd of that size, below the top of
// low RAM and the kernel's initrd_addr_max, and above the kernel's
// decompression area; throws ntc::Error when it does not fit.
uint64_t place_initrd(const setup_header& header, uint64_t low_ram_end, uint64_t initrd_size);

}  // namespace ntc::vmm
