#pragma once
// The VM generation ID (Microsoft's "Virtual Machine Generation ID"
// specification, which Linux's vmgenid driver implements): 16 bytes in
// guest memory that the ACPI device VGEN points at (its ADDR), new at every
// boot and every resume.  A resumed kernel learns of the new value from GPE
// 0, whose _E00 method notifies VGEN; the driver then reseeds the kernel's
// random-number generator ("crng reseeded due to virtual machine fork"), so
// that two machines resumed from one checkpoint do not hand out the same
// "random" bytes.
#include <array>
#include <cstdint>

#include "guest_memory.h"

namespace ntc::vmm {

using VmGenerationId = std::array<uint8_t, 16>;

// 16 bytes from the host's random-number generator.
VmGenerationId new_vm_generation_id();
// Writes `id` where the ACPI tables say it is.
void store_vm_generation_id(const GuestMemory& memory, const VmGenerationId& id);

}  // namespace ntc::vmm
