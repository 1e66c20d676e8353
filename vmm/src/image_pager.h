#pragma once
// Resuming before the image is in RAM (as Firecracker loads a snapshot by
// userfaultfd, here on a hibernation image).
//
// Guest RAM is registered with userfaultfd for missing pages.  A frame the
// image holds is read from its slot when something first touches it (a
// vCPU, or a device reading a queue), with a few of the pages after it; any
// other frame gets a zero page, as a fresh machine's RAM.  A loader thread
// reads the rest in stream order meanwhile.  When every page is in, the
// stream's CRC (combined from each page's, in stream order) is compared with
// the record's and userfaultfd lets go of guest RAM.
//
// Disk 2 must not change until then: its image is not yet checked, and
// disk 2 holds the only copy of the pages not yet read (the resumed kernel
// sees their slots as free swap).  The machine sends the guest's writes to
// an overlay until loaded() says so.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ntc/disk_file.h>
#include <string>
#include <thread>
#include <vector>

#include "guest_memory.h"
#include "image_restore.h"

namespace ntc::vmm {

class ImagePager {
public:
    struct Loaded {
        uint64_t pages;
        uint64_t on_first_touch;  // placed for a fault, not by the loader
        double seconds;           // from start_loading()
    };
    // Called from a pager thread when a page cannot be read or the CRC does
    // not match: the guest has run on those pages, so the machine must stop
    // (disk 2 is unchanged: its writes went elsewhere).
    using Failed = std::function<void(const std::string& why)>;

    // Registers guest RAM and serves its faults from now on.  Frames that
    // are in memory already (the firmware tables' huge page) get their
    // image page at once.  Throws ntc::Error when this process cannot have
    // a userfaultfd (the caller then loads the image first).
    ImagePager(const std::string& disk, ImageLayout layout, const GuestMemory& memory, Failed failed);
    ~ImagePager();
    ImagePager(const ImagePager&) = delete;
    ImagePager& operator=(const ImagePager&) = delete;

    // Starts the loader thread; `loaded` is called from it once every page
    // is in and the CRC matched.
    void start_loading(std::function<void(const Loaded&)> loaded);

    // Whether every page is in and the CRC matched.
    bool loaded();
    // Returns true once every page is in and the CRC matched; false when
    // the pager stopped or failed first.  The loader, which yields to every
    // other thread of the host until someone waits for it (here, or a
    // fault on a page it is placing), takes its share of the CPU from then on.
    bool wait_until_loaded();

    // Ends the threads and lets go of guest RAM.  A page not loaded by then
    // reads as zero: call it once the vCPUs and devices have stopped.
    void stop();

private:
    enum : uint8_t { kMissing, kPlacing, kPlaced };

    void serve_faults();
    void resolve_fault(uint64_t host_address);
    void load_all();
    // Claims data pages from `first` on, up to `count`, that nobody placed
    // or is placing; returns how many, from `first`, it claimed.
    uint64_t claim(uint64_t first, uint64_t count);
    // Reads claimed data pages [first, first + count), consecutive in RAM
    // and on disk, and copies them into guest RAM.
    void place(uint64_t first, uint64_t count);
    // Data pages from k on, at most `most`, that one read and copy places.
    uint64_t placeable_run(uint64_t k, uint64_t most) const;
    void set_placed(uint64_t first, uint64_t count);
    void fail(const std::string& why);
    // Lets go of guest RAM (the loader, once every page is in); release
    // also closes the descriptors (stop, when the threads have ended).
    void unregister_memory();
    void release_memory();

    ImageLayout layout_;
    GuestMemory memory_;
    ntc::DiskFile disk_;
    Failed failed_;
    int uffd_ = -1;
    int stop_fd_ = -1;  // eventfd: the fault thread ends
    std::atomic<bool> registered_{false};
    std::unique_ptr<std::atomic<uint8_t>[]> state_;
    std::vector<uint32_t> page_crc_;
    std::mutex lock_;  // placed_, loaded_, stopping_ for the waits
    std::condition_variable changed_;
    uint64_t placed_ = 0;
    bool loaded_ = false, stopping_ = false;
    std::atomic<bool> stop_loading_{false};
    std::atomic<bool> awaited_{false};  // a thread waits for the loader: it takes its share of the CPU
    std::atomic<uint64_t> by_loader_{0};
    std::chrono::steady_clock::time_point started_;
    std::thread fault_thread_, loader_thread_;
};

}  // namespace ntc::vmm
