#pragma once
// The virtio 1.x PCI transport (modern only): common, notify, ISR and device
// configuration structures in BAR 0, found through vendor capabilities, and
// an MSI-X capability whose table and PBA are in BAR 0 too.
//
// Notifications: each queue has an eventfd.  Once the driver has set
// DRIVER_OK it is KVM's ioeventfd on the queue's notify address, so the
// driver's notify write never leaves KVM; a notify write that does exit (of
// another width, or before DRIVER_OK) and host-side input (a frame for
// virtio-net) signal the same eventfd.  The device's worker thread waits on
// these eventfds and serves the queues.
//
// Interrupts: while the driver has MSI-X enabled, an MSI-X message per
// vector, each vector an irqfd (an eventfd KVM turns into the message, with
// the message as the vector's GSI route); otherwise legacy INTx,
// level-triggered while the ISR is non-zero.
//
// The device's registers are guarded by its own lock: vCPUs take it for
// their accesses, the worker to pick up and to complete requests, never
// during a request's I/O.
#include <linux/virtio_config.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "devices/msix.h"
#include "devices/pci.h"
#include "devices/virtio_device.h"
#include "kvm.h"
#include "vm_eventfds.h"

namespace ntc::vmm {

class VirtioPciDevice : public PciDevice {
public:
    static constexpr uint32_t kBarSize = 0x8000;
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceConfigOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint32_t kNotifyMultiplier = 4;
    // A page each, apart from the other registers, as the PCI specification
    // recommends, so that a driver can map them on their own.
    static constexpr uint64_t kMsixTableOffset = 0x4000;
    static constexpr uint64_t kMsixPbaOffset = 0x5000;
    // The driver notifies by writing the queue's 16-bit index (virtio 1.x
    // 4.1.5.2; no VIRTIO_F_NOTIFICATION_DATA), so that is what KVM matches.
    static constexpr unsigned kNotifyWidth = 2;

    static constexpr uint8_t kStatusNeedsReset = VIRTIO_CONFIG_S_NEEDS_RESET;

    using InterruptLine = std::function<void(bool asserted)>;

    // MSI-X vector q for queue q, and one more for configuration changes,
    // each an irqfd in `vm`, which the device also gives its ioeventfds.
    VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory, uint32_t bar_address, uint8_t irq,
                    InterruptLine interrupt, VmEventfds& vm);
    ~VirtioPciDevice() override;

    PciConfigSpace& config() override { return config_; }
    void config_write(uint8_t offset, unsigned size, uint32_t value) override;
    uint64_t bar_read(unsigned bar, uint64_t offset, unsigned size) override;
    void bar_write(unsigned bar, uint64_t offset, unsigned size, uint64_t value) override;

    uint8_t status() const;
    VirtioDevice& device() { return *device_; }
    unsigned msix_vectors() const { return msix_.size(); }

    // Queue `queue` has work.  Any thread, no lock: it signals the queue's
    // eventfd, as KVM does for the driver's notification.
    void notify(uint16_t queue);

    // Serves the queues whose eventfds were signalled since the last call,
    // and returns the device's completed requests to the driver, on the
    // calling thread: the worker calls it when they wake it (without a
    // worker, e.g. in the fuzzer, whoever wants the queues served).
    // Returns the chains taken.
    unsigned serve_notified();

    // From now on a thread of this device waits on the queues' eventfds and
    // serves them, so nothing a vCPU does waits for the device's I/O.
    void start_worker();
    // Ends the worker after the request it serves.
    void stop_worker();

    // The worker prints the device's state on stderr (describe()) when it
    // is next idle; for a guest that hangs.
    void request_report();
    // Status, ISR, and each queue with its MSI-X vector; from the thread
    // that serves the queues.
    std::string describe() const;

private:
    unsigned serve(unsigned queues, unsigned& chains);
    void work_loop();
    uint64_t common_read(uint64_t offset, unsigned size);
    void common_write(uint64_t offset, unsigned size, uint64_t value);
    void reset();
    void fail(const char* why);
    void queue_interrupt(unsigned queue);
    void config_interrupt();
    void update_interrupt();
    void signal_vector(unsigned vector);
    void sync_notify_eventfds();
    Virtqueue* selected_queue();

    std::unique_ptr<VirtioDevice> device_;
    VmEventfds& vm_;
    PciConfigSpace config_;
    InterruptLine interrupt_;
    std::vector<Virtqueue> queues_;
    std::vector<Fd> queue_eventfds_;
    std::vector<std::optional<uint64_t>> ioeventfd_addresses_;  // where KVM signals each queue's eventfd
    std::vector<Fd> vector_eventfds_;                           // irqfds, one per MSI-X vector
    std::vector<uint32_t> vector_gsis_;
    MsixTable msix_;
    uint8_t msix_capability_ = 0;  // its offset in config space
    uint16_t config_vector_;
    std::vector<uint16_t> queue_vectors_;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t queue_select_ = 0;
    uint8_t status_ = 0;
    uint8_t isr_ = 0;
    uint8_t config_generation_ = 0;

    mutable std::mutex lock_;
    std::condition_variable_any idle_;
    bool busy_ = false;  // a request is being served unlocked
    Fd stop_;            // eventfd: the worker is to end
    Fd report_;          // eventfd: the worker is to print describe()
    std::thread worker_;
};

}  // namespace ntc::vmm
