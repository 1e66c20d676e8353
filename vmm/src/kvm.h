#pragma once
// The KVM API at the level ntc-vmm uses it: deciding whether this host's
// /dev/kvm can run a stock kernel at all, and file descriptors for the
// system, the VM and its vCPUs.
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ntc::vmm {

// Why /dev/kvm is unusable here, or nullopt when it is usable.  `sys_module`
// and `dev_kvm` are parameters so the check can be tested.
std::optional<std::string> kvm_unusable_reason(const std::string& sys_module = "/sys/module",
                                               const std::string& dev_kvm = "/dev/kvm");

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept;
    ~Fd();
    int get() const { return fd_; }

private:
    int fd_ = -1;
};

// ioctl that throws ntc::Error naming the request on failure.
int kvm_ioctl(int fd, unsigned long request, const char* name, unsigned long arg = 0);
template <typename T>
int kvm_ioctl(int fd, unsigned long request, const char* name, T* arg) {
    return kvm_ioctl(fd, request, name, reinterpret_cast<unsigned long>(arg));
}

// struct kvm_cpuid2 as the kernel lays it out.  The uapi header's flexible
// array (__DECLARE_FLEX_ARRAY) has a different size and entry offset when
// compiled as C++, so the ioctl numbers are rebuilt from this definition.
struct KvmCpuid2 {
    uint32_t nent;
    uint32_t padding;
    kvm_cpuid_entry2 entries[256];
};
struct KvmCpuid2Header {
    uint32_t nent;
    uint32_t padding;
};
constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmCpuid2Header);
constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, KvmCpuid2Header);

// struct kvm_irq_routing's header, likewise: in C++ the uapi definition
// puts the entries at offset 16, not 8, and KVM_SET_GSI_ROUTING's number
// (which encodes the struct's size) would name no ioctl KVM knows.
struct KvmIrqRoutingHeader {
    uint32_t nr;
    uint32_t flags;
};
constexpr unsigned long kKvmSetGsiRouting = _IOW(KVMIO, 0x6a, KvmIrqRoutingHeader);

struct CpuidTable {
    std::vector<kvm_cpuid_entry2> entries;
};

// KVM's supported CPUID adjusted for vCPU `index` of `count`: APIC IDs,
// hypervisor bit, TSC deadline timer when KVM emulates it.
CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned index, unsigned count, bool tsc_deadline);

}  // namespace ntc::vmm
