#pragma once
// Minimal ACPI: RSDP, XSDT, FADT (PM1 event/control blocks and a PM timer, so
// the stock kernel can power off through its ACPI S5 path; a GPE block), a
// DSDT with _S5_, the PCI root bridge's interrupt routing, the VM generation
// ID device and the GPE method that announces a new ID (vm_generation.h),
// \NTCI locating the instance record (instance_record.h), and a MADT listing
// the CPUs.
#include <cstdint>
#include <vector>

namespace ntc::vmm {

// The tables laid out for guest address `base` (the RSDP is at `base`).
std::vector<uint8_t> build_acpi_tables(uint64_t base, unsigned cpus, unsigned pci_slots);

// The SLP_TYP value that _S5_ tells the kernel to write for poweroff.
constexpr uint16_t kSleepTypeS5 = 5;

}  // namespace ntc::vmm
