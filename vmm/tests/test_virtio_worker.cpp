#include <doctest/doctest.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

#include "devices/acpi_pm.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/virtio_pci.h"
#include "fake_guest.h"
#include "io_bus.h"
#include "layout.h"
#include "machine.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

using namespace std::chrono_literals;
using Common = virtio_pci_common_cfg;

constexpr MsiMessage kConfigMessage{0xfee00000, 0x4021};
constexpr MsiMessage kQueueMessage{0xfee01000, 0x4031};

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

// Polls `done` until it holds, at most 5 s; once true it is not asked
// again (reading an irqfd consumes it).
template <typename Done>
bool wait_until(Done done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
}

// One gated device in slot 1 of the machine's buses as map_devices puts
// them, the VMM's port lock, and KVM on paper.  Ports are used as a port
// exit does, under the lock; MMIO as an MMIO exit does, without it.
struct Rig {
    FakeRam ram;
    RecordingVm vm;
    std::mutex io_lock;
    std::promise<void> release;
    bool released = false;
    GatedDevice* gated = nullptr;
    std::atomic<bool> line{false};
    std::shared_ptr<VirtioPciDevice> device;
    Serial serial{[](uint8_t) {}, [](bool) {}};
    AcpiPm pm{[](GuestRequest, const char*) {}, [](bool) {}};
    PciBus pci;
    IoBus ports, mmio;
    uint64_t bar = layout::kPciMmioBase;
    FakeQueue driver{ram, 16};  // lays out descriptors and the avail ring

    explicit Rig(bool msix) {
        auto d = std::make_unique<GatedDevice>();
        d->release = release.get_future().share();
        gated = d.get();
        device = std::make_shared<VirtioPciDevice>(
            std::move(d), ram.memory, uint32_t(bar), 16, [this](bool on) { line = on; }, vm);
        pci.add(device);
        map_devices(ports, mmio, serial, pci, pm);
        config_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
        if (msix) enable_msix();
        set_up_queue(msix);
        device->start_worker();
        driver.descriptor(0, 0x10000, 512, 0, 0);
        driver.offer(0);
    }
    ~Rig() {
        finish_requests();
        device->stop_worker();
    }

    void finish_requests() {
        if (!std::exchange(released, true)) release.set_value();
    }
    void config_write(uint8_t offset, unsigned size, uint32_t value) {
        std::lock_guard guard(io_lock);
        ports.write(layout::kPciConfigAddress, 4, 0x80000000u | (1u << 11) | (offset & 0xfc));
        ports.write(uint16_t(layout::kPciConfigData + (offset & 3)), size, value);
    }
    uint64_t read(uint64_t offset, unsigned size) { return mmio.read(bar + offset, size); }
    void write(uint64_t offset, unsigned size, uint64_t value) { mmio.write(bar + offset, size, value); }

    // As Linux's msix_capability_init and request_irq(): vector 0 for
    // configuration changes, 1 for the queue.
    void enable_msix() {
        uint8_t cap = 0;
        for (cap = uint8_t(device->config().read(PCI_CAPABILITY_LIST, 1)); cap;
             cap = uint8_t(device->config().read(cap + 1, 1)))
            if (device->config().read(cap, 1) == PCI_CAP_ID_MSIX) break;
        REQUIRE(cap);
        config_write(uint8_t(cap + PCI_MSIX_FLAGS), 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
        for (auto [vector, message] : {std::pair{0u, kConfigMessage}, {1u, kQueueMessage}}) {
            uint64_t entry = VirtioPciDevice::kMsixTableOffset + vector * PCI_MSIX_ENTRY_SIZE;
            write(entry + PCI_MSIX_ENTRY_LOWER_ADDR, 4, uint32_t(message.address));
            write(entry + PCI_MSIX_ENTRY_UPPER_ADDR, 4, uint32_t(message.address >> 32));
            write(entry + PCI_MSIX_ENTRY_DATA, 4, message.data);
            write(entry + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
        }
        config_write(uint8_t(cap + PCI_MSIX_FLAGS), 2, PCI_MSIX_FLAGS_ENABLE);
    }

    // The driver's side up to DRIVER_OK: features, queue 0 at FakeQueue's
    // addresses, its vector.
    void set_up_queue(bool msix) {
        write(offsetof(Common, device_status), 1, 1 | 2);
        write(offsetof(Common, guest_feature_select), 4, 1);
        write(offsetof(Common, guest_feature), 4, 1);  // VERSION_1
        write(offsetof(Common, device_status), 1, 1 | 2 | 8);
        if (msix) write(offsetof(Common, msix_config), 2, 0);
        write(offsetof(Common, queue_select), 2, 0);
        write(offsetof(Common, queue_size), 2, 16);
        if (msix) write(offsetof(Common, queue_msix_vector), 2, 1);
        write(offsetof(Common, queue_desc_lo), 8, FakeQueue::kDesc);
        write(offsetof(Common, queue_avail_lo), 8, FakeQueue::kAvail);
        write(offsetof(Common, queue_used_lo), 8, FakeQueue::kUsed);
        write(offsetof(Common, queue_enable), 2, 1);
        write(offsetof(Common, device_status), 1, 1 | 2 | 4 | 8);
    }

    uint32_t gsi_of(const MsiMessage& message) const {
        for (const auto& [gsi, routed] : vm.routes)
            if (routed == message) return gsi;
        FAIL("no GSI is routed to the message");
        return 0;
    }
};

}  // namespace

TEST_CASE("a notification through the queue's ioeventfd wakes the worker, which sends the queue's MSI-X message") {
    Rig rig(true);
    rig.finish_requests();
    // KVM was asked to signal the queue's eventfd on the driver's 16-bit
    // notify write, and to turn each vector's irqfd into its message.
    REQUIRE(rig.vm.ioeventfds.size() == 1);
    CHECK(rig.vm.ioeventfds[0].address == rig.bar + VirtioPciDevice::kNotifyOffset);
    CHECK(rig.vm.ioeventfds[0].length == 2);
    uint32_t queue_gsi = rig.gsi_of(kQueueMessage), config_gsi = rig.gsi_of(kConfigMessage);
    CHECK(queue_gsi != config_gsi);

    CHECK(rig.vm.guest_write(rig.bar + VirtioPciDevice::kNotifyOffset, 2));
    CHECK(wait_until([&] { return rig.driver.used_idx() == 1; }));
    CHECK(wait_until([&] { return rig.vm.injected(queue_gsi); }));
    CHECK_FALSE(rig.vm.injected(config_gsi));
    // MSI-X replaces INTx: the line stays low, the ISR's queue bit clear.
    CHECK_FALSE(rig.line);
    CHECK(rig.read(VirtioPciDevice::kIsrOffset, 1) == 0);
    // What a hang report (SIGQUIT) prints of the device.
    CHECK(rig.device->describe() ==
          "virtio device 2: status 0xf, ISR 0, MSI-X on; queue 0: available 1, taken 1, used 1, driver flags 0, "
          "vector 1");
}

TEST_CASE("the ioeventfds follow DRIVER_OK, the BAR's address and decoding, and a reset") {
    Rig rig(true);
    auto registered = [&] {
        std::vector<uint64_t> out;
        for (const auto& e : rig.vm.ioeventfds) out.push_back(e.address);
        return out;
    };
    uint64_t notify = VirtioPciDevice::kNotifyOffset;
    CHECK(registered() == std::vector<uint64_t>{rig.bar + notify});

    uint64_t moved = rig.bar + 0x100000;
    rig.config_write(PCI_BASE_ADDRESS_0, 4, uint32_t(moved));
    CHECK(registered() == std::vector<uint64_t>{moved + notify});
    CHECK_FALSE(rig.vm.guest_write(rig.bar + notify, 2));
    rig.bar = moved;
    rig.config_write(PCI_COMMAND, 2, 0);  // decoding off, as while the kernel sizes a BAR
    CHECK(registered().empty());
    rig.config_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    CHECK(registered() == std::vector<uint64_t>{moved + notify});

    rig.write(offsetof(Common, device_status), 1, 0);
    CHECK(registered().empty());
    rig.set_up_queue(true);
    CHECK(registered() == std::vector<uint64_t>{moved + notify});
    rig.write(offsetof(Common, device_status), 1, 0);
    // Up to FEATURES_OK with the queue enabled: not yet.
    rig.write(offsetof(Common, device_status), 1, 1 | 2);
    rig.write(offsetof(Common, guest_feature), 4, 1);
    rig.write(offsetof(Common, device_status), 1, 1 | 2 | 8);
    rig.write(offsetof(Common, queue_desc_lo), 8, FakeQueue::kDesc);
    rig.write(offsetof(Common, queue_avail_lo), 8, FakeQueue::kAvail);
    rig.write(offsetof(Common, queue_used_lo), 8, FakeQueue::kUsed);
    rig.write(offsetof(Common, queue_enable), 2, 1);
    CHECK(registered().empty());
    rig.write(offsetof(Common, device_status), 1, 1 | 2 | 4 | 8);
    CHECK(registered() == std::vector<uint64_t>{moved + notify});
}

TEST_CASE("a notify address KVM refuses (two BARs on one another) leaves the queue on notify exits") {
    Rig rig(true);
    rig.finish_requests();
    rig.write(offsetof(Common, device_status), 1, 0);
    REQUIRE(rig.vm.ioeventfds.empty());
    int other_device = ::eventfd(0, EFD_CLOEXEC);  // another device's queue, at the same address
    rig.vm.add_ioeventfd(rig.bar + VirtioPciDevice::kNotifyOffset, 2, other_device);
    rig.set_up_queue(true);  // must not throw
    CHECK(rig.vm.ioeventfds.size() == 1);
    rig.write(VirtioPciDevice::kNotifyOffset, 2, 0);  // the exit KVM leaves it
    CHECK(wait_until([&] { return rig.driver.used_idx() == 1; }));
    CHECK(wait_until([&] { return rig.vm.injected(rig.gsi_of(kQueueMessage)); }));
    ::close(other_device);
}

TEST_CASE("a device worker: a request completes while another vCPU's port accesses go on") {
    Rig rig(true);
    auto started = rig.gated->started.get_future();
    // vCPU 0's notify write exits (4 bytes: no ioeventfd matches it) and
    // returns at once: the request is the worker's.
    std::thread vcpu0([&] { rig.write(VirtioPciDevice::kNotifyOffset, 4, 0); });
    vcpu0.join();
    REQUIRE(started.wait_for(5s) == std::future_status::ready);
    uint32_t queue_gsi = rig.gsi_of(kQueueMessage);

    // vCPU 1 is in a port exit, holding the VMM's port lock, all along: its
    // port accesses go on while the request is in flight, and the request
    // completes and is signalled without that lock.
    std::vector<uint64_t> scratch;
    bool completed = false, injected = false;
    std::thread vcpu1([&] {
        std::lock_guard guard(rig.io_lock);
        for (uint8_t b : {0x5a, 0xa5}) {
            rig.ports.write(layout::kCom1 + 7, 1, b);
            scratch.push_back(rig.ports.read(layout::kCom1 + 7, 1));
        }
        rig.ports.write(layout::kPciConfigAddress, 4, 0x80000000u | (1u << 11));
        scratch.push_back(rig.ports.read(layout::kPciConfigData, 4));
        rig.finish_requests();
        completed = wait_until([&] { return rig.driver.used_idx() == 1; });
        injected = wait_until([&] { return rig.vm.injected(queue_gsi); });
    });
    // Meanwhile the device's registers answer another vCPU too.
    CHECK(rig.read(offsetof(Common, num_queues), 2) == 1);
    vcpu1.join();
    CHECK(scratch == std::vector<uint64_t>{0x5a, 0xa5, 0x10421af4});
    CHECK(completed);
    CHECK(injected);
}

TEST_CASE("without MSI-X, used buffers raise INTx and the ISR, which reading acknowledges") {
    Rig rig(false);
    auto started = rig.gated->started.get_future();
    CHECK(rig.read(offsetof(Common, msix_config), 2) == VIRTIO_MSI_NO_VECTOR);
    rig.device->notify(0);  // as virtio-net's input thread does for a frame
    REQUIRE(started.wait_for(5s) == std::future_status::ready);
    CHECK(rig.read(VirtioPciDevice::kIsrOffset, 1) == 0);
    CHECK_FALSE(rig.line);

    rig.finish_requests();
    CHECK(wait_until([&] { return rig.line.load(); }));
    CHECK(rig.driver.used_idx() == 1);
    CHECK(rig.vm.routes.empty());
    CHECK(rig.read(VirtioPciDevice::kIsrOffset, 1) == 1);  // the queue bit; reading acknowledges
    CHECK_FALSE(rig.line);
}

TEST_CASE("a device reset waits for the request in flight, and holds up no other vCPU meanwhile") {
    Rig rig(true);
    auto started = rig.gated->started.get_future();
    CHECK(rig.vm.guest_write(rig.bar + VirtioPciDevice::kNotifyOffset, 2));
    REQUIRE(started.wait_for(5s) == std::future_status::ready);

    std::atomic<bool> reset_done{false};
    std::thread vcpu([&] {
        rig.write(offsetof(Common, device_status), 1, 0);
        reset_done = true;
    });
    std::this_thread::sleep_for(50ms);
    // The driver's reset must not return while the device still writes
    // into the ring it is about to free...
    CHECK_FALSE(reset_done);
    // ...but ports and the device's registers answer meanwhile (asked from
    // threads of their own, so that a lock held across the wait fails the
    // test instead of hanging it).
    auto port = std::async(std::launch::async, [&] {
        std::lock_guard guard(rig.io_lock);
        return rig.ports.read(layout::kCom1 + 5, 1);
    });
    auto registers = std::async(std::launch::async, [&] { return rig.read(offsetof(Common, num_queues), 2); });
    bool port_answered = port.wait_for(2s) == std::future_status::ready;
    bool registers_answered = registers.wait_for(2s) == std::future_status::ready;
    rig.finish_requests();
    vcpu.join();
    CHECK(port_answered);
    CHECK(registers_answered);
    CHECK(port.get() == 0x60);  // LSR: transmitter empty and idle
    CHECK(registers.get() == 1);
    CHECK(reset_done);
    CHECK(rig.read(offsetof(Common, device_status), 1) == 0);
    CHECK(rig.driver.used_idx() == 1);  // the request completed before the reset
    CHECK(rig.vm.ioeventfds.empty());
}
