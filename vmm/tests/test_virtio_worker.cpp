#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "devices/virtio_pci.h"
#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

using namespace std::chrono_literals;

// A device whose requests take as long as the test says: each one waits for
// `release` before it completes, as a slow disk's flush would.
class GatedDevice : public VirtioDevice {
public:
    std::promise<void> started;
    std::shared_future<void> release;

    uint16_t device_id() const override { return 2; }
    uint64_t features() const override { return 0; }
    unsigned queue_count() const override { return 1; }
    std::vector<uint8_t> config() const override { return {}; }
    bool process(unsigned, Virtqueue& queue) override {
        bool used = false;
        while (auto chain = queue.pop()) {
            started.set_value();
            release.wait();
            queue.push_used(chain->head, 0);
            used = true;
        }
        return used;
    }
};

// The driver's side: features, one queue at FakeQueue's addresses, DRIVER_OK.
void bring_up(VirtioPciDevice& d) {
    d.bar_write(0, 0x14, 1, 1 | 2);
    d.bar_write(0, 0x08, 4, 1);
    d.bar_write(0, 0x0c, 4, 1);  // VERSION_1
    d.bar_write(0, 0x14, 1, 1 | 2 | 8);
    d.bar_write(0, 0x16, 2, 0);
    d.bar_write(0, 0x18, 2, 16);
    d.bar_write(0, 0x20, 8, FakeQueue::kDesc);
    d.bar_write(0, 0x28, 8, FakeQueue::kAvail);
    d.bar_write(0, 0x30, 8, FakeQueue::kUsed);
    d.bar_write(0, 0x1c, 2, 1);
    d.bar_write(0, 0x14, 1, 1 | 2 | 4 | 8);
}

struct Rig {
    FakeRam ram;
    std::mutex lock;  // the machine's device lock
    std::promise<void> release;
    GatedDevice* gated = nullptr;
    std::atomic<bool> line{false};
    std::shared_ptr<VirtioPciDevice> device;
    FakeQueue driver{ram, 16};  // only used to lay out descriptors and the avail ring

    Rig() {
        auto d = std::make_unique<GatedDevice>();
        d->release = release.get_future().share();
        gated = d.get();
        device = std::make_shared<VirtioPciDevice>(std::move(d), ram.memory, 0xe0000000, 16,
                                                   [this](bool on) { line = on; });
        bring_up(*device);
        device->start_worker(lock);
        driver.descriptor(0, 0x10000, 512, 0, 0);
        driver.offer(0);
    }
    void notify() {
        std::lock_guard guard(lock);
        device->bar_write(0, VirtioPciDevice::kNotifyOffset, 2, 0);
    }
    uint64_t read(uint64_t offset, unsigned size) {
        std::lock_guard guard(lock);
        return device->bar_read(0, offset, size);
    }
};

}  // namespace

TEST_CASE("a virtio worker serves a slow request while the vCPUs go on") {
    Rig rig;
    auto started = rig.gated->started.get_future();
    rig.notify();  // returns at once: the request is the worker's
    REQUIRE(started.wait_for(5s) == std::future_status::ready);

    // Another vCPU reads and writes the device's registers meanwhile; the
    // device lock is free while the request does its I/O.
    CHECK(rig.read(0x14, 1) == (1 | 2 | 4 | 8));
    CHECK(rig.read(0x12, 2) == 1);
    CHECK(rig.read(VirtioPciDevice::kIsrOffset, 1) == 0);
    CHECK(rig.driver.used_idx() == 0);
    CHECK_FALSE(rig.line);

    rig.release.set_value();
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!rig.line && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    CHECK(rig.line);
    CHECK(rig.driver.used_idx() == 1);
    CHECK(rig.read(VirtioPciDevice::kIsrOffset, 1) == 1);  // the queue interrupt, acknowledged by reading
    CHECK_FALSE(rig.line);
    rig.device->stop_worker();
}

TEST_CASE("a virtio device reset waits for the request in flight") {
    Rig rig;
    auto started = rig.gated->started.get_future();
    rig.notify();
    REQUIRE(started.wait_for(5s) == std::future_status::ready);

    std::atomic<bool> reset_done{false};
    std::thread vcpu([&] {
        std::lock_guard guard(rig.lock);
        rig.device->bar_write(0, 0x14, 1, 0);
        reset_done = true;
    });
    std::this_thread::sleep_for(50ms);
    // The driver's reset must not return while the device still writes
    // into the ring it is about to free.
    CHECK_FALSE(reset_done);
    rig.release.set_value();
    vcpu.join();
    CHECK(reset_done);
    CHECK(rig.read(0x14, 1) == 0);
    CHECK(rig.driver.used_idx() == 1);  // the request completed before the reset
    rig.device->stop_worker();
}
