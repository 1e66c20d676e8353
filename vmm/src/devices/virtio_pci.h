#pragma once
// The virtio 1.x PCI transport (modern only): common, notify, ISR and device
// configuration structures in BAR 0, found through vendor capabilities;
// interrupts as legacy INTx, level-triggered while the ISR is non-zero.
//
// The device's registers are guarded by its own lock: vCPUs take it for
// their accesses, the worker to pick up and to complete requests, never
// during a request's I/O.
#include <linux/virtio_config.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/pci.h"
#include "devices/virtio_device.h"

namespace ntcvmm {

class VirtioPciDevice : public PciDevice {
public:
    static constexpr uint32_t kBarSize = 0x4000;
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceConfigOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyMultiplier = 4;

    static constexpr uint8_t kStatusNeedsReset = VIRTIO_CONFIG_S_NEEDS_RESET;

    using InterruptLine = std::function<void(bool asserted)>;

    VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory,
                    uint32_t bar_address, uint8_t irq, InterruptLine interrupt);
    ~VirtioPciDevice() override;

    PciConfigSpace& config() override { return config_; }
    uint64_t bar_read(unsigned bar, uint64_t offset, unsigned size) override;
    void bar_write(unsigned bar, uint64_t offset, unsigned size, uint64_t value) override;

    uint8_t status() const;
    VirtioDevice& device() { return *device_; }

    // Queue `queue` has work: host-side input (a frame for virtio-net).  Any
    // thread.  Without a worker the queue is served before this returns.
    void notify(uint16_t queue);

    // From now on a thread of this device serves the notified queues, so the
    // vCPU that notified goes on at once.  A device reset waits for the
    // request being served to complete.
    void start_worker();
    // Ends the worker after the request it serves.
    void stop_worker();

private:
    void queue_notified(uint16_t queue);
    bool serve(unsigned queues);
    void work_loop();
    uint64_t common_read(uint64_t offset, unsigned size);
    void common_write(uint64_t offset, unsigned size, uint64_t value);
    void reset();
    void fail(const char* why);
    void update_interrupt();
    Virtqueue* selected_queue();

    std::unique_ptr<VirtioDevice> device_;
    PciConfigSpace config_;
    InterruptLine interrupt_;
    std::vector<Virtqueue> queues_;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t queue_select_ = 0;
    uint8_t status_ = 0;
    uint8_t isr_ = 0;
    uint8_t config_generation_ = 0;

    mutable std::mutex lock_;
    std::condition_variable_any work_ready_, idle_;
    unsigned pending_queues_ = 0;  // bit q: queue q was notified
    bool busy_ = false;            // the worker serves a request unlocked
    bool stopping_ = false;
    std::thread worker_;
};

}  // namespace ntcvmm
