#include "devices/virtio_pci.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "error.h"
#include "layout.h"

namespace ntcvmm {

namespace {

constexpr uint16_t kNoVector = 0xffff;
constexpr uint64_t kFeatureVersion1 = 1ull << 32;

uint32_t pci_class(uint16_t virtio_device_id) {
    switch (virtio_device_id) {
    case 1: return 0x020000;  // Ethernet controller
    case 2: return 0x018000;  // mass storage, other
    default: return 0xff0000;
    }
}

enum CapType : uint8_t { kCommonCfg = 1, kNotifyCfg = 2, kIsrCfg = 3, kDeviceCfg = 4 };

std::vector<uint8_t> virtio_capability(CapType type, uint32_t offset, uint32_t length,
                                       bool with_multiplier) {
    std::vector<uint8_t> cap(with_multiplier ? 20 : 16, 0);
    cap[0] = 0x09;  // vendor-specific
    cap[2] = uint8_t(cap.size());
    cap[3] = type;
    cap[4] = 0;  // BAR 0
    std::memcpy(&cap[8], &offset, 4);
    std::memcpy(&cap[12], &length, 4);
    if (with_multiplier) std::memcpy(&cap[16], &VirtioPciDevice::kNotifyMultiplier, 4);
    return cap;
}

uint64_t bytes_of(const std::vector<uint8_t>& data, uint64_t offset, unsigned size) {
    uint64_t value = 0;
    for (unsigned i = 0; i < size && offset + i < data.size(); i++) value |= uint64_t(data[offset + i]) << (8 * i);
    return value;
}

// Replaces bytes [lo, lo + size) of a 64-bit register with the written value.
uint64_t merge(uint64_t reg, unsigned lo, unsigned size, uint64_t value) {
    uint64_t mask = size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1);
    return (reg & ~(mask << (8 * lo))) | ((value & mask) << (8 * lo));
}

}  // namespace

VirtioPciDevice::VirtioPciDevice(std::unique_ptr<VirtioDevice> device, const GuestMemory& memory,
                                 uint32_t bar_address, uint8_t irq, InterruptLine interrupt)
    : device_(std::move(device)),
      config_(layout::kVirtioVendor, uint16_t(layout::kVirtioPciDeviceBase + device_->device_id()),
              pci_class(device_->device_id()), 1),
      interrupt_(std::move(interrupt)) {
    config_.set(0x2c, 2, layout::kVirtioVendor);  // subsystem vendor
    config_.set(0x2e, 2, layout::kVirtioPciDeviceBase + device_->device_id());
    config_.add_memory_bar(0, bar_address, kBarSize);
    config_.set_interrupt(irq, 1);
    config_.add_capability(virtio_capability(kCommonCfg, kCommonOffset, 0x38, false));
    config_.add_capability(virtio_capability(kNotifyCfg, kNotifyOffset, 0x1000, true));
    config_.add_capability(virtio_capability(kIsrCfg, kIsrOffset, 1, false));
    config_.add_capability(virtio_capability(kDeviceCfg, kDeviceConfigOffset, 0x1000, false));
    for (unsigned i = 0; i < device_->queue_count(); i++) queues_.emplace_back(memory);
}

VirtioPciDevice::~VirtioPciDevice() { stop_worker(); }

void VirtioPciDevice::start_worker(std::mutex& lock) {
    lock_ = &lock;
    worker_ = std::thread([this] { work_loop(); });
}

void VirtioPciDevice::stop_worker() {
    if (!worker_.joinable()) return;
    {
        std::lock_guard guard(*lock_);
        stopping_ = true;
    }
    work_ready_.notify_all();
    worker_.join();
}

void VirtioPciDevice::work_loop() {
    std::unique_lock lock(*lock_);
    for (;;) {
        work_ready_.wait(lock, [this] { return stopping_ || pending_queues_; });
        if (stopping_) return;
        unsigned queues = std::exchange(pending_queues_, 0u);
        if (!(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) continue;
        busy_ = true;
        lock.unlock();
        std::string error;
        bool used = false;
        try {
            used = serve(queues);
        } catch (const std::exception& e) {  // GuestError, or the host out of memory
            error = e.what();
        }
        lock.lock();
        busy_ = false;
        idle_.notify_all();
        if (!error.empty()) {
            fail(error.c_str());
        } else if (used) {
            isr_ |= 1;
            update_interrupt();
        }
    }
}

// Serves each queue whose bit is set; throws GuestError.
bool VirtioPciDevice::serve(unsigned queues) {
    bool used = false;
    for (unsigned q = 0; q < queues_.size(); q++)
        if (queues & (1u << q)) used |= device_->process(q, queues_[q]);
    return used;
}

Virtqueue* VirtioPciDevice::selected_queue() {
    return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

void VirtioPciDevice::reset() {
    if (worker_.joinable()) {
        // The caller holds *lock_; the wait lets the worker complete.
        idle_.wait(*lock_, [this] { return !busy_; });
        pending_queues_ = 0;
    }
    for (auto& q : queues_) q.reset();
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    queue_select_ = 0;
    status_ = 0;
    isr_ = 0;
    update_interrupt();
}

void VirtioPciDevice::fail(const char* why) {
    std::fprintf(stderr, "ntc-vmm: virtio device %u: %s; device needs reset\n", device_->device_id(), why);
    status_ |= kStatusNeedsReset;
    isr_ |= 2;  // configuration change
    update_interrupt();
}

void VirtioPciDevice::update_interrupt() {
    if (interrupt_) interrupt_(isr_ != 0);
}

uint64_t VirtioPciDevice::bar_read(unsigned bar, uint64_t offset, unsigned size) {
    if (bar != 0) return 0;
    if (offset < kIsrOffset) return common_read(offset, size);
    if (offset == kIsrOffset) {
        uint8_t value = isr_;
        isr_ = 0;  // reading acknowledges
        update_interrupt();
        return value;
    }
    if (offset >= kDeviceConfigOffset && offset < kNotifyOffset)
        return bytes_of(device_->config(), offset - kDeviceConfigOffset, size);
    return 0;
}

void VirtioPciDevice::bar_write(unsigned bar, uint64_t offset, unsigned size, uint64_t value) {
    if (bar != 0) return;
    if (offset < kIsrOffset) return common_write(offset, size, value);
    if (offset >= kNotifyOffset && offset < kNotifyOffset + 0x1000)
        return notify(uint16_t((offset - kNotifyOffset) / kNotifyMultiplier));
}

uint64_t VirtioPciDevice::common_read(uint64_t offset, unsigned size) {
    Virtqueue* q = selected_queue();
    auto field = [&](uint64_t base, unsigned width, uint64_t reg) -> std::optional<uint64_t> {
        if (offset < base || offset + size > base + width) return std::nullopt;
        return (reg >> (8 * (offset - base))) & (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1));
    };
    uint64_t features = device_->features() | kFeatureVersion1;
    const std::pair<std::pair<uint64_t, unsigned>, uint64_t> registers[] = {
        {{0x00, 4}, device_feature_select_},
        {{0x04, 4}, device_feature_select_ < 2 ? uint32_t(features >> (32 * device_feature_select_)) : 0},
        {{0x08, 4}, driver_feature_select_},
        {{0x0c, 4}, driver_feature_select_ < 2 ? uint32_t(driver_features_ >> (32 * driver_feature_select_)) : 0},
        {{0x10, 2}, kNoVector},
        {{0x12, 2}, queues_.size()},
        {{0x14, 1}, status_},
        {{0x15, 1}, config_generation_},
        {{0x16, 2}, queue_select_},
        {{0x18, 2}, q ? uint64_t(q->size) : 0},
        {{0x1a, 2}, kNoVector},
        {{0x1c, 2}, q ? uint64_t(q->ready()) : 0},
        {{0x1e, 2}, queue_select_},  // notify offset = queue index
        {{0x20, 8}, q ? q->desc_address : 0},
        {{0x28, 8}, q ? q->avail_address : 0},
        {{0x30, 8}, q ? q->used_address : 0},
    };
    for (const auto& [where, reg] : registers)
        if (auto v = field(where.first, where.second, reg)) return *v;
    return 0;
}

void VirtioPciDevice::common_write(uint64_t offset, unsigned size, uint64_t value) {
    Virtqueue* q = selected_queue();
    auto in = [&](uint64_t base, unsigned width) { return offset >= base && offset + size <= base + width; };
    if (in(0x00, 4)) device_feature_select_ = uint32_t(value);
    else if (in(0x08, 4)) driver_feature_select_ = uint32_t(value);
    else if (in(0x0c, 4)) {
        if (driver_feature_select_ < 2 && !(status_ & kStatusFeaturesOk))
            driver_features_ = merge(driver_features_, 4 * driver_feature_select_, 4, value);
    } else if (in(0x14, 1)) {
        uint8_t status = uint8_t(value);
        if (status == 0) return reset();
        if ((status & kStatusFeaturesOk) && !(status_ & kStatusFeaturesOk)) {
            uint64_t offered = device_->features() | kFeatureVersion1;
            // Without VERSION_1 or with features we never offered, refuse.
            if ((driver_features_ & ~offered) || !(driver_features_ & kFeatureVersion1))
                status &= ~kStatusFeaturesOk;
        }
        status_ = uint8_t(status | (status_ & kStatusNeedsReset));
    } else if (in(0x16, 2)) queue_select_ = uint16_t(value);
    else if (q && !q->ready()) {
        // Queue layout can change only while the queue is disabled.
        if (in(0x18, 2)) q->size = uint16_t(value);
        else if (in(0x1c, 2) && value == 1) {
            try {
                q->enable();
            } catch (const GuestError& e) {
                fail(e.what());
            }
        } else if (in(0x20, 8)) q->desc_address = merge(q->desc_address, unsigned(offset - 0x20), size, value);
        else if (in(0x28, 8)) q->avail_address = merge(q->avail_address, unsigned(offset - 0x28), size, value);
        else if (in(0x30, 8)) q->used_address = merge(q->used_address, unsigned(offset - 0x30), size, value);
    }
}

void VirtioPciDevice::notify(uint16_t queue) {
    if (queue >= queues_.size() || !(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) return;
    if (worker_.joinable()) {
        pending_queues_ |= 1u << queue;
        work_ready_.notify_one();
        return;
    }
    try {
        if (serve(1u << queue)) {
            isr_ |= 1;
            update_interrupt();
        }
    } catch (const GuestError& e) {
        fail(e.what());
    }
}

}  // namespace ntcvmm
