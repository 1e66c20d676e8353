#pragma once
// The one step in which a machine that boots and a machine that resumes an
// image are built differently (Firecracker's builders for a boot and from a
// snapshot): what the guest finds in RAM at its entry, and where the boot
// CPU enters.  Each returns that entry for Vcpu::set_entry().
#include <memory>

#include "guest_memory.h"
#include "image_pager.h"
#include "machine.h"
#include "vcpu.h"

namespace ntc::vmm {

// The kernel, initrd, command line, zero page, page tables and firmware
// tables for config.boot; the entry is the kernel's 64-bit entry.
EntryRegisters build_for_boot(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots);

// The firmware tables and the pages of config.image; the entry is the image
// kernel's restore_registers().  With `lazy` the pages are served on demand
// by the pager; without, or where the host gives no userfaultfd, they are
// all read and checked here (no pager).  The image on disk is
// left as it is: the machine retires it only when nothing else can fail.
struct ResumeEntry {
    EntryRegisters entry;
    std::unique_ptr<ImagePager> pager;
};
ResumeEntry build_for_resume(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots, bool lazy,
                             ImagePager::Failed failed);

}  // namespace ntc::vmm
