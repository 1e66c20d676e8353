#pragma once
// The instance name: what `--name` calls this machine, for software inside
// it (Documentation/vmm.md, "Instance name").  NUL-terminated in the 64
// bytes at layout::kInstanceName, which the DSDT's \NTCI names (address,
// size); rewritten at every boot and resume, so a resumed kernel reads the
// name it now runs under (ntc.ko does, and tells user space).
#include <string>

#include "guest_memory.h"

namespace ntc::vmm {

constexpr size_t kInstanceNameMax = 63;  // characters, before the NUL

// Throws ntc::Error unless `name` is up to kInstanceNameMax letters, digits,
// '.', '_' or '-' (a host name's characters and a file name's), or empty.
void check_instance_name(const std::string& name);
void store_instance_name(const GuestMemory& memory, const std::string& name);

}  // namespace ntc::vmm
