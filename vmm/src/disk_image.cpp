#include "disk_image.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace ntc::vmm {

DiskImage::DiskImage(const std::string& path, bool read_only) : read_only_(read_only) {
    fd_ = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd_ < 0) throw UserError(errno_text("cannot open disk " + path));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(fd_);
        if (err == EWOULDBLOCK)
            throw UserError("disk " + path + " is in use (locked by another VM or by ntc-clone)");
        errno = err;
        throw UserError(errno_text("cannot lock disk " + path));
    }
    struct stat st;
    if (::fstat(fd_, &st) != 0) throw UserError(errno_text("cannot stat disk " + path));
    if (S_ISBLK(st.st_mode)) {
        if (::ioctl(fd_, BLKGETSIZE64, &size_) != 0) throw UserError(errno_text("cannot size disk " + path));
    } else if (S_ISREG(st.st_mode)) {
        size_ = uint64_t(st.st_size);
    } else {
        ::close(fd_);
        throw UserError("disk " + path + " is neither a file nor a block device");
    }
}

DiskImage::~DiskImage() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace ntc::vmm
