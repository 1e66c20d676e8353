#pragma once
// What ntc-vmm tells the machine about itself (Documentation/vmm.md,
// "Instance identity"): its instance name (--name) and the MAC of each
// network card, as disk-layout/ntc_format.h's struct ntc_instance_record,
// at layout::kInstanceRecord, which the DSDT's \NTCI names (address, size).
// Rewritten at every boot and resume, so a resumed kernel learns what it
// runs as now: ntc.ko reports the name and gives each card the MAC listed
// for it (an instance's differs from the checkpointed one).
#include <ntc_format.h>
#include <string>
#include <vector>

#include "devices/virtio_net.h"
#include "guest_memory.h"

namespace ntc::vmm {

constexpr size_t kInstanceNameMax = NTC_INSTANCE_NAME_BYTES - 1;  // characters, before the NUL

struct InstanceCard {
    uint8_t devfn;
    MacAddress mac;
};

// Throws ntc::Error unless `name` is up to kInstanceNameMax letters, digits,
// '.', '_' or '-' (a host name's characters and a file name's), or empty.
void check_instance_name(const std::string& name);
// Throws ntc::Error for a bad name or more cards than the record holds,
// writing nothing.
void store_instance_record(const GuestMemory& memory, const std::string& name, const std::vector<InstanceCard>& cards);

}  // namespace ntc::vmm
