#pragma once
// Puts everything the kernel's 64-bit entry expects into guest RAM: GDT,
// identity page tables, zero page, command line, kernel, initrd; and what
// the firmware leaves for a booting or a resuming kernel alike.
#include "kvm.h"

#include <cstdint>
#include <string>

#include "guest_disk.h"
#include "guest_memory.h"
#include "instance_record.h"

namespace ntc::vmm {

struct BootState {
    uint64_t entry;       // 64-bit entry point
    uint64_t zero_page;   // RSI at entry
    uint64_t page_table;  // CR3
};

BootState load_boot(const GuestMemory& memory, uint64_t ram_bytes, const BootFiles& boot);

// Register state of the boot CPU at the kernel's 64-bit entry.
void boot_cpu_registers(const BootState& boot, kvm_regs& regs, kvm_sregs& sregs);

// The ACPI tables the firmware leaves in memory, for a booting kernel and,
// the same bytes, for a resuming one (they lie outside RAM in the E820 map,
// so no image holds them); beside them a new VM generation ID and the
// instance record.
void load_firmware_tables(const GuestMemory& memory, unsigned cpus, unsigned pci_slots,
                          const std::string& instance_name, const std::vector<InstanceCard>& cards);

// Long mode at `rip` on the page tables at `cr3`, flat 64-bit code and data
// segments (__BOOT_CS, __BOOT_DS), interrupts off.
void long_mode_registers(uint64_t rip, uint64_t cr3, kvm_regs& regs, kvm_sregs& sregs);

}  // namespace ntc::vmm
