#include "boot_loader.h"

#include <cstring>
#include <ntc/error.h>

#include "acpi.h"
#include "boot_params.h"
#include "e820.h"
#include "instance_record.h"
#include "layout.h"
#include "vm_generation.h"

namespace ntc::vmm {

namespace {

void copy_in(const GuestMemory& memory, uint64_t address, const void* data, size_t size, const char* what) {
    uint8_t* p = memory.span(address, size);
    if (!p) throw ntc::Error(std::string(what) + " does not fit in guest RAM");
    std::memcpy(p, data, size);
}

// GDT entries: null, null, 64-bit code (selector 0x10), data (0x18), as the
// boot protocol's __BOOT_CS/__BOOT_DS.
constexpr uint64_t kGdtEntries[] = {0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};

kvm_segment segment(uint64_t gdt_entry, uint16_t selector) {
    kvm_segment s{};
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = (gdt_entry >> 40) & 0xf;
    s.present = (gdt_entry >> 47) & 1;
    s.dpl = (gdt_entry >> 45) & 3;
    s.db = (gdt_entry >> 54) & 1;
    s.s = (gdt_entry >> 44) & 1;
    s.l = (gdt_entry >> 53) & 1;
    s.g = (gdt_entry >> 55) & 1;
    return s;
}

}  // namespace

BootState load_boot(const GuestMemory& memory, uint64_t ram_bytes, const BootFiles& boot) {
    KernelImage kernel = parse_bzimage(boot.kernel);
    uint64_t low_end = split_ram(ram_bytes).low;
    if (layout::kKernelLoad + std::max<uint64_t>(kernel.header.init_size, kernel.code.size()) > low_end)
        throw ntc::Error("kernel does not fit in guest RAM");
    copy_in(memory, layout::kKernelLoad, kernel.code.data(), kernel.code.size(), "kernel");

    uint64_t initrd_address = 0;
    if (!boot.initrd.empty()) {
        initrd_address = place_initrd(kernel.header, low_end, boot.initrd.size());
        copy_in(memory, initrd_address, boot.initrd.data(), boot.initrd.size(), "initrd");
    }

    uint64_t cmdline_max = std::min<uint64_t>(kernel.header.cmdline_size, layout::kCmdlineMax - 1);
    if (boot.cmdline.size() > cmdline_max) throw ntc::Error("kernel command line is too long");
    std::vector<char> cmdline(boot.cmdline.begin(), boot.cmdline.end());
    cmdline.push_back('\0');
    copy_in(memory, layout::kCmdline, cmdline.data(), cmdline.size(), "command line");

    auto params = make_boot_params(kernel, {layout::kCmdline, initrd_address, boot.initrd.size(), layout::kAcpiTables},
                                   e820_map(ram_bytes));
    copy_in(memory, layout::kZeroPage, &params, sizeof(params), "zero page");
    copy_in(memory, layout::kGdt, kGdtEntries, sizeof(kGdtEntries), "GDT");

    // Identity map of the first 4 GiB with 2 MiB pages.
    uint64_t pml4e = layout::kPdpt | 3;
    copy_in(memory, layout::kPml4, &pml4e, 8, "page tables");
    for (uint64_t gib = 0; gib < 4; gib++) {
        uint64_t pd = layout::kPageDirectories + gib * 0x1000;
        uint64_t pdpte = pd | 3;
        copy_in(memory, layout::kPdpt + 8 * gib, &pdpte, 8, "page tables");
        for (uint64_t i = 0; i < 512; i++) {
            uint64_t pde = ((gib << 30) + (i << 21)) | 0x83;  // present, writable, 2 MiB
            copy_in(memory, pd + 8 * i, &pde, 8, "page tables");
        }
    }
    return {layout::kKernelLoad + 0x200, layout::kZeroPage, layout::kPml4};
}

void load_firmware_tables(const GuestMemory& memory, unsigned cpus, unsigned pci_slots,
                          const std::string& instance_name, const std::vector<InstanceCard>& cards) {
    auto acpi = build_acpi_tables(layout::kAcpiTables, cpus, pci_slots);
    if (acpi.size() > layout::kVmGenerationId - layout::kAcpiTables) throw ntc::Error("ACPI tables too large");
    copy_in(memory, layout::kAcpiTables, acpi.data(), acpi.size(), "ACPI tables");
    store_vm_generation_id(memory, new_vm_generation_id());
    store_instance_record(memory, instance_name, cards);
}

void boot_cpu_registers(const BootState& boot, kvm_regs& regs, kvm_sregs& sregs) {
    long_mode_registers(boot.entry, boot.page_table, regs, sregs);
    regs.rsi = boot.zero_page;
}

void long_mode_registers(uint64_t rip, uint64_t cr3, kvm_regs& regs, kvm_sregs& sregs) {
    std::memset(&regs, 0, sizeof(regs));
    regs.rflags = 2;
    regs.rip = rip;

    sregs.cs = segment(kGdtEntries[2], 0x10);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = segment(kGdtEntries[3], 0x18);
    sregs.tr = segment(0x008b00000000ffffull, 0x20);  // busy 64-bit TSS, required by VMX
    sregs.tr.limit = 0xffff;
    sregs.gdt.base = layout::kGdt;
    sregs.gdt.limit = sizeof(kGdtEntries) - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = 0x80000011;  // PG, ET, PE
    sregs.cr3 = cr3;
    sregs.cr4 = 0x20;    // PAE
    sregs.efer = 0x500;  // LME, LMA
}

}  // namespace ntc::vmm
