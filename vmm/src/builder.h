#pragma once
// The one step in which a machine that boots and a machine that resumes an
// image are built differently (Firecracker's builders for a boot and from a
// snapshot): what the guest finds in RAM at its entry, and where the boot
// CPU enters.  Each returns that entry for Vcpu::set_entry().
#include "guest_memory.h"
#include "machine.h"
#include "vcpu.h"

namespace ntc::vmm {

// The kernel, initrd, command line, zero page, page tables and firmware
// tables for config.boot; the entry is the kernel's 64-bit entry.
EntryRegisters build_for_boot(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots);

// The firmware tables and the pages of config.image; the entry is the image
// kernel's restore_registers().  The image on disk is left as it is: the
// machine retires it only when nothing else can fail.
EntryRegisters build_for_resume(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots);

}  // namespace ntc::vmm
