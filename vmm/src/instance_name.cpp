#include "instance_name.h"

#include <array>
#include <cctype>
#include <ntc/error.h>

#include "layout.h"

namespace ntc::vmm {

static_assert(kInstanceNameMax + 1 == layout::kInstanceNameBytes);

void check_instance_name(const std::string& name) {
    if (name.size() > kInstanceNameMax)
        throw ntc::Error("--name '" + name + "' is longer than " + std::to_string(kInstanceNameMax) + " characters");
    for (unsigned char c : name)
        if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
            throw ntc::Error("--name '" + name + "': use letters, digits, '.', '_' and '-' only");
}

void store_instance_name(const GuestMemory& memory, const std::string& name) {
    check_instance_name(name);
    std::array<char, layout::kInstanceNameBytes> bytes{};
    name.copy(bytes.data(), name.size());
    if (!memory.write(layout::kInstanceName, bytes))
        throw ntc::Error("guest RAM does not hold the instance name's address");
}

}  // namespace ntc::vmm
