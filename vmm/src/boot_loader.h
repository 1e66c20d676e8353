#pragma once
// Puts everything the kernel's 64-bit entry expects into guest RAM: GDT,
// identity page tables, zero page, command line, kernel, initrd, ACPI tables.
#include "kvm.h"

#include <cstdint>

#include "guest_disk.h"
#include "guest_memory.h"

namespace ntcvmm {

struct BootState {
    uint64_t entry;       // 64-bit entry point
    uint64_t zero_page;   // RSI at entry
    uint64_t page_table;  // CR3
};

BootState load_boot(const GuestMemory& memory, uint64_t ram_bytes, unsigned cpus, unsigned pci_slots,
                    const BootFiles& boot);

// Register state of the boot CPU at the kernel's 64-bit entry.
void boot_cpu_registers(const BootState& boot, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace ntcvmm
