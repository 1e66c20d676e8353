#include "builder.h"

#include <chrono>
#include <cstdio>

#include "boot_loader.h"
#include "image_restore.h"
#include "machine_model.h"

namespace ntc::vmm {

namespace {

void load_firmware(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots) {
    std::vector<InstanceCard> cards;
    for (const PciFunction& f : machine_functions(config))
        if (f.mac != MacAddress{}) cards.push_back({f.devfn, f.mac});
    load_firmware_tables(memory, config.cpus, pci_slots, config.instance_name, cards);
}

}  // namespace

EntryRegisters build_for_boot(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots) {
    load_firmware(memory, config, pci_slots);
    BootState boot = load_boot(memory, config.ram_bytes, config.boot);
    return [boot](kvm_regs& regs, kvm_sregs& sregs) { boot_cpu_registers(boot, regs, sregs); };
}

EntryRegisters build_for_resume(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots) {
    load_firmware(memory, config, pci_slots);
    auto start = std::chrono::steady_clock::now();
    RestoreEntry restore = load_image(*config.image, memory, config.ram_bytes);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::fprintf(stderr, "ntc-vmm: image of %.1f MiB loaded in %.2f s; resuming\n",
                 double(restore.image_bytes) / double(1 << 20), took.count());
    return [restore](kvm_regs& regs, kvm_sregs& sregs) { restore_cpu_registers(restore, regs, sregs); };
}

}  // namespace ntc::vmm
