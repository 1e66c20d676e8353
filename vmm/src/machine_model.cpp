#include "machine_model.h"

#include <cstdio>
#include <cstring>

#include "guest_disk.h"
#include "layout.h"

namespace ntc::vmm {

namespace {

constexpr uint16_t kVirtioNetType = 1, kVirtioBlockType = 2;

std::string field(const char* text, size_t size) { return std::string(text, strnlen(text, size)); }

std::string describe(const PciFunction& f) {
    char text[64];
    std::snprintf(text, sizeof text, "00:%02x.%x %04x:%04x", f.devfn >> 3, f.devfn & 7, f.vendor, f.device);
    std::string out = text;
    if (f.device == layout::kVirtioPciDeviceBase + kVirtioBlockType && f.vendor == layout::kVirtioVendor)
        out += " (virtio disk)";
    if (f.device == layout::kVirtioPciDeviceBase + kVirtioNetType && f.vendor == layout::kVirtioVendor)
        out += " (network card, MAC " + format_mac(f.mac) + ")";
    return out;
}

}  // namespace

MacAddress card_mac(const MachineConfig& config) {
    if (config.net && config.net->mac) return *config.net->mac;
    std::string disk_id = partition_table_id(config.disks.front().path);
    return mac_for_id(config.instance_name.empty() ? disk_id : disk_id + "/" + config.instance_name);
}

namespace {

// The functions a checkpoint's record lists.
std::vector<PciFunction> recorded_functions(const ntc_record& r) {
    std::vector<PciFunction> out;
    for (unsigned i = 0; i < std::min<unsigned>(r.device_count, NTC_MAX_DEVICES); i++) {
        const ntc_machine_device& d = r.devices[i];
        PciFunction f{d.devfn, d.vendor, d.device, {}};
        std::memcpy(f.mac.data(), d.mac, f.mac.size());
        out.push_back(f);
    }
    return out;
}

}  // namespace

std::optional<MacAddress> recorded_card_mac(const ntc_record& r) {
    for (const PciFunction& f : recorded_functions(r))
        if (f.mac != MacAddress{}) return f.mac;
    return std::nullopt;
}

std::vector<PciFunction> machine_functions(const MachineConfig& config) {
    std::vector<PciFunction> out{{0, layout::kHostBridgeVendor, layout::kHostBridgeDevice, {}}};
    uint8_t slot = 1;
    for (size_t i = 0; i < config.disks.size(); i++, slot++)
        out.push_back(
            {uint8_t(slot << 3), layout::kVirtioVendor, uint16_t(layout::kVirtioPciDeviceBase + kVirtioBlockType), {}});
    if (config.net)
        out.push_back({uint8_t(slot << 3), layout::kVirtioVendor,
                       uint16_t(layout::kVirtioPciDeviceBase + kVirtioNetType), card_mac(config)});
    return out;
}

std::vector<std::string> machine_differences(const ntc_record& r, const MachineConfig& config) {
    std::vector<std::string> out;
    bool recorded = r.acpi_oem_id[0] || r.device_count;
    if (uint64_t(config.cpus) != r.cpus)
        out.push_back("it had " + std::to_string(r.cpus) + " vCPUs, this machine " + std::to_string(config.cpus));
    if (!recorded) return out;
    std::string oem = field(r.acpi_oem_id, sizeof r.acpi_oem_id);
    if (oem != layout::kAcpiOemId || field(r.acpi_oem_table_id, sizeof r.acpi_oem_table_id) != layout::kAcpiOemTableId)
        out.push_back("it ran on firmware '" + oem + "', not ntc-vmm's (resume it with the VMM it ran on)");
    else if (r.acpi_oem_revision != layout::kMachineModel)
        out.push_back("it ran on ntc-vmm's machine model " + std::to_string(r.acpi_oem_revision) +
                      ", this ntc-vmm builds model " + std::to_string(layout::kMachineModel));
    std::vector<PciFunction> theirs = recorded_functions(r);
    std::vector<PciFunction> ours = machine_functions(config);
    auto find = [](const std::vector<PciFunction>& list, uint8_t devfn) -> const PciFunction* {
        for (const auto& f : list)
            if (f.devfn == devfn) return &f;
        return nullptr;
    };
    for (const auto& f : theirs) {
        const PciFunction* o = find(ours, f.devfn);
        // A card's MAC may differ: ntc.ko gives the card the new one.
        if (!o) out.push_back("it had " + describe(f) + ", which this machine lacks");
        else if (o->vendor != f.vendor || o->device != f.device)
            out.push_back("it had " + describe(f) + " where this machine has " + describe(*o));
    }
    for (const auto& o : ours)
        if (!find(theirs, o.devfn)) out.push_back("this machine adds " + describe(o) + ", which it did not have");
    return out;
}

}  // namespace ntc::vmm
