#pragma once
// virtio-net over a host file descriptor that carries one Ethernet frame per
// read or write (a TAP device; a socketpair in the tests).  Queue 0 receives,
// queue 1 transmits; no control queue, no offloads, no mergeable buffers:
// every frame is preceded in guest memory by the 12-byte virtio 1.x header,
// which transmit skips and receive fills with zeros (num_buffers = 1).
// Features: MAC (a fixed address, see mac_for_id) and STATUS (link up).
//
// Frames from the host arrive asynchronously: start_input() runs a thread that
// waits for the descriptor to become readable and then calls `deliver`, which
// notifies the receive queue (VirtioPciDevice::notify), so that reception
// runs in process(), in the device's worker, like every other queue operation.  While the guest has
// posted no receive buffers the thread stops watching the descriptor (the
// frames wait in the TAP's queue) until the driver's next receive
// notification finds buffers again.

// A member of struct virtio_net_ctrl_hdr is called `class`, a C++ keyword.
#pragma push_macro("class")
#define class class_
#include <linux/virtio_net.h>
#pragma pop_macro("class")

#include <array>
#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "devices/virtio_device.h"
#include "kvm.h"

namespace ntc::vmm {

using MacAddress = std::array<uint8_t, 6>;

// "52:54:00:12:34:56"; throws ntc::Error unless it is six hex bytes of a
// unicast, non-zero address.
MacAddress parse_mac(const std::string& text);
std::string format_mac(const MacAddress& mac);
// The default MAC of a machine: locally administered, unicast, 02:4e:54
// ("NT") followed by three bytes of a hash of `id` (the first disk's
// partition table UUID, which ntc-clone copies, so that the machine that
// takes a checkpoint and every machine that resumes it agree).
MacAddress mac_for_id(const std::string& id);

class VirtioNet : public VirtioDevice {
public:
    static constexpr uint64_t kFeatureMac = 1ull << VIRTIO_NET_F_MAC;
    static constexpr uint64_t kFeatureStatus = 1ull << VIRTIO_NET_F_STATUS;
    static constexpr unsigned kRxQueue = 0;
    static constexpr unsigned kTxQueue = 1;
    static constexpr size_t kHeaderSize = sizeof(virtio_net_hdr_v1);
    static constexpr size_t kMaxFrame = 65535;
    static constexpr uint16_t kStatusLinkUp = VIRTIO_NET_S_LINK_UP;

    // `fd` is borrowed and must be non-blocking.
    VirtioNet(int fd, MacAddress mac);
    ~VirtioNet() override;

    uint16_t device_id() const override { return VIRTIO_ID_NET; }
    uint64_t features() const override { return kFeatureMac | kFeatureStatus; }
    unsigned queue_count() const override { return 2; }
    std::vector<uint8_t> config() const override;
    std::string name() const override { return "virtio-net"; }
    bool process(unsigned index, Virtqueue& queue) override;

    void start_input(std::function<void()> deliver);
    void stop_input();  // joins the thread; before guest RAM goes away

private:
    bool receive(Virtqueue& queue);
    bool transmit(Virtqueue& queue);
    void input_loop();
    void wake();

    int fd_;
    MacAddress mac_;
    // One frame read from the descriptor that no receive buffer took yet.
    std::vector<uint8_t> frame_;
    size_t pending_ = 0;

    Fd wake_;  // eventfd: buffers are back, or stop
    std::function<void()> deliver_;
    std::thread input_;
    std::atomic<bool> stopping_{false};
    // A frame waits and the guest has not (yet) taken it: do not poll the fd.
    std::atomic<bool> blocked_{false};
};

}  // namespace ntc::vmm
