#include "builder.h"

#include <chrono>
#include <cstdio>
#include <ntc/error.h>

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

ResumeEntry build_for_resume(const GuestMemory& memory, const MachineConfig& config, unsigned pci_slots, bool lazy,
                             ImagePager::Failed failed) {
    load_firmware(memory, config, pci_slots);
    auto start = std::chrono::steady_clock::now();
    ImageLayout layout = read_image_layout(*config.image, memory, config.ram_bytes);
    double mib = double(layout.info.size) / double(1 << 20);
    std::unique_ptr<ImagePager> pager;
    if (lazy) {
        try {
            pager = std::make_unique<ImagePager>(config.image->disk, layout, memory, std::move(failed));
        } catch (const ntc::Error& e) {
            std::fprintf(stderr, "ntc-vmm: %s; loading the whole image first\n", e.what());
        }
    }
    RestoreEntry restore = pager ? restore_entry(layout, memory) : load_image(*config.image, layout, memory);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (pager)
        std::fprintf(stderr, "ntc-vmm: image of %.1f MiB mapped in %.2f s; resuming while it loads\n", mib,
                     took.count());
    else std::fprintf(stderr, "ntc-vmm: image of %.1f MiB loaded in %.2f s; resuming\n", mib, took.count());
    return {[restore](kvm_regs& regs, kvm_sregs& sregs) { restore_cpu_registers(restore, regs, sregs); },
            std::move(pager)};
}

}  // namespace ntc::vmm
