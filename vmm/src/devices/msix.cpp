#include "devices/msix.h"

#include <cstring>
#include <utility>

#include "devices/register_bytes.h"

namespace ntc::vmm {

MsixTable::MsixTable(unsigned vectors, Route route, Signal signal)
    : table_(size_t(vectors) * PCI_MSIX_ENTRY_SIZE), routed_(vectors), pending_(vectors), route_(std::move(route)),
      signal_(std::move(signal)) {
    for (unsigned v = 0; v < vectors; v++)
        table_[size_t(v) * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
}

std::vector<uint8_t> MsixTable::capability(unsigned bar, uint32_t table_offset, uint32_t pba_offset) const {
    std::vector<uint8_t> body(PCI_CAP_MSIX_SIZEOF);
    body[0] = PCI_CAP_ID_MSIX;
    uint16_t control = uint16_t((size() - 1) & PCI_MSIX_FLAGS_QSIZE);  // the table size is encoded as N - 1
    uint32_t table = (table_offset & PCI_MSIX_TABLE_OFFSET) | (bar & PCI_MSIX_TABLE_BIR);
    uint32_t pba = (pba_offset & PCI_MSIX_PBA_OFFSET) | (bar & PCI_MSIX_PBA_BIR);
    std::memcpy(&body[PCI_MSIX_FLAGS], &control, sizeof(control));
    std::memcpy(&body[PCI_MSIX_TABLE], &table, sizeof(table));
    std::memcpy(&body[PCI_MSIX_PBA], &pba, sizeof(pba));
    return body;
}

void MsixTable::set_control(uint16_t control) {
    bool enabled = control & PCI_MSIX_FLAGS_ENABLE;
    bool function_masked = control & PCI_MSIX_FLAGS_MASKALL;
    if (enabled == enabled_ && function_masked == function_masked_) return;
    enabled_ = enabled;
    function_masked_ = function_masked;
    for (unsigned v = 0; v < size(); v++) update(v);
}

uint64_t MsixTable::read_table(uint64_t offset, unsigned size) const { return read_le(table_, offset, size); }

void MsixTable::write_table(uint64_t offset, unsigned size, uint64_t value) {
    // Address and data are the guest's; of vector control only the mask bit
    // is (the rest is reserved, reads as zero).
    unsigned written = write_le_masked(table_, offset, size, value, [](uint64_t at) -> uint8_t {
        unsigned in_entry = unsigned(at % PCI_MSIX_ENTRY_SIZE);
        return in_entry < PCI_MSIX_ENTRY_VECTOR_CTRL    ? 0xff
               : in_entry == PCI_MSIX_ENTRY_VECTOR_CTRL ? PCI_MSIX_ENTRY_CTRL_MASKBIT
                                                        : 0;
    });
    if (!written) return;
    for (uint64_t v = offset / PCI_MSIX_ENTRY_SIZE; v <= (offset + written - 1) / PCI_MSIX_ENTRY_SIZE; v++)
        update(unsigned(v));
}

uint64_t MsixTable::read_pba(uint64_t offset, unsigned size) const {
    uint64_t value = 0;
    for (unsigned i = 0; i < size && i < 8; i++) {
        uint64_t byte = offset + i;
        for (unsigned bit = 0; bit < 8; bit++) {
            uint64_t v = byte * 8 + bit;
            if (v < pending_.size() && pending_[v]) value |= 1ull << (8 * i + bit);
        }
    }
    return value;
}

void MsixTable::raise(unsigned vector) {
    if (!enabled_ || vector >= size()) return;
    if (!deliverable(vector)) {
        pending_[vector] = true;
        return;
    }
    signal_(vector);
}

uint32_t MsixTable::entry_field(unsigned vector, unsigned field) const {
    uint32_t value;
    std::memcpy(&value, &table_[size_t(vector) * PCI_MSIX_ENTRY_SIZE + field], sizeof(value));
    return value;
}

MsiMessage MsixTable::message(unsigned vector) const {
    return {entry_field(vector, PCI_MSIX_ENTRY_LOWER_ADDR) | uint64_t(entry_field(vector, PCI_MSIX_ENTRY_UPPER_ADDR))
                                                                 << 32,
            entry_field(vector, PCI_MSIX_ENTRY_DATA)};
}

bool MsixTable::masked(unsigned vector) const {
    return entry_field(vector, PCI_MSIX_ENTRY_VECTOR_CTRL) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
}

bool MsixTable::pending(unsigned vector) const { return pending_[vector]; }

bool MsixTable::deliverable(unsigned vector) const { return enabled_ && !function_masked_ && !masked(vector); }

void MsixTable::update(unsigned vector) {
    if (!deliverable(vector)) return;
    MsiMessage now = message(vector);
    if (routed_[vector] != now) {
        route_(vector, now);
        routed_[vector] = now;
    }
    if (pending_[vector]) {
        pending_[vector] = false;
        signal_(vector);
    }
}

}  // namespace ntc::vmm
