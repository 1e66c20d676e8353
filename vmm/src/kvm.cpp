#include "kvm.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ntc/error.h>

namespace ntc::vmm {

namespace {
bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}
const char* kLabHint = "; run guests under QEMU instead (the guest lab, tests/lab/ntclab.py, uses TCG), "
                       "or use ntc-vmm inside such a guest with nested KVM (tests/lab/nested.py)";
}  // namespace

std::optional<std::string> kvm_unusable_reason(const std::string& sys_module, const std::string& dev_kvm) {
    if (exists(sys_module + "/kvm_pvm"))
        return "/dev/kvm here is PVM (kvm_pvm), which runs only kernels built for PVM: a stock "
               "kernel would hang at 100% CPU, so ntc-vmm refuses to start" +
               std::string(kLabHint);
    if (!exists(dev_kvm)) return "no " + dev_kvm + " on this machine" + std::string(kLabHint);
    if (!exists(sys_module + "/kvm_intel") && !exists(sys_module + "/kvm_amd"))
        return dev_kvm + " is not backed by kvm_intel or kvm_amd, so it cannot be trusted to run a stock kernel" +
               std::string(kLabHint);
    if (::access(dev_kvm.c_str(), R_OK | W_OK) != 0)
        return "no permission to use " + dev_kvm + " (add yourself to the kvm group)";
    return std::nullopt;
}

Fd& Fd::operator=(Fd&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

int kvm_ioctl(int fd, unsigned long request, const char* name, unsigned long arg) {
    int r;
    do r = ::ioctl(fd, request, arg);
    while (r < 0 && errno == EINTR);
    if (r < 0) ntc::throw_errno(std::string("KVM ") + name + " failed");
    return r;
}

CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned index, unsigned count, bool tsc_deadline) {
    CpuidTable table = supported;
    for (auto& e : table.entries) {
        switch (e.function) {
        case 1:
            e.ebx = (e.ebx & 0x0000ffff) | (count << 16) | (index << 24);
            e.ecx |= 1u << 31;  // running under a hypervisor
            if (tsc_deadline) e.ecx |= 1u << 24;
            if (count > 1) e.edx |= 1u << 28;  // HTT: the count in EBX is valid
            break;
        case 0xb:
        case 0x1f:
            e.edx = index;  // x2APIC ID
            break;
        }
    }
    return table;
}

}  // namespace ntc::vmm
