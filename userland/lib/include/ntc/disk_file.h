#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <sys/stat.h>

namespace ntc {

// A disk image file or block device, opened by path: the one disk-file class
// of ntc-clone, ntc-info and ntc-vmm.  Owns the descriptor.  Its errors are
// ntc::Errors that name it `name`, by default its path ("cannot open
// disk1.img: ..."); ntc-vmm names its disks "disk PATH".
class DiskFile {
public:
    enum class Mode { read, read_write };
    DiskFile(const std::string& path, Mode mode, const std::string& name = {});
    // Creates a new sparse file of the given size; fails if it exists.
    static DiskFile create_sparse(const std::string& path, uint64_t size);
    DiskFile(DiskFile&& other) noexcept;
    DiskFile& operator=(DiskFile&& other) noexcept;
    DiskFile(const DiskFile&) = delete;
    DiskFile& operator=(const DiskFile&) = delete;
    ~DiskFile();

    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    bool read_only() const { return mode_ == Mode::read; }
    uint64_t size() const { return size_; }
    bool is_block_device() const { return S_ISBLK(st_.st_mode); }
    const struct stat& stat() const { return st_; }
    bool same_file_as(const DiskFile& other) const;

    // Whole reads and writes; short transfers and EOF are errors.
    void read_at(uint64_t offset, std::span<uint8_t> buf) const;
    void write_at(uint64_t offset, std::span<const uint8_t> buf) const;
    void sync() const;
    // Truncates a regular file to zero and back to size: all of it a hole.
    void reset_sparse(uint64_t size);

    // flock(2) without waiting; false when another process holds it (errno
    // EWOULDBLOCK) or flock fails otherwise (errno says why).  The lock lasts
    // as long as the descriptor: ntc-vmm holds its disks exclusively while
    // the VM runs, ntc-clone its source shared and its target exclusively.
    bool try_lock_shared() const;
    bool try_lock_exclusive() const;

private:
    DiskFile() = default;
    void refresh_size();

    int fd_ = -1;
    std::string path_;
    std::string name_;
    Mode mode_ = Mode::read_write;
    struct stat st_ {};
    uint64_t size_ = 0;
};

}  // namespace ntc
