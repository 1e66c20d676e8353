#pragma once
// The machine model's fixed guest-physical layout (Documentation/vmm.md).
#include <cstdint>

namespace ntc::vmm::layout {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

constexpr uint64_t kGdt = 0x500;
constexpr uint64_t kZeroPage = 0x7000;
constexpr uint64_t kPml4 = 0x9000;
constexpr uint64_t kPdpt = 0xa000;
constexpr uint64_t kPageDirectories = 0xb000;  // four, identity-mapping 4 GiB
constexpr uint64_t kCmdline = 0x20000;
constexpr uint64_t kCmdlineMax = 0x10000;
constexpr uint64_t kEbda = 0x9fc00;
constexpr uint64_t kAcpiTables = 0xe0000;      // RSDP first: the kernel also scans here
constexpr uint64_t kVmGenerationId = 0xff000;  // 16 bytes after the tables (vm_generation.h)
constexpr uint64_t kInstanceRecord = 0xff010;  // then the instance record (instance_record.h)
constexpr uint64_t kInstanceRecordBytes = 104;
constexpr uint64_t kAcpiTablesEnd = 0x100000;  // the reserved area's end
constexpr uint64_t kKernelLoad = 0x100000;

// RAM above this goes to 4 GiB and up; below 4 GiB it is PCI and APICs.
constexpr uint64_t kLowRamLimit = 3 * kGiB;
constexpr uint64_t kHighRamStart = 4 * kGiB;
constexpr uint64_t kPciMmioBase = 0xe0000000;
constexpr uint64_t kPciMmioEnd = 0xfec00000;
constexpr uint64_t kIoApic = 0xfec00000;
constexpr uint64_t kLocalApic = 0xfee00000;
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIdentityMapAddress = 0xfffbc000;

constexpr uint64_t kMinRam = 64 * kMiB;

// The firmware's OEM fields (every ACPI table's header).  The revision is
// the machine model's version: raise it whenever a guest could tell the
// machine apart from the one before (a device, an address, a table); a
// checkpoint records it and resumes only on the same model.  2: the
// virtio devices' MSI-X capability and their 32 KiB BAR 0 (vmm.md, Resume).
// 3: a virtio-blk queue per vCPU and VIRTIO_RING_F_EVENT_IDX.  4: the VM
// generation ID device, the GPE block that announces a new ID, and \NTCI.
constexpr char kAcpiOemId[] = "NTCVMM";
constexpr char kAcpiOemTableId[] = "NTCVMM  ";
constexpr uint32_t kMachineModel = 4;

// PCI functions on bus 0.
constexpr uint16_t kHostBridgeVendor = 0x8086, kHostBridgeDevice = 0x0d57;
constexpr uint16_t kVirtioVendor = 0x1af4;
constexpr uint16_t kVirtioPciDeviceBase = 0x1040;  // + virtio device type (modern only)

// I/O ports.
constexpr uint16_t kCom1 = 0x3f8;
constexpr uint32_t kCom1Irq = 4;
constexpr uint16_t kPciConfigAddress = 0xcf8;
constexpr uint16_t kPciConfigData = 0xcfc;
constexpr uint16_t kPm1EventBlock = 0x600;    // 4 bytes: status, enable
constexpr uint16_t kPm1ControlBlock = 0x604;  // 2 bytes
constexpr uint16_t kPmTimer = 0x608;          // 4 bytes
constexpr uint16_t kGpe0Block = 0x60c;        // 2 bytes: status, enable (GPEs 0-7)
constexpr unsigned kGpeVmGeneration = 0;      // a new VM generation ID
constexpr uint16_t kResetControl = 0xcf9;
constexpr uint16_t kI8042Command = 0x64;
constexpr uint32_t kSciIrq = 9;

// PCI INTx: slot s, pin A, is wired to IOAPIC input kPciGsiBase + (s-1) % 8,
// above the ISA interrupts so nothing is shared with legacy devices.
constexpr uint32_t kPciGsiBase = 16;
constexpr uint32_t pci_gsi(unsigned slot) { return kPciGsiBase + (slot - 1) % 8; }

}  // namespace ntc::vmm::layout
