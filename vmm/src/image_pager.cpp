#include "image_pager.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ntc/error.h>
#include <ntc/swap_area.h>

namespace ntc::vmm {

namespace {

constexpr uint64_t kPage = NTC_PAGE_SIZE;
constexpr uint64_t kPageShift = 12;
// A fault reads this many pages on from the one touched: a kernel that
// touches a page mostly touches its neighbours next.
constexpr uint64_t kFaultRunPages = 16;
constexpr uint64_t kLoaderRunPages = 64;
constexpr uint64_t kZeroRunPages = 512;

// A userfaultfd by the system call, or by /dev/userfaultfd where the call
// is refused to processes without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd=0).
int open_userfaultfd() {
    int fd = int(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd >= 0) return fd;
    int call_errno = errno;
#ifdef USERFAULTFD_IOC_NEW
    if (int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC); dev >= 0) {
        fd = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        ::close(dev);
        if (fd >= 0) return fd;
    }
#endif
    errno = call_errno;
    ntc::throw_errno("this process cannot have a userfaultfd to load the image on demand");
}

void uffd_ioctl(int fd, unsigned long request, void* arg, const char* what) {
    if (::ioctl(fd, request, arg) < 0) ntc::throw_errno(std::string("userfaultfd ") + what);
}

}  // namespace

ImagePager::ImagePager(const std::string& disk, ImageLayout layout, const GuestMemory& memory, Failed failed)
    : layout_(std::move(layout)), memory_(memory), disk_(disk, ntc::DiskFile::Mode::read), failed_(std::move(failed)),
      state_(new std::atomic<uint8_t>[layout_.frames.size()]), page_crc_(layout_.frames.size()) {
    const uint64_t pages = layout_.frames.size();
    for (uint64_t k = 0; k < pages; k++) state_[k].store(kMissing, std::memory_order_relaxed);
    uffd_ = open_userfaultfd();
    try {
        uffdio_api api{};
        api.api = UFFD_API;
        uffd_ioctl(uffd_, UFFDIO_API, &api, "API handshake");
        stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
        if (stop_fd_ < 0) ntc::throw_errno("cannot make an eventfd for the image pager");

        // Only a page not in memory faults: an image frame that the
        // firmware tables' writes brought in is filled directly.
        std::vector<uint64_t> resident;
        for (const MemoryRegion& r : memory_.regions()) {
            std::vector<unsigned char> in_core(r.size / kPage);
            if (::mincore(r.host, r.size, in_core.data()) != 0) ntc::throw_errno("mincore on guest RAM");
            uint64_t first_pfn = r.guest_address >> kPageShift;
            auto from = std::lower_bound(layout_.frames.begin(), layout_.frames.end(), first_pfn);
            for (auto it = from; it != layout_.frames.end() && *it < first_pfn + in_core.size(); ++it)
                if (in_core[*it - first_pfn] & 1) resident.push_back(uint64_t(it - layout_.frames.begin()));
        }
        for (const MemoryRegion& r : memory_.regions()) {
            uffdio_register reg{};
            reg.range.start = reinterpret_cast<uintptr_t>(r.host);
            reg.range.len = r.size;
            reg.mode = UFFDIO_REGISTER_MODE_MISSING;
            uffd_ioctl(uffd_, UFFDIO_REGISTER, &reg, "register guest RAM");
            registered_ = true;
            const uint64_t needed = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | (1ull << _UFFDIO_WAKE);
            if ((reg.ioctls & needed) != needed)
                throw ntc::Error("userfaultfd cannot copy into guest RAM on this host");
        }
        for (uint64_t k : resident) {
            uint8_t* dst = memory_.span(layout_.frames[k] << kPageShift, kPage);
            disk_.read_at(layout_.offsets[k], {dst, kPage});
            page_crc_[k] = uint32_t(::crc32(0, dst, uInt(kPage)));
            state_[k].store(kPlaced);
        }
        placed_ = resident.size();
    } catch (...) {
        release_memory();
        throw;
    }
    fault_thread_ = std::thread([this] { serve_faults(); });
}

ImagePager::~ImagePager() { stop(); }

void ImagePager::start_loading(std::function<void(const Loaded&)> loaded) {
    started_ = std::chrono::steady_clock::now();
    loader_thread_ = std::thread([this, loaded = std::move(loaded)] {
        load_all();
        bool ok;
        {
            std::lock_guard lock(lock_);
            ok = loaded_;
        }
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - started_;
        uint64_t pages = layout_.frames.size();
        if (ok && loaded) loaded({pages, pages - by_loader_.load(), took.count()});
    });
}

bool ImagePager::loaded() {
    std::lock_guard lock(lock_);
    return loaded_;
}

bool ImagePager::wait_until_loaded() {
    awaited_ = true;
    std::unique_lock lock(lock_);
    changed_.wait(lock, [this] { return loaded_ || stopping_; });
    return loaded_;
}

void ImagePager::stop() {
    {
        std::lock_guard lock(lock_);
        stopping_ = true;
    }
    changed_.notify_all();
    stop_loading_ = true;
    if (loader_thread_.joinable()) loader_thread_.join();
    if (fault_thread_.joinable()) {
        uint64_t one = 1;
        if (::write(stop_fd_, &one, sizeof one) < 0) std::perror("ntc-vmm: image pager");
        fault_thread_.join();
    }
    release_memory();
}

void ImagePager::unregister_memory() {
    if (uffd_ < 0 || !registered_) return;
    for (const MemoryRegion& r : memory_.regions()) {
        uffdio_range range{reinterpret_cast<uintptr_t>(r.host), r.size};
        ::ioctl(uffd_, UFFDIO_UNREGISTER, &range);
    }
    registered_ = false;
}

void ImagePager::release_memory() {
    unregister_memory();
    if (uffd_ >= 0) ::close(uffd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
    uffd_ = stop_fd_ = -1;
}

void ImagePager::fail(const std::string& why) {
    stop_loading_ = true;
    {
        std::lock_guard lock(lock_);
        stopping_ = true;  // nobody waits for pages that will not come
    }
    changed_.notify_all();
    if (failed_) failed_(why);
}

void ImagePager::serve_faults() {
    try {
        for (;;) {
            pollfd fds[2] = {{uffd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                ntc::throw_errno("poll on the userfaultfd");
            }
            if (fds[1].revents) return;
            uffd_msg messages[32];
            ssize_t n = ::read(uffd_, messages, sizeof messages);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                ntc::throw_errno("read from the userfaultfd");
            }
            for (ssize_t i = 0; i < n / ssize_t(sizeof(uffd_msg)); i++)
                if (messages[i].event == UFFD_EVENT_PAGEFAULT)
                    resolve_fault(messages[i].arg.pagefault.address & ~(kPage - 1));
        }
    } catch (const std::exception& e) {
        fail(std::string("the image cannot be loaded: ") + e.what());
    }
}

void ImagePager::resolve_fault(uint64_t host_address) {
    for (const MemoryRegion& r : memory_.regions()) {
        uint64_t start = reinterpret_cast<uintptr_t>(r.host);
        if (host_address < start || host_address - start >= r.size) continue;
        uint64_t pfn = (r.guest_address + (host_address - start)) >> kPageShift;
        auto it = std::lower_bound(layout_.frames.begin(), layout_.frames.end(), pfn);
        if (it != layout_.frames.end() && *it == pfn) {
            uint64_t k = uint64_t(it - layout_.frames.begin());
            if (uint64_t n = claim(k, placeable_run(k, kFaultRunPages))) return place(k, n);
            // Being placed by the loader, whose copy wakes the faulting
            // thread (a wake now would only fault again, and keep the
            // loader from the CPU), and which no longer waits its turn; or
            // placed since the fault, which then did not wait.
            awaited_ = true;
            return;
        }
        // Not in the image: free in the checkpointed kernel, zero as at
        // boot.  The kernel zeroes each page it allocates (init_on_alloc),
        // so free memory is touched page by page: one fault maps zero
        // pages over the whole free run around it, up to its 2 MiB.
        uint64_t region_first = r.guest_address >> kPageShift, region_end = region_first + r.size / kPage;
        uint64_t first =
            std::max({pfn & ~(kZeroRunPages - 1), region_first, it == layout_.frames.begin() ? 0 : *std::prev(it) + 1});
        uint64_t end =
            std::min({(pfn | (kZeroRunPages - 1)) + 1, region_end, it == layout_.frames.end() ? UINT64_MAX : *it});
        uffdio_zeropage zero{};
        zero.range = {start + ((first - region_first) << kPageShift), (end - first) * kPage};
        if (::ioctl(uffd_, UFFDIO_ZEROPAGE, &zero) == 0) return;
        // Part of the run is in memory (the firmware's, or another fault's
        // run came first: EEXIST, or EAGAIN after a part): the faulting
        // page alone, if still missing.
        for (;;) {
            zero = {};
            zero.range = {host_address, kPage};
            if (::ioctl(uffd_, UFFDIO_ZEROPAGE, &zero) == 0) return;
            if (errno == EEXIST) break;
            // ENOENT: the load ended meanwhile and unregistered guest RAM,
            // which woke the faulting thread to take an ordinary zero page.
            if (errno == ENOENT) return;
            if (errno != EAGAIN) ntc::throw_errno("userfaultfd zero page at guest frame " + std::to_string(pfn));
        }
        uffdio_range range{host_address, kPage};
        ::ioctl(uffd_, UFFDIO_WAKE, &range);
        return;
    }
    throw ntc::Error("a fault outside guest RAM at host address " + std::to_string(host_address));
}

uint64_t ImagePager::placeable_run(uint64_t k, uint64_t most) const {
    uint64_t n = layout_.run(k, most);
    // One copy fills one span of host memory: not across RAM regions.
    while (n > 1 && !memory_.span(layout_.frames[k] << kPageShift, n * kPage)) n--;
    return n;
}

uint64_t ImagePager::claim(uint64_t first, uint64_t count) {
    uint64_t n = 0;
    for (; n < count; n++) {
        uint8_t expected = kMissing;
        if (!state_[first + n].compare_exchange_strong(expected, kPlacing)) break;
    }
    return n;
}

void ImagePager::place(uint64_t first, uint64_t count) {
    thread_local std::vector<uint8_t> buffer;
    buffer.resize(count * kPage);
    disk_.read_at(layout_.offsets[first], buffer);
    uffdio_copy copy{};
    copy.dst = reinterpret_cast<uintptr_t>(memory_.span(layout_.frames[first] << kPageShift, count * kPage));
    copy.src = reinterpret_cast<uintptr_t>(buffer.data());
    copy.len = count * kPage;
    while (::ioctl(uffd_, UFFDIO_COPY, &copy) < 0) {
        // EAGAIN: the address space changed under the copy; the rest again.
        if (errno != EAGAIN || copy.copy < 0) {
            // EEXIST: a frame the pager was to fill is in memory already.
            ntc::throw_errno("userfaultfd copy of the image into guest frame " + std::to_string(layout_.frames[first]));
        }
        copy.dst += uint64_t(copy.copy);
        copy.src += uint64_t(copy.copy);
        copy.len -= uint64_t(copy.copy);
        copy.copy = 0;
    }
    // After the copy, which woke the faulting thread: nobody waits for
    // the CRCs until every page is in.
    for (uint64_t i = 0; i < count; i++) page_crc_[first + i] = uint32_t(::crc32(0, &buffer[i * kPage], uInt(kPage)));
    set_placed(first, count);
}

void ImagePager::set_placed(uint64_t first, uint64_t count) {
    for (uint64_t i = 0; i < count; i++) state_[first + i].store(kPlaced, std::memory_order_release);
    {
        std::lock_guard lock(lock_);
        placed_ += count;
    }
    changed_.notify_all();
}

void ImagePager::load_all() {
    const uint64_t pages = layout_.frames.size();
    // Behind the guest: a page it waits for comes from the fault thread,
    // and the loader must not take the CPU from the vCPUs or from that
    // thread (on a host with fewer CPUs than the guest it slowed the
    // guest down more than preloading did), until the guest waits for
    // the loader itself, with a write held back.
    sched_param priority{};
    ::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &priority);
    bool idle = true;
    try {
        for (uint64_t k = 0; k < pages && !stop_loading_;) {
            if (idle && awaited_.load(std::memory_order_relaxed)) {
                ::pthread_setschedparam(::pthread_self(), SCHED_OTHER, &priority);
                idle = false;
            }
            if (state_[k].load(std::memory_order_relaxed) != kMissing) {
                k++;
                continue;
            }
            uint64_t n = claim(k, placeable_run(k, kLoaderRunPages));
            if (n == 0) continue;
            place(k, n);
            by_loader_ += n;
            k += n;
        }
    } catch (const std::exception& e) {
        return fail(std::string("the image cannot be loaded: ") + e.what());
    }
    {
        // Pages claimed for faults may still be on their way.
        std::unique_lock lock(lock_);
        changed_.wait(lock, [&] { return placed_ == pages || stopping_; });
        if (stopping_) return;
    }
    uLong crc = layout_.head_crc32;
    const uLong append_page = ::crc32_combine_gen(z_off_t(kPage));
    for (uint64_t k = 0; k < pages; k++) crc = ::crc32_combine_op(crc, page_crc_[k], append_page);
    if (auto problem = image_crc_problem(layout_, uint32_t(crc))) return fail("the image is damaged: " + *problem);
    // Every frame is in: from now on a missing page is the kernel's own.
    unregister_memory();
    {
        std::lock_guard lock(lock_);
        loaded_ = true;
    }
    changed_.notify_all();
}

}  // namespace ntc::vmm
