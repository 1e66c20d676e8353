#include "vm_generation.h"

#include <sys/random.h>

#include <cerrno>
#include <ntc/error.h>

#include "layout.h"

namespace ntc::vmm {

VmGenerationId new_vm_generation_id() {
    VmGenerationId id;
    size_t filled = 0;
    while (filled < id.size()) {
        ssize_t n = ::getrandom(id.data() + filled, id.size() - filled, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) ntc::throw_errno("cannot draw a VM generation ID from the host's random-number generator");
        filled += size_t(n);
    }
    return id;
}

void store_vm_generation_id(const GuestMemory& memory, const VmGenerationId& id) {
    if (!memory.write(layout::kVmGenerationId, id))
        throw ntc::Error("guest RAM does not hold the VM generation ID's address");
}

}  // namespace ntc::vmm
