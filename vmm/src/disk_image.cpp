#include "disk_image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ntc/error.h>

namespace ntc::vmm {

DiskImage::DiskImage(const std::string& path, bool read_only) : read_only_(read_only) {
    fd_ = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd_ < 0) ntc::throw_errno("cannot open disk " + path);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(fd_);
        if (err == EWOULDBLOCK)
            throw ntc::Error("disk " + path + " is in use (locked by another VM or by ntc-clone)");
        errno = err;
        ntc::throw_errno("cannot lock disk " + path);
    }
    struct stat st;
    if (::fstat(fd_, &st) != 0) ntc::throw_errno("cannot stat disk " + path);
    if (S_ISBLK(st.st_mode)) {
        if (::ioctl(fd_, BLKGETSIZE64, &size_) != 0) ntc::throw_errno("cannot size disk " + path);
    } else if (S_ISREG(st.st_mode)) {
        size_ = uint64_t(st.st_size);
    } else {
        ::close(fd_);
        throw ntc::Error("disk " + path + " is neither a file nor a block device");
    }
}

DiskImage::~DiskImage() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace ntc::vmm
