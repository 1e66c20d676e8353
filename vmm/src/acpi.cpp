#include "acpi.h"

#include <cstring>
#include <string>
#include <string_view>

#include "layout.h"

namespace ntc::vmm {

namespace {

// Field offsets, as the ACPI 6.x specification lays the structures out (its
// names, in ACPICA's spelling).
namespace header {  // every system description table (5.2.6)
constexpr size_t kSignature = 0, kLength = 4, kRevision = 8, kChecksum = 9, kOemId = 10, kOemTableId = 16,
                 kOemRevision = 24, kCreatorId = 28, kCreatorRevision = 32, kSize = 36;
}  // namespace header
namespace rsdp {  // the Root System Description Pointer (5.2.5.3)
constexpr size_t kSignature = 0, kChecksum = 8, kOemId = 9, kRevision = 15, kLength = 20, kXsdtAddress = 24,
                 kExtendedChecksum = 32, kSize = 36, kV1Size = 20;
}  // namespace rsdp
namespace fadt {  // the Fixed ACPI Description Table (5.2.9), revision 6
constexpr size_t kDsdt = 40, kSciInterrupt = 46, kPm1aEventBlock = 56, kPm1aControlBlock = 64, kPmTimerBlock = 76,
                 kGpe0Block = 80, kPm1EventLength = 88, kPm1ControlLength = 89, kPmTimerLength = 91,
                 kGpe0BlockLength = 92, kC2Latency = 96, kC3Latency = 98, kBootFlags = 109, kFlags = 112,
                 kMinorRevision = 131, kXDsdt = 140, kXPm1aEventBlock = 148, kXPm1aControlBlock = 172,
                 kXPmTimerBlock = 208, kXGpe0Block = 220, kSize = 276;
// C2/C3 latencies above 100 and 1000 us say the state is not supported.
constexpr uint16_t kNoC2 = 101, kNoC3 = 1001;
constexpr uint16_t kBootNoVga = 1u << 2, kBootNoCmosRtc = 1u << 5;  // IA-PC boot architecture
// WBINVD works; the power and sleep buttons are not fixed-feature buttons.
constexpr uint32_t kFlagWbinvd = 1u << 0, kFlagPowerButton = 1u << 4, kFlagSleepButton = 1u << 5;
}  // namespace fadt
namespace gas {  // Generic Address Structure (5.2.3.2)
constexpr uint8_t kSystemIo = 1;
constexpr size_t kSpaceId = 0, kBitWidth = 1, kBitOffset = 2, kAccessSize = 3, kAddress = 4;
}  // namespace gas

void put(std::vector<uint8_t>& out, size_t offset, uint64_t value, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) out[offset + i] = uint8_t(value >> (8 * i));
}

void append(std::vector<uint8_t>& out, uint64_t value, size_t bytes) {
    for (size_t i = 0; i < bytes; i++) out.push_back(uint8_t(value >> (8 * i)));
}

uint8_t checksum(const uint8_t* p, size_t n) {
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += p[i];
    return uint8_t(-sum);
}

// A table with the standard 36-byte header; length and checksum are fixed by
// finish_table once the body is appended.
std::vector<uint8_t> table_header(const char sig[4], uint8_t revision) {
    std::vector<uint8_t> t(header::kSize, 0);
    std::memcpy(&t[header::kSignature], sig, 4);
    t[header::kRevision] = revision;
    std::memcpy(&t[header::kOemId], layout::kAcpiOemId, 6);
    std::memcpy(&t[header::kOemTableId], layout::kAcpiOemTableId, 8);
    put(t, header::kOemRevision, layout::kMachineModel, 4);
    std::memcpy(&t[header::kCreatorId], "NTC ", 4);
    put(t, header::kCreatorRevision, 1, 4);
    return t;
}

void finish_table(std::vector<uint8_t>& t) {
    put(t, header::kLength, t.size(), 4);
    t[header::kChecksum] = 0;
    t[header::kChecksum] = checksum(t.data(), t.size());
}

// --- AML, just the constructs the DSDT needs (ACPI 6.x, section 20) ---
namespace aml {
constexpr uint8_t kNameOp = 0x08, kStringPrefix = 0x0d, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12,
                  kMethodOp = 0x14, kDualNamePrefix = 0x2e, kRootChar = 0x5c, kNotifyOp = 0x86,
                  kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kExtOpPrefix = 0x5b;
// Notify values (5.6.6): device-specific, which the vmgenid driver takes
// as "read the ID again".
constexpr uint32_t kNotifyDeviceSpecific = 0x80;
}  // namespace aml

std::vector<uint8_t> pkg_length(size_t body) {
    // The encoded length counts itself.
    if (body + 1 < 0x40) return {uint8_t(body + 1)};
    size_t total = body + 2;
    if (total < 0x1000) return {uint8_t(0x40 | (total & 0xf)), uint8_t(total >> 4)};
    total = body + 3;
    return {uint8_t(0x80 | (total & 0xf)), uint8_t(total >> 4), uint8_t(total >> 12)};
}

std::vector<uint8_t> with_length(uint8_t op, const std::vector<uint8_t>& body, bool ext = false) {
    std::vector<uint8_t> out;
    if (ext) out.push_back(aml::kExtOpPrefix);
    out.push_back(op);
    auto len = pkg_length(body.size());
    out.insert(out.end(), len.begin(), len.end());
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

std::vector<uint8_t> aml_integer(uint32_t v) {
    if (v == 0) return {0x00};
    if (v == 1) return {0x01};
    std::vector<uint8_t> out;
    if (v <= 0xff) {
        out = {0x0a};
        append(out, v, 1);
    } else if (v <= 0xffff) {
        out = {0x0b};
        append(out, v, 2);
    } else {
        out = {0x0c};
        append(out, v, 4);
    }
    return out;
}

std::vector<uint8_t> aml_package(const std::vector<std::vector<uint8_t>>& elements) {
    std::vector<uint8_t> body = {uint8_t(elements.size())};
    for (const auto& e : elements) body.insert(body.end(), e.begin(), e.end());
    return with_length(aml::kPackageOp, body);
}

std::vector<uint8_t> aml_name(std::string_view name, const std::vector<uint8_t>& value) {
    std::vector<uint8_t> out(1 + name.size() + value.size());
    out[0] = aml::kNameOp;
    auto rest = std::copy(name.begin(), name.end(), out.begin() + 1);
    std::copy(value.begin(), value.end(), rest);
    return out;
}

std::vector<uint8_t> aml_scope_like(uint8_t op, bool ext, std::string_view name, const std::vector<uint8_t>& terms) {
    std::vector<uint8_t> body(name.begin(), name.end());
    body.insert(body.end(), terms.begin(), terms.end());
    return with_length(op, body, ext);
}

std::vector<uint8_t> aml_buffer(const std::vector<uint8_t>& bytes) {
    std::vector<uint8_t> body = aml_integer(uint32_t(bytes.size()));
    body.insert(body.end(), bytes.begin(), bytes.end());
    return with_length(aml::kBufferOp, body);
}

std::vector<uint8_t> aml_string(std::string_view text) {
    std::vector<uint8_t> out{aml::kStringPrefix};
    out.insert(out.end(), text.begin(), text.end());
    out.push_back(0);
    return out;
}

// A method without arguments (flags 0: not serialized) whose body is `terms`.
std::vector<uint8_t> aml_method(std::string_view name, const std::vector<uint8_t>& terms) {
    std::vector<uint8_t> body(name.begin(), name.end());
    body.push_back(0);
    body.insert(body.end(), terms.begin(), terms.end());
    return with_length(aml::kMethodOp, body);
}

// Notify(\<scope>.<device>, value): both names 4 characters.
std::vector<uint8_t> aml_notify(std::string_view scope, std::string_view device, uint32_t value) {
    std::vector<uint8_t> out{aml::kNotifyOp, aml::kRootChar, aml::kDualNamePrefix};
    out.insert(out.end(), scope.begin(), scope.end());
    out.insert(out.end(), device.begin(), device.end());
    auto v = aml_integer(value);
    out.insert(out.end(), v.begin(), v.end());
    return out;
}

// Word/DWord address space descriptors (ACPI 6.4.3.5), fixed min and max.
void word_range(std::vector<uint8_t>& out, uint8_t type, uint8_t type_flags, uint16_t min, uint16_t max) {
    out.insert(out.end(), {0x88, 0x0d, 0x00, type, 0x0c, type_flags});
    append(out, 0, 2);
    append(out, min, 2);
    append(out, max, 2);
    append(out, 0, 2);
    append(out, uint32_t(max) - min + 1, 2);
}

// The root bridge's windows: every bus, all I/O ports but the config ports,
// and the PCI MMIO hole, so the kernel accepts the BARs as assigned.
std::vector<uint8_t> root_bridge_resources() {
    std::vector<uint8_t> r;
    word_range(r, 2, 0, 0x00, 0xff);
    r.insert(r.end(), {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08});
    word_range(r, 1, 3, 0x0000, 0x0cf7);
    word_range(r, 1, 3, 0x0d00, 0xffff);
    r.insert(r.end(), {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01});
    append(r, 0, 4);
    append(r, layout::kPciMmioBase, 4);
    append(r, layout::kPciMmioEnd - 1, 4);
    append(r, 0, 4);
    append(r, layout::kPciMmioEnd - layout::kPciMmioBase, 4);
    r.insert(r.end(), {0x79, 0x00});
    return r;
}

std::vector<uint8_t> dsdt_body(unsigned pci_slots) {
    std::vector<uint8_t> aml = aml_name(
        "_S5_", aml_package({aml_integer(kSleepTypeS5), aml_integer(kSleepTypeS5), aml_integer(0), aml_integer(0)}));
    // \NTCI: where the instance record is and its size (instance_record.h).
    auto ntci = aml_name("NTCI", aml_package({aml_integer(uint32_t(layout::kInstanceRecord)),
                                              aml_integer(uint32_t(layout::kInstanceRecordBytes))}));
    aml.insert(aml.end(), ntci.begin(), ntci.end());
    std::vector<std::vector<uint8_t>> routes;
    for (unsigned slot = 1; slot <= pci_slots; slot++)
        routes.push_back(aml_package(
            {aml_integer((slot << 16) | 0xffff), aml_integer(0), aml_integer(0), aml_integer(layout::pci_gsi(slot))}));
    std::vector<uint8_t> pci0 = aml_name("_HID", aml_integer(0x030ad041));  // EisaId("PNP0A03")
    auto uid = aml_name("_UID", aml_integer(0));
    pci0.insert(pci0.end(), uid.begin(), uid.end());
    auto crs = aml_name("_CRS", aml_buffer(root_bridge_resources()));
    pci0.insert(pci0.end(), crs.begin(), crs.end());
    auto prt = aml_name("_PRT", aml_package(routes));
    pci0.insert(pci0.end(), prt.begin(), prt.end());
    auto sb_terms = aml_scope_like(aml::kDeviceOp, true, "PCI0", pci0);

    // The VM generation ID (vm_generation.h): the ID Linux's vmgenid driver
    // matches, and the ID's address as the driver reads it, low and high dwords.
    std::vector<uint8_t> vgen = aml_name("_HID", aml_string("VMGENCTR"));
    auto addr = aml_name("ADDR", aml_package({aml_integer(uint32_t(layout::kVmGenerationId)),
                                              aml_integer(uint32_t(layout::kVmGenerationId >> 32))}));
    vgen.insert(vgen.end(), addr.begin(), addr.end());
    auto vgen_device = aml_scope_like(aml::kDeviceOp, true, "VGEN", vgen);
    sb_terms.insert(sb_terms.end(), vgen_device.begin(), vgen_device.end());
    auto sb = aml_scope_like(aml::kScopeOp, false, "_SB_", sb_terms);
    aml.insert(aml.end(), sb.begin(), sb.end());

    // GPE 0, edge-triggered: a new generation ID (devices/acpi_pm.h).
    static_assert(layout::kGpeVmGeneration == 0, "the method's name says which GPE");
    auto gpe = aml_scope_like(aml::kScopeOp, false, "\\_GPE",
                              aml_method("_E00", aml_notify("_SB_", "VGEN", aml::kNotifyDeviceSpecific)));
    aml.insert(aml.end(), gpe.begin(), gpe.end());
    return aml;
}

// Generic Address Structure in system I/O space, accessed `access_bits` at
// a time.
void put_gas_io(std::vector<uint8_t>& t, size_t offset, uint16_t port, uint8_t bits, uint8_t access_bits) {
    t[offset + gas::kSpaceId] = gas::kSystemIo;
    t[offset + gas::kBitWidth] = bits;
    t[offset + gas::kBitOffset] = 0;
    t[offset + gas::kAccessSize] = access_bits == 32 ? 3 : access_bits == 16 ? 2 : 1;  // dword, word, byte
    put(t, offset + gas::kAddress, port, 8);
}

std::vector<uint8_t> build_fadt(uint64_t dsdt_address) {
    auto t = table_header("FACP", 6);
    t.resize(fadt::kSize, 0);
    put(t, fadt::kDsdt, dsdt_address, 4);
    put(t, fadt::kSciInterrupt, layout::kSciIrq, 2);
    // SMI_CMD stays 0: the machine is always in ACPI mode.
    put(t, fadt::kPm1aEventBlock, layout::kPm1EventBlock, 4);
    put(t, fadt::kPm1aControlBlock, layout::kPm1ControlBlock, 4);
    put(t, fadt::kPmTimerBlock, layout::kPmTimer, 4);
    put(t, fadt::kGpe0Block, layout::kGpe0Block, 4);
    t[fadt::kPm1EventLength] = 4;
    t[fadt::kPm1ControlLength] = 2;
    t[fadt::kPmTimerLength] = 4;
    t[fadt::kGpe0BlockLength] = 2;  // a status byte, then an enable byte
    put(t, fadt::kC2Latency, fadt::kNoC2, 2);
    put(t, fadt::kC3Latency, fadt::kNoC3, 2);
    // No VGA, no CMOS RTC: nothing for the kernel to probe and time out on.
    put(t, fadt::kBootFlags, fadt::kBootNoVga | fadt::kBootNoCmosRtc, 2);
    put(t, fadt::kFlags, fadt::kFlagWbinvd | fadt::kFlagPowerButton | fadt::kFlagSleepButton, 4);
    t[fadt::kMinorRevision] = 0;
    put(t, fadt::kXDsdt, dsdt_address, 8);
    put_gas_io(t, fadt::kXPm1aEventBlock, layout::kPm1EventBlock, 32, 32);
    put_gas_io(t, fadt::kXPm1aControlBlock, layout::kPm1ControlBlock, 16, 16);
    put_gas_io(t, fadt::kXPmTimerBlock, layout::kPmTimer, 32, 32);
    put_gas_io(t, fadt::kXGpe0Block, layout::kGpe0Block, 16, 8);  // GPE registers are bytes
    finish_table(t);
    return t;
}

std::vector<uint8_t> build_madt(unsigned cpus) {
    auto t = table_header("APIC", 4);
    append(t, layout::kLocalApic, 4);
    append(t, 1, 4);  // PCAT_COMPAT: there are 8259s too
    for (unsigned cpu = 0; cpu < cpus; cpu++) {
        t.insert(t.end(), {0, 8, uint8_t(cpu), uint8_t(cpu)});
        append(t, 1, 4);  // enabled
    }
    t.insert(t.end(), {1, 12, 0, 0});  // IOAPIC id 0
    append(t, layout::kIoApic, 4);
    append(t, 0, 4);  // GSI base
    // ISA IRQ 0 (PIT) is wired to IOAPIC input 2, as on PCs.
    t.insert(t.end(), {2, 10, 0, 0});
    append(t, 2, 4);
    append(t, 0, 2);
    // SCI: level-triggered, active high.
    t.insert(t.end(), {2, 10, 0, uint8_t(layout::kSciIrq)});
    append(t, layout::kSciIrq, 4);
    append(t, 0x000d, 2);
    // LINT1 of every CPU is NMI.
    t.insert(t.end(), {4, 6, 0xff, 0, 0, 1});
    finish_table(t);
    return t;
}

}  // namespace

std::vector<uint8_t> build_acpi_tables(uint64_t base, unsigned cpus, unsigned pci_slots) {
    auto dsdt = table_header("DSDT", 2);
    auto aml = dsdt_body(pci_slots);
    dsdt.insert(dsdt.end(), aml.begin(), aml.end());
    finish_table(dsdt);

    // RSDP (36 bytes), then XSDT, FADT, MADT, DSDT, each 16-byte aligned.
    auto align = [](size_t v) { return (v + 15) & ~size_t(15); };
    size_t xsdt_off = align(rsdp::kSize);
    size_t xsdt_size = header::kSize + 2 * 8;
    size_t fadt_off = align(xsdt_off + xsdt_size);
    auto madt = build_madt(cpus);
    size_t madt_off = align(fadt_off + fadt::kSize);
    size_t dsdt_off = align(madt_off + madt.size());
    auto fadt = build_fadt(base + dsdt_off);

    auto xsdt = table_header("XSDT", 1);
    append(xsdt, base + fadt_off, 8);
    append(xsdt, base + madt_off, 8);
    finish_table(xsdt);

    std::vector<uint8_t> out(dsdt_off + dsdt.size(), 0);
    std::memcpy(&out[rsdp::kSignature], "RSD PTR ", 8);
    std::memcpy(&out[rsdp::kOemId], layout::kAcpiOemId, 6);
    out[rsdp::kRevision] = 2;  // ACPI 2.0+, XSDT
    put(out, rsdp::kLength, rsdp::kSize, 4);
    put(out, rsdp::kXsdtAddress, base + xsdt_off, 8);
    out[rsdp::kChecksum] = checksum(out.data(), rsdp::kV1Size);
    out[rsdp::kExtendedChecksum] = checksum(out.data(), rsdp::kSize);
    std::memcpy(&out[xsdt_off], xsdt.data(), xsdt.size());
    std::memcpy(&out[fadt_off], fadt.data(), fadt.size());
    std::memcpy(&out[madt_off], madt.data(), madt.size());
    std::memcpy(&out[dsdt_off], dsdt.data(), dsdt.size());
    return out;
}

}  // namespace ntc::vmm
