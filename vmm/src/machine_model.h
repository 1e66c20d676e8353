#pragma once
// What ntc-vmm's machine presents to a guest that drivers bind to: the
// firmware's identity and the PCI functions on bus 0.  A checkpoint's record
// holds what the checkpointed kernel saw (disk-layout/ntc_format.h); a
// resume builds the machine only if it presents the same.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "machine.h"
#include "ntc_format.h"

namespace ntc::vmm {

struct PciFunction {
    uint8_t devfn;
    uint16_t vendor, device;
    MacAddress mac{};  // a network card's, else zero
    bool operator==(const PciFunction&) const = default;
};

// The network card's MAC: --mac, or else derived from the first disk's
// partition table, which ntc-clone copies, so every clone gives the same,
// and the instance name: each --name its own MAC, the same name the same.
MacAddress card_mac(const MachineConfig& config);

// The MAC of the network card a checkpoint's machine had, if it had one.
std::optional<MacAddress> recorded_card_mac(const ntc_record& record);

// The functions `config` gives the guest: the host bridge at 00:00.0, a
// virtio-blk per disk from 00:01.0 on, then the virtio-net card.
std::vector<PciFunction> machine_functions(const MachineConfig& config);

// What differs between the machine `record` was taken on and `config`, one
// sentence each; empty when they match.  A record that predates the
// machine fields yields no differences.  MACs are no difference: ntc.ko
// gives a resumed card the MAC of the instance record (instance_record.h).
std::vector<std::string> machine_differences(const ntc_record& record, const MachineConfig& config);

}  // namespace ntc::vmm
