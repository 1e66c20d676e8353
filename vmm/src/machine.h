#pragma once
// The virtual machine: RAM, vCPUs (one thread each), the in-kernel irqchip
// and PIT, and the devices, from boot to the guest's poweroff or reboot.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio_net.h"
#include "guest_disk.h"
#include "image_restore.h"

namespace ntc::vmm {

class AcpiPm;
class IoBus;
class PciBus;
class Serial;

struct DiskSpec {
    std::string path;
    bool read_only = false;
    // An instance's disk: `path` is the overlay's base, read-only and
    // shared, and every write goes to this overlay (ntc/overlay.h).
    std::optional<std::string> overlay;
};

// A network card on a host TAP interface.  Without `mac` the MAC is
// mac_for_id() of the first disk's partition table UUID.
struct NetSpec {
    std::string tap;
    std::optional<MacAddress> mac;
};

struct MachineConfig {
    uint64_t ram_bytes = 512ull << 20;
    unsigned cpus = 1;
    std::vector<DiskSpec> disks;             // in order: slot 1, 2, ... = /dev/vda, vdb, ...
    std::optional<NetSpec> net;              // the slot after the disks
    BootFiles boot;                          // what boots, unless...
    std::optional<ImageLocation> image;      // ...the machine resumes this image
    bool lazy_image = false;                 // run the guest while it loads (resume without --load-first)
    std::optional<std::string> console_log;  // else the terminal (stdout)
    std::optional<std::string> crash_dump;   // guest RAM goes here on a triple fault or SIGQUIT
    std::string instance_name;               // --name (instance_record.h)
};

// ntc-vmm's exit statuses (Documentation/vmm.md).
enum ExitStatus : int {
    kExitPowerOff = 0,
    kExitError = 1,
    kExitReboot = 2,
    kExitQuit = 3,  // the console escape or a signal ended the VM
};

constexpr unsigned kMaxCpus = 64;
constexpr unsigned kMaxDisks = 16;

// Checks the request against what this host can give; throws ntc::Error.
void check_machine_config(const MachineConfig& config);

// Runs the VM until it ends; returns the exit status.  Throws ntc::Error when
// the VM cannot be set up.
int run_machine(const MachineConfig& config);

// Puts the devices at their ports and MMIO ranges (Documentation/vmm.md).
void map_devices(IoBus& ports, IoBus& mmio, Serial& serial, PciBus& pci, AcpiPm& pm);

}  // namespace ntc::vmm
