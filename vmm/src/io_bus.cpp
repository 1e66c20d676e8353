#include "io_bus.h"

#include <cstdio>
#include <iterator>
#include <ntc/error.h>

namespace ntc::vmm {

namespace {

// "0x3f8-0x3ff": first and last address, as the documentation writes ranges.
std::string describe(const std::string& name, uint64_t base, uint64_t length) {
    char text[64];
    if (length == 1) std::snprintf(text, sizeof(text), " at %#llx", (unsigned long long)base);
    else
        std::snprintf(text, sizeof(text), " at %#llx-%#llx", (unsigned long long)base,
                      (unsigned long long)(base + (length - 1)));
    return name + text;
}

uint64_t size_mask(unsigned size) { return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1; }

}  // namespace

void IoBus::add(uint64_t base, uint64_t length, BusDevice device, std::string name) {
    if (length == 0) throw ntc::Error("cannot add " + name + ": its range is empty");
    if (length - 1 > ~0ull - base) throw ntc::Error("cannot add " + name + ": its range wraps around");
    uint64_t last = base + (length - 1);
    auto next = ranges_.upper_bound(base);
    auto clash = [&](std::map<uint64_t, Range>::const_iterator other) {
        throw ntc::Error("cannot add " + describe(name, base, length) + ": it overlaps " +
                         describe(other->second.name, other->first, other->second.length));
    };
    if (next != ranges_.end() && next->first <= last) clash(next);
    if (next != ranges_.begin()) {
        auto before = std::prev(next);
        if (before->first + (before->second.length - 1) >= base) clash(before);
    }
    ranges_.emplace(base, Range{length, std::move(device), std::move(name)});
}

std::optional<IoBus::Hit> IoBus::find(uint64_t address) const {
    auto next = ranges_.upper_bound(address);
    if (next == ranges_.begin()) return std::nullopt;
    auto range = std::prev(next);
    uint64_t offset = address - range->first;
    if (offset >= range->second.length) return std::nullopt;
    return Hit{&range->second.device, offset};
}

uint64_t IoBus::read(uint64_t address, unsigned size) const {
    auto hit = find(address);
    uint64_t value = hit ? hit->device->read(hit->offset, size) : ~0ull;
    return value & size_mask(size);
}

void IoBus::write(uint64_t address, unsigned size, uint64_t value) const {
    if (auto hit = find(address)) hit->device->write(hit->offset, size, value);
}

}  // namespace ntc::vmm
