#include "devices/virtio_pci.h"

#include <linux/pci_regs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include <ntc/error.h>

#include "devices/register_bytes.h"
#include "devices/worker_wakeup.h"
#include "eventfd.h"
#include "layout.h"

namespace ntc::vmm {

namespace {

constexpr uint64_t kFeatureVersion1 = 1ull << VIRTIO_F_VERSION_1;
constexpr uint64_t kFeatureEventIndex = 1ull << VIRTIO_RING_F_EVENT_IDX;
// What the transport and the virtqueues implement, offered for every device.
constexpr uint64_t kTransportFeatures = kFeatureVersion1 | kFeatureEventIndex;
// ISR bit 0, used buffers: <linux/virtio_pci.h> names only bit 1 (VIRTIO_PCI_ISR_CONFIG).
constexpr uint8_t kIsrQueue = 1;

using CommonConfig = virtio_pci_common_cfg;

uint32_t pci_class(uint16_t virtio_device_id) {
    switch (virtio_device_id) {
    case VIRTIO_ID_NET:
        return 0x020000;  // Ethernet controller
    case VIRTIO_ID_BLOCK:
        return 0x018000;  // mass storage, other
    default:
        return 0xff0000;
    }
}

// A structure in BAR 0; the notify capability carries the multiplier too.
std::vector<uint8_t> virtio_capability(uint8_t type, uint32_t offset, uint32_t length) {
    virtio_pci_notify_cap cap{};
    cap.cap.cap_vndr = PCI_CAP_ID_VNDR;
    cap.cap.cap_len = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? sizeof(virtio_pci_notify_cap) : sizeof(virtio_pci_cap);
    cap.cap.cfg_type = type;
    cap.cap.bar = 0;
    cap.cap.offset = offset;
    cap.cap.length = length;
    cap.notify_off_multiplier = VirtioPciDevice::kNotifyMultiplier;
    auto bytes = reinterpret_cast<const uint8_t*>(&cap);
    return {bytes, bytes + cap.cap.cap_len};
}

// Replaces bytes [lo, lo + size) of a 64-bit register with the written value.
uint64_t merge(uint64_t reg, unsigned lo, unsigned size, uint64_t value) {
    uint64_t mask = size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1);
    return (reg & ~(mask << (8 * lo))) | ((value & mask) << (8 * lo));
}

// SCHED_BATCH or SCHED_OTHER for the calling thread (devices/worker_wakeup.h).
void set_wakeup_policy(bool batched, const std::string& device) {
    sched_param none{};
    if (int e = ::pthread_setschedparam(::pthread_self(), batched ? SCHED_BATCH : SCHED_OTHER, &none))
        std::fprintf(stderr, "ntc-vmm: %s: cannot switch to %s: %s\n", device.c_str(),
                     batched ? "SCHED_BATCH" : "SCHED_OTHER", std::strerror(e));
}

}  // namespace

VirtioPciDevice::VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory, uint32_t bar_address,
                                 uint8_t irq, InterruptLine interrupt, VmEventfds& vm)
    : device_(std::move(device)), vm_(vm),
      config_(layout::kVirtioVendor, uint16_t(layout::kVirtioPciDeviceBase + device_->device_id()),
              pci_class(device_->device_id()), 1),
      interrupt_(std::move(interrupt)), ioeventfd_addresses_(device_->queue_count()),
      msix_(
          device_->queue_count() + 1,
          [this](unsigned vector, const MsiMessage& message) { vm_.route_msi(vector_gsis_[vector], message); },
          [this](unsigned vector) { signal_vector(vector); }),
      config_vector_(VIRTIO_MSI_NO_VECTOR), queue_vectors_(device_->queue_count(), VIRTIO_MSI_NO_VECTOR) {
    config_.set(PCI_SUBSYSTEM_VENDOR_ID, 2, layout::kVirtioVendor);
    config_.set(PCI_SUBSYSTEM_ID, 2, layout::kVirtioPciDeviceBase + device_->device_id());
    config_.add_memory_bar(0, bar_address, kBarSize);
    config_.set_interrupt(irq, 1);
    config_.add_capability(virtio_capability(VIRTIO_PCI_CAP_COMMON_CFG, kCommonOffset, sizeof(CommonConfig)));
    config_.add_capability(virtio_capability(VIRTIO_PCI_CAP_NOTIFY_CFG, kNotifyOffset, 0x1000));
    config_.add_capability(virtio_capability(VIRTIO_PCI_CAP_ISR_CFG, kIsrOffset, 1));
    config_.add_capability(virtio_capability(VIRTIO_PCI_CAP_DEVICE_CFG, kDeviceConfigOffset, 0x1000));
    msix_capability_ = config_.add_capability(msix_.capability(0, kMsixTableOffset, kMsixPbaOffset));
    config_.set_writable(uint8_t(msix_capability_ + PCI_MSIX_FLAGS), 2, MsixTable::kWritableControl);
    for (unsigned i = 0; i < device_->queue_count(); i++) {
        queues_.emplace_back(memory);
        queue_eventfds_.push_back(make_eventfd(device_->name()));
    }
    for (unsigned v = 0; v < msix_.size(); v++) {
        vector_eventfds_.push_back(make_eventfd(device_->name()));
        vector_gsis_.push_back(vm_.add_irqfd(vector_eventfds_.back().get()));
    }
    report_ = make_eventfd(device_->name());
}

VirtioPciDevice::~VirtioPciDevice() { stop_worker(); }

uint8_t VirtioPciDevice::status() const {
    std::lock_guard lock(lock_);
    return status_;
}

void VirtioPciDevice::start_worker() {
    stop_ = make_eventfd(device_->name());
    worker_ = std::thread([this] { work_loop(); });
    ::pthread_setname_np(worker_.native_handle(), device_->name().substr(0, 15).c_str());
}

void VirtioPciDevice::stop_worker() {
    if (!worker_.joinable()) return;
    signal_eventfd(stop_.get());
    worker_.join();
}

void VirtioPciDevice::work_loop() {
    WorkerWakeup wakeup;
    set_wakeup_policy(wakeup.batched(), device_->name());
    std::vector<pollfd> fds{{stop_.get(), POLLIN, 0}, {report_.get(), POLLIN, 0}};
    for (const auto& fd : queue_eventfds_) fds.push_back({fd.get(), POLLIN, 0});
    if (device_->completion_fd() >= 0) fds.push_back({device_->completion_fd(), POLLIN, 0});
    for (;;) {
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "ntc-vmm: %s: poll: %s; its queues are no longer served\n", device_->name().c_str(),
                         std::strerror(errno));
            return;
        }
        if (fds[0].revents & POLLIN) return;
        if (take_eventfd(report_.get())) std::fprintf(stderr, "ntc-vmm: %s\n", describe().c_str());
        if (wakeup.served(serve_notified())) set_wakeup_policy(wakeup.batched(), device_->name());
    }
}

void VirtioPciDevice::request_report() { signal_eventfd(report_.get()); }

std::string VirtioPciDevice::describe() const {
    std::lock_guard lock(lock_);
    char text[160];
    std::snprintf(text, sizeof(text), "%s: status %#x, ISR %#x, MSI-X %s", device_->name().c_str(), status_, isr_,
                  msix_.enabled() ? "on" : "off");
    std::string out = text;
    for (unsigned q = 0; q < queues_.size(); q++) {
        out += "; queue " + std::to_string(q) + ": " + queues_[q].describe();
        uint16_t vector = queue_vectors_[q];
        if (vector >= msix_.size()) continue;
        std::snprintf(text, sizeof(text), ", vector %u%s%s", vector, msix_.masked(vector) ? " masked" : "",
                      msix_.pending(vector) ? " pending" : "");
        out += text;
    }
    if (std::string own = device_->describe(); !own.empty()) out += "; " + own;
    return out;
}

void VirtioPciDevice::notify(uint16_t queue) {
    if (queue < queue_eventfds_.size()) signal_eventfd(queue_eventfds_[queue].get());
}

unsigned VirtioPciDevice::serve_notified() {
    unsigned queues = 0;
    for (unsigned q = 0; q < queue_eventfds_.size(); q++)
        if (take_eventfd(queue_eventfds_[q].get())) queues |= 1u << q;
    {
        std::lock_guard lock(lock_);
        // New requests only from a driver that drives the device; requests
        // in flight complete whatever happened since they were taken (a
        // reset would have waited for them).
        if (!(status_ & VIRTIO_CONFIG_S_DRIVER_OK) || (status_ & VIRTIO_CONFIG_S_NEEDS_RESET)) queues = 0;
        // Only enabled queues: their layout stays as it is until a reset,
        // and a reset waits while busy_.
        for (unsigned q = 0; q < queues_.size(); q++)
            if (!queues_[q].ready()) queues &= ~(1u << q);
        if (!queues && device_->completion_fd() < 0) return 0;
        busy_ = true;
    }
    std::string error;
    unsigned owed = 0, chains = 0;
    try {
        owed = serve(queues, chains);
    } catch (const std::exception& e) {  // GuestError, or the host out of memory
        error = e.what();
    }
    std::lock_guard lock(lock_);
    busy_ = false;
    idle_.notify_all();
    if (!error.empty()) {
        fail(error.c_str());
        return chains;
    }
    for (unsigned q = 0; q < queues_.size(); q++)
        if (owed & (1u << q)) queue_interrupt(q);
    return chains;
}

// Serves each queue whose bit is set, adding the chains it takes to
// `chains`, and returns the device's completed requests; returns the queues
// that owe the driver an interrupt.  Throws GuestError.
unsigned VirtioPciDevice::serve(unsigned queues, unsigned& chains) {
    unsigned used = 0;
    for (unsigned q = 0; q < queues_.size(); q++) {
        if (!(queues & (1u << q))) continue;
        uint16_t before = queues_[q].taken();
        if (device_->process(q, queues_[q])) used |= 1u << q;
        chains += uint16_t(queues_[q].taken() - before);
    }
    used |= device_->complete(queues_);
    unsigned owed = 0;
    for (unsigned q = 0; q < queues_.size(); q++)
        if ((used & (1u << q)) && queues_[q].needs_interrupt()) owed |= 1u << q;
    return owed;
}

Virtqueue* VirtioPciDevice::selected_queue() {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

void VirtioPciDevice::reset() {
    // The caller holds lock_; the wait lets the worker finish what it is
    // doing before the queues go, and the device's requests in flight end
    // before the guest reuses their memory.
    idle_.wait(lock_, [this] { return !busy_; });
    device_->quiesce();
    for (auto& q : queues_) q.reset();
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    queue_select_ = 0;
    status_ = 0;
    isr_ = 0;
    config_vector_ = VIRTIO_MSI_NO_VECTOR;
    std::fill(queue_vectors_.begin(), queue_vectors_.end(), VIRTIO_MSI_NO_VECTOR);
    update_interrupt();
    sync_notify_eventfds();
}

void VirtioPciDevice::fail(const char* why) {
    std::fprintf(stderr, "ntc-vmm: %s: %s; device needs reset\n", device_->name().c_str(), why);
    status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
    config_interrupt();
}

// Used buffers on `queue` (virtio 1.x 4.1.4.5): its MSI-X vector, or the
// ISR's queue bit and INTx.
void VirtioPciDevice::queue_interrupt(unsigned queue) {
    if (msix_.enabled()) return msix_.raise(queue_vectors_[queue]);
    isr_ |= kIsrQueue;
    update_interrupt();
}

// The configuration changed: the ISR's configuration bit whichever way the
// interrupt goes.
void VirtioPciDevice::config_interrupt() {
    isr_ |= VIRTIO_PCI_ISR_CONFIG;
    if (msix_.enabled()) msix_.raise(config_vector_);
    update_interrupt();
}

void VirtioPciDevice::update_interrupt() {
    if (interrupt_) interrupt_(isr_ != 0 && !msix_.enabled());
}

void VirtioPciDevice::signal_vector(unsigned vector) { signal_eventfd(vector_eventfds_[vector].get()); }

// KVM signals queue q's eventfd at its notify address while the driver
// drives the queue (DRIVER_OK, queue enabled) and BAR 0 decodes; the guest
// can move the BAR or switch decoding off, so this follows every change.
// KVM refuses an address taken (the guest put two BARs on one another):
// that queue's notify writes then exit, which signals the eventfd too.
void VirtioPciDevice::sync_notify_eventfds() {
    std::optional<uint32_t> bar = config_.bar_address(0);
    for (unsigned q = 0; q < queues_.size(); q++) {
        std::optional<uint64_t> wanted;
        if (bar && (status_ & VIRTIO_CONFIG_S_DRIVER_OK) && queues_[q].ready())
            wanted = *bar + kNotifyOffset + uint64_t(q) * kNotifyMultiplier;
        std::optional<uint64_t>& registered = ioeventfd_addresses_[q];
        if (wanted == registered) continue;
        if (registered) vm_.remove_ioeventfd(*registered, kNotifyWidth, queue_eventfds_[q].get());
        registered.reset();
        if (!wanted) continue;
        try {
            vm_.add_ioeventfd(*wanted, kNotifyWidth, queue_eventfds_[q].get());
            registered = wanted;
        } catch (const ntc::Error& e) {
            std::fprintf(stderr, "ntc-vmm: %s queue %u: %s; its notifications exit instead\n", device_->name().c_str(),
                         q, e.what());
        }
    }
}

void VirtioPciDevice::config_write(uint8_t offset, unsigned size, uint32_t value) {
    std::lock_guard lock(lock_);
    config_.write(offset, size, value);
    msix_.set_control(uint16_t(config_.read(uint8_t(msix_capability_ + PCI_MSIX_FLAGS), 2)));
    update_interrupt();  // INTx is quiet while MSI-X is enabled
    sync_notify_eventfds();
}

uint64_t VirtioPciDevice::bar_read(unsigned bar, uint64_t offset, unsigned size) {
    if (bar != 0) return 0;
    std::lock_guard lock(lock_);
    if (offset < kIsrOffset) return common_read(offset, size);
    if (offset == kIsrOffset) {
        uint8_t value = isr_;
        isr_ = 0;  // reading acknowledges
        update_interrupt();
        return value;
    }
    if (offset >= kDeviceConfigOffset && offset < kNotifyOffset)
        return read_le(device_->config(), offset - kDeviceConfigOffset, size);
    if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_.table_bytes())
        return msix_.read_table(offset - kMsixTableOffset, size);
    if (offset >= kMsixPbaOffset && offset < kMsixPbaOffset + msix_.pba_bytes())
        return msix_.read_pba(offset - kMsixPbaOffset, size);
    return 0;
}

void VirtioPciDevice::bar_write(unsigned bar, uint64_t offset, unsigned size, uint64_t value) {
    if (bar != 0) return;
    std::lock_guard lock(lock_);
    if (offset < kIsrOffset) return common_write(offset, size, value);
    if (offset >= kNotifyOffset && offset < kNotifyOffset + 0x1000)
        return notify(uint16_t((offset - kNotifyOffset) / kNotifyMultiplier));
    if (offset >= kMsixTableOffset && offset < kMsixTableOffset + msix_.table_bytes())
        return msix_.write_table(offset - kMsixTableOffset, size, value);
}

uint64_t VirtioPciDevice::common_read(uint64_t offset, unsigned size) {
    Virtqueue* q = selected_queue();
    auto field = [&](uint64_t base, unsigned width, uint64_t reg) -> std::optional<uint64_t> {
        if (offset < base || offset + size > base + width) return std::nullopt;
        return (reg >> (8 * (offset - base))) & (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1));
    };
    uint64_t features = device_->features() | kTransportFeatures;
    uint16_t queue_vector = q ? queue_vectors_[queue_select_] : uint16_t(VIRTIO_MSI_NO_VECTOR);
    // The queue addresses are read as one 64-bit register from their _lo half.
    const std::pair<std::pair<uint64_t, unsigned>, uint64_t> registers[] = {
        {{offsetof(CommonConfig, device_feature_select), 4}, device_feature_select_},
        {{offsetof(CommonConfig, device_feature), 4},
         device_feature_select_ < 2 ? uint32_t(features >> (32 * device_feature_select_)) : 0},
        {{offsetof(CommonConfig, guest_feature_select), 4}, driver_feature_select_},
        {{offsetof(CommonConfig, guest_feature), 4},
         driver_feature_select_ < 2 ? uint32_t(driver_features_ >> (32 * driver_feature_select_)) : 0},
        {{offsetof(CommonConfig, msix_config), 2}, config_vector_},
        {{offsetof(CommonConfig, num_queues), 2}, queues_.size()},
        {{offsetof(CommonConfig, device_status), 1}, status_},
        {{offsetof(CommonConfig, config_generation), 1}, config_generation_},
        {{offsetof(CommonConfig, queue_select), 2}, queue_select_},
        {{offsetof(CommonConfig, queue_size), 2}, q ? uint64_t(q->size) : 0},
        {{offsetof(CommonConfig, queue_msix_vector), 2}, queue_vector},
        {{offsetof(CommonConfig, queue_enable), 2}, q ? uint64_t(q->ready()) : 0},
        {{offsetof(CommonConfig, queue_notify_off), 2}, queue_select_},  // notify offset = queue index
        {{offsetof(CommonConfig, queue_desc_lo), 8}, q ? q->desc_address : 0},
        {{offsetof(CommonConfig, queue_avail_lo), 8}, q ? q->avail_address : 0},
        {{offsetof(CommonConfig, queue_used_lo), 8}, q ? q->used_address : 0},
    };
    for (const auto& [where, reg] : registers)
        if (auto v = field(where.first, where.second, reg)) return *v;
    return 0;
}

void VirtioPciDevice::common_write(uint64_t offset, unsigned size, uint64_t value) {
    Virtqueue* q = selected_queue();
    auto in = [&](uint64_t base, unsigned width) { return offset >= base && offset + size <= base + width; };
    // A vector the table does not have reads back as NO_VECTOR, which tells
    // the driver the mapping failed (virtio 1.x 4.1.5.1.2.1).
    auto vector = [&] { return value < msix_.size() ? uint16_t(value) : uint16_t(VIRTIO_MSI_NO_VECTOR); };
    if (in(offsetof(CommonConfig, device_feature_select), 4)) device_feature_select_ = uint32_t(value);
    else if (in(offsetof(CommonConfig, guest_feature_select), 4)) driver_feature_select_ = uint32_t(value);
    else if (in(offsetof(CommonConfig, guest_feature), 4)) {
        if (driver_feature_select_ < 2 && !(status_ & VIRTIO_CONFIG_S_FEATURES_OK))
            driver_features_ = merge(driver_features_, 4 * driver_feature_select_, 4, value);
    } else if (in(offsetof(CommonConfig, device_status), 1)) {
        uint8_t status = uint8_t(value);
        if (status == 0) return reset();
        if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(status_ & VIRTIO_CONFIG_S_FEATURES_OK)) {
            uint64_t offered = device_->features() | kTransportFeatures;
            // Without VERSION_1 or with features we never offered, refuse.
            if ((driver_features_ & ~offered) || !(driver_features_ & kFeatureVersion1))
                status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        }
        status_ = uint8_t(status | (status_ & VIRTIO_CONFIG_S_NEEDS_RESET));
        sync_notify_eventfds();
    } else if (in(offsetof(CommonConfig, msix_config), 2)) config_vector_ = vector();
    else if (in(offsetof(CommonConfig, queue_select), 2)) queue_select_ = uint16_t(value);
    else if (q && in(offsetof(CommonConfig, queue_msix_vector), 2)) queue_vectors_[queue_select_] = vector();
    else if (q && !q->ready()) {
        // Queue layout can change only while the queue is disabled.
        constexpr size_t kDesc = offsetof(CommonConfig, queue_desc_lo), kAvail = offsetof(CommonConfig, queue_avail_lo),
                         kUsed = offsetof(CommonConfig, queue_used_lo);
        if (in(offsetof(CommonConfig, queue_size), 2)) q->size = uint16_t(value);
        else if (in(offsetof(CommonConfig, queue_enable), 2) && value == 1) {
            try {
                q->event_index = driver_features_ & kFeatureEventIndex;
                q->enable();
            } catch (const GuestError& e) {
                return fail(e.what());
            }
            sync_notify_eventfds();
        } else if (in(kDesc, 8)) q->desc_address = merge(q->desc_address, unsigned(offset - kDesc), size, value);
        else if (in(kAvail, 8)) q->avail_address = merge(q->avail_address, unsigned(offset - kAvail), size, value);
        else if (in(kUsed, 8)) q->used_address = merge(q->used_address, unsigned(offset - kUsed), size, value);
    }
}

}  // namespace ntc::vmm
