#include "ntc/disk_file.h"

#include "ntc/error.h"

#include <cerrno>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace ntc {

DiskFile::DiskFile(const std::string& path, Mode mode, const std::string& name)
    : path_(path), name_(name.empty() ? path : name), mode_(mode) {
    int flags = (mode == Mode::read ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    fd_ = ::open(path.c_str(), flags);
    if (fd_ < 0) throw_errno("cannot open " + name_);
    try {
        refresh_size();
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

DiskFile DiskFile::create_sparse(const std::string& path, uint64_t size) {
    DiskFile f;
    f.path_ = path;
    f.name_ = path;
    f.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f.fd_ < 0) throw_errno("cannot create " + path);
    if (::ftruncate(f.fd_, static_cast<off_t>(size)) < 0) {
        int saved = errno;
        ::unlink(path.c_str());
        errno = saved;
        throw_errno("cannot size " + path);
    }
    f.refresh_size();  // f's destructor closes the descriptor if this throws
    return f;
}

DiskFile::DiskFile(DiskFile&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)), name_(std::move(other.name_)), mode_(other.mode_), st_(other.st_),
      size_(other.size_) {
    other.fd_ = -1;
}

DiskFile& DiskFile::operator=(DiskFile&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.fd_;
        path_ = std::move(other.path_);
        name_ = std::move(other.name_);
        mode_ = other.mode_;
        st_ = other.st_;
        size_ = other.size_;
        other.fd_ = -1;
    }
    return *this;
}

DiskFile::~DiskFile() {
    if (fd_ >= 0) ::close(fd_);
}

void DiskFile::refresh_size() {
    if (::fstat(fd_, &st_) < 0) throw_errno("cannot stat " + name_);
    if (S_ISBLK(st_.st_mode)) {
        uint64_t bytes = 0;
        if (::ioctl(fd_, BLKGETSIZE64, &bytes) < 0) throw_errno("cannot get the size of " + name_);
        size_ = bytes;
    } else if (S_ISREG(st_.st_mode)) {
        size_ = static_cast<uint64_t>(st_.st_size);
    } else {
        throw Error(name_ + " is neither a regular file nor a block device");
    }
}

bool DiskFile::same_file_as(const DiskFile& other) const {
    if (is_block_device() && other.is_block_device()) return st_.st_rdev == other.st_.st_rdev;
    return st_.st_dev == other.st_.st_dev && st_.st_ino == other.st_.st_ino;
}

void DiskFile::read_at(uint64_t offset, std::span<uint8_t> buf) const {
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("read error on " + name_ + " at byte " + std::to_string(offset + done));
        if (n == 0) throw Error("unexpected end of " + name_ + " at byte " + std::to_string(offset + done));
        done += static_cast<size_t>(n);
    }
}

void DiskFile::write_at(uint64_t offset, std::span<const uint8_t> buf) const {
    size_t done = 0;
    while (done < buf.size()) {
        ssize_t n = ::pwrite(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw_errno("write error on " + name_ + " at byte " + std::to_string(offset + done));
        done += static_cast<size_t>(n);
    }
}

void DiskFile::sync() const {
    if (::fsync(fd_) < 0) throw_errno("cannot flush " + name_);
}

void DiskFile::reset_sparse(uint64_t size) {
    if (::ftruncate(fd_, 0) < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) < 0) throw_errno("cannot reset " + name_);
    refresh_size();
}

bool DiskFile::try_lock_shared() const { return ::flock(fd_, LOCK_SH | LOCK_NB) == 0; }

bool DiskFile::try_lock_exclusive() const { return ::flock(fd_, LOCK_EX | LOCK_NB) == 0; }

}  // namespace ntc
