#pragma once
// A disk backing file or block device, held with an exclusive flock for as
// long as the VM runs: ntc-clone and a second VMM take the same lock and so
// refuse a disk in use.
#include <cstdint>
#include <string>

namespace ntc::vmm {

class DiskImage {
public:
    DiskImage(const std::string& path, bool read_only);
    ~DiskImage();
    DiskImage(const DiskImage&) = delete;
    DiskImage& operator=(const DiskImage&) = delete;

    int fd() const { return fd_; }
    uint64_t size() const { return size_; }
    bool read_only() const { return read_only_; }

private:
    int fd_ = -1;
    uint64_t size_ = 0;
    bool read_only_;
};

}  // namespace ntc::vmm
