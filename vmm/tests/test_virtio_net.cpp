#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <ntc/error.h>
#include <thread>

#include "cli.h"
#include "devices/pci.h"
#include "devices/tap.h"
#include "devices/virtio_net.h"
#include "devices/virtio_pci.h"
#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

constexpr uint16_t NEXT = 1, WRITE = 2;
constexpr MacAddress kMac = {0x02, 0x4e, 0x54, 0x01, 0x02, 0x03};

// A socketpair stands in for the TAP: one datagram is one frame.
struct Wire {
    int fds[2];
    Wire() { REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, fds) == 0); }
    ~Wire() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    int device() const { return fds[0]; }
    void send(const std::string& frame) {
        REQUIRE(::write(fds[1], frame.data(), frame.size()) == ssize_t(frame.size()));
    }
    std::string take() {
        char buf[70000];
        ssize_t n = ::read(fds[1], buf, sizeof(buf));
        return n < 0 ? std::string() : std::string(buf, size_t(n));
    }
};

std::string frame(size_t size, char fill) { return std::string(size, fill); }

// A receive buffer of `len` bytes at `addr`, as descriptor `index`.
void post_rx(FakeQueue& q, uint16_t index, uint64_t addr, uint32_t len) {
    q.descriptor(index, addr, len, WRITE, 0);
    q.offer(index);
}

std::string guest_bytes(FakeRam& ram, uint64_t addr, size_t len) {
    return std::string(reinterpret_cast<char*>(&ram.bytes[addr]), len);
}

}  // namespace

TEST_CASE("virtio-net transmits a frame split over descriptors, without its header") {
    Wire wire;
    FakeRam ram;
    FakeQueue tx(ram, 16);
    VirtioNet net(wire.device(), kMac);
    std::memset(&ram.bytes[0x10000], 0, VirtioNet::kHeaderSize);
    std::string f = frame(60, 'a') + frame(40, 'b');
    std::memcpy(&ram.bytes[0x10000 + VirtioNet::kHeaderSize], f.data(), 20);  // header + start in one
    std::memcpy(&ram.bytes[0x11000], f.data() + 20, f.size() - 20);
    tx.descriptor(0, 0x10000, uint32_t(VirtioNet::kHeaderSize + 20), NEXT, 1);
    tx.descriptor(1, 0x11000, uint32_t(f.size() - 20), 0, 0);
    tx.offer(0);
    CHECK(net.process(VirtioNet::kTxQueue, tx.queue));
    CHECK(wire.take() == f);
    CHECK(tx.used_idx() == 1);
    CHECK(tx.used(0) == std::pair<uint32_t, uint32_t>{0, 0});
    CHECK_FALSE(net.process(VirtioNet::kTxQueue, tx.queue));  // nothing new
}

TEST_CASE("virtio-net receives frames into posted buffers, waiting for buffers when there are none") {
    Wire wire;
    FakeRam ram;
    FakeQueue rx(ram, 16);
    VirtioNet net(wire.device(), kMac);
    CHECK_FALSE(net.process(VirtioNet::kRxQueue, rx.queue));  // nothing on the wire

    wire.send(frame(64, 'x'));
    wire.send(frame(1514, 'y'));
    std::memset(&ram.bytes[0x10000], 0xee, 2048);
    post_rx(rx, 0, 0x10000, 1526);
    CHECK(net.process(VirtioNet::kRxQueue, rx.queue));
    REQUIRE(rx.used_idx() == 1);
    CHECK(rx.used(0) == std::pair<uint32_t, uint32_t>{0, uint32_t(VirtioNet::kHeaderSize + 64)});
    std::string header = guest_bytes(ram, 0x10000, VirtioNet::kHeaderSize);
    CHECK(header == std::string("\0\0\0\0\0\0\0\0\0\0\1\0", 12));  // num_buffers = 1
    CHECK(guest_bytes(ram, 0x10000 + 12, 64) == frame(64, 'x'));

    // The second frame waits in the device until a buffer comes; this one
    // is split, header in its own descriptor.
    rx.descriptor(1, 0x12000, 12, NEXT | WRITE, 2);
    rx.descriptor(2, 0x13000, 1514, WRITE, 0);
    rx.offer(1);
    CHECK(net.process(VirtioNet::kRxQueue, rx.queue));
    REQUIRE(rx.used_idx() == 2);
    CHECK(rx.used(1) == std::pair<uint32_t, uint32_t>{1, 1526});
    CHECK(guest_bytes(ram, 0x13000, 1514) == frame(1514, 'y'));
    CHECK_FALSE(net.process(VirtioNet::kRxQueue, rx.queue));
}

TEST_CASE("virtio-net drops a frame larger than the buffer and returns the buffer empty") {
    Wire wire;
    FakeRam ram;
    FakeQueue rx(ram, 16);
    VirtioNet net(wire.device(), kMac);
    wire.send(frame(200, 'l'));
    wire.send(frame(50, 's'));
    post_rx(rx, 0, 0x10000, 100);
    post_rx(rx, 1, 0x11000, 100);
    CHECK(net.process(VirtioNet::kRxQueue, rx.queue));
    REQUIRE(rx.used_idx() == 2);
    CHECK(rx.used(0).second == 0);
    CHECK(rx.used(1).second == 12 + 50);
    CHECK(guest_bytes(ram, 0x11000 + 12, 50) == frame(50, 's'));
}

TEST_CASE("virtio-net: malformed chains are guest errors") {
    Wire wire;
    FakeRam ram;
    VirtioNet net(wire.device(), kMac);
    SUBCASE("transmit buffer the device could write") {
        FakeQueue tx(ram, 16);
        tx.descriptor(0, 0x10000, 100, WRITE, 0);
        tx.offer(0);
        CHECK_THROWS_AS(net.process(VirtioNet::kTxQueue, tx.queue), GuestError);
    }
    SUBCASE("transmit buffer shorter than the header") {
        FakeQueue tx(ram, 16);
        tx.descriptor(0, 0x10000, 11, 0, 0);
        tx.offer(0);
        CHECK_THROWS_AS(net.process(VirtioNet::kTxQueue, tx.queue), GuestError);
    }
    SUBCASE("transmit buffer outside RAM") {
        FakeQueue tx(ram, 16);
        tx.descriptor(0, ram.bytes.size() - 8, 100, 0, 0);
        tx.offer(0);
        CHECK_THROWS_AS(net.process(VirtioNet::kTxQueue, tx.queue), GuestError);
    }
    SUBCASE("receive buffer the device could only read") {
        FakeQueue rx(ram, 16);
        wire.send(frame(60, 'r'));
        rx.descriptor(0, 0x10000, 1526, 0, 0);
        rx.offer(0);
        CHECK_THROWS_AS(net.process(VirtioNet::kRxQueue, rx.queue), GuestError);
    }
    SUBCASE("receive buffer shorter than the header") {
        FakeQueue rx(ram, 16);
        wire.send(frame(60, 'r'));
        post_rx(rx, 0, 0x10000, 8);
        CHECK_THROWS_AS(net.process(VirtioNet::kRxQueue, rx.queue), GuestError);
    }
    SUBCASE("receive chain that loops") {
        FakeQueue rx(ram, 4);
        wire.send(frame(60, 'r'));
        rx.descriptor(0, 0x10000, 100, NEXT | WRITE, 1);
        rx.descriptor(1, 0x11000, 100, NEXT | WRITE, 0);
        rx.offer(0);
        CHECK_THROWS_AS(net.process(VirtioNet::kRxQueue, rx.queue), GuestError);
    }
}

TEST_CASE("virtio-net on PCI: device id, class, features, MAC and link status in config space") {
    Wire wire;
    FakeRam ram;
    RecordingVm vm;
    PciBus bus;
    auto device = std::make_shared<VirtioPciDevice>(
        std::make_unique<VirtioNet>(wire.device(), kMac), ram.memory, 0xe0000000, 16, [](bool) {}, vm);
    CHECK(bus.add(device) == 1);
    CHECK(device->config().read(0x00, 4) == 0x10411af4u);
    CHECK((device->config().read(0x08, 4) >> 8) == 0x020000u);
    CHECK(device->bar_read(0, 0x12, 2) == 2);  // num_queues
    device->bar_write(0, 0x00, 4, 0);
    uint32_t features = uint32_t(device->bar_read(0, 0x04, 4));
    CHECK((features & VirtioNet::kFeatureMac));
    CHECK((features & VirtioNet::kFeatureStatus));
    for (unsigned i = 0; i < 6; i++) CHECK(device->bar_read(0, VirtioPciDevice::kDeviceConfigOffset + i, 1) == kMac[i]);
    CHECK(device->bar_read(0, VirtioPciDevice::kDeviceConfigOffset + 6, 2) == VirtioNet::kStatusLinkUp);
}

TEST_CASE("virtio-net input thread delivers frames, and rests while the guest has no buffers") {
    Wire wire;
    FakeRam ram;
    FakeQueue rx(ram, 16);
    VirtioNet net(wire.device(), kMac);
    std::mutex lock;  // the VMM's device lock
    std::atomic<int> deliveries{0};
    net.start_input([&] {
        std::lock_guard guard(lock);
        deliveries++;
        net.process(VirtioNet::kRxQueue, rx.queue);
    });
    auto wait_for = [](auto done) {
        for (int i = 0; i < 500 && !done(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return done();
    };
    {
        std::lock_guard guard(lock);
        post_rx(rx, 0, 0x10000, 1526);
    }
    wire.send(frame(80, 'p'));
    CHECK(wait_for([&] { return rx.used_idx() == 1; }));

    // No buffer: one delivery attempt, then the thread stops polling the wire.
    int before = deliveries;
    wire.send(frame(90, 'q'));
    CHECK(wait_for([&] { return deliveries > before; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(deliveries == before + 1);

    // The driver posts a buffer and notifies: the frame goes in, and the
    // thread watches the wire again.
    {
        std::lock_guard guard(lock);
        post_rx(rx, 1, 0x11000, 1526);
        net.process(VirtioNet::kRxQueue, rx.queue);
        post_rx(rx, 2, 0x12000, 1526);
    }
    CHECK(rx.used_idx() == 2);
    CHECK(guest_bytes(ram, 0x11000 + 12, 90) == frame(90, 'q'));
    wire.send(frame(70, 'r'));
    CHECK(wait_for([&] { return rx.used_idx() == 3; }));
    net.stop_input();
}

TEST_CASE("MAC addresses and --net") {
    CHECK(parse_mac("02:4e:54:0a:Bb:ff") == MacAddress{0x02, 0x4e, 0x54, 0x0a, 0xbb, 0xff});
    CHECK(format_mac(kMac) == "02:4e:54:01:02:03");
    CHECK_THROWS_AS(parse_mac("02:4e:54:0a:bb"), ntc::Error);
    CHECK_THROWS_AS(parse_mac("02-4e-54-0a-bb-ff"), ntc::Error);
    CHECK_THROWS_AS(parse_mac("02:4e:54:0a:bb:fg"), ntc::Error);
    CHECK_THROWS_AS(parse_mac("01:00:5e:00:00:01"), ntc::Error);  // multicast
    CHECK_THROWS_AS(parse_mac("00:00:00:00:00:00"), ntc::Error);

    MacAddress a = mac_for_id("6a1c1e0e-34a5-4d5b-9bd2-1a2b3c4d5e6f");
    CHECK(a == mac_for_id("6a1c1e0e-34a5-4d5b-9bd2-1a2b3c4d5e6f"));
    CHECK(a != mac_for_id("6a1c1e0e-34a5-4d5b-9bd2-1a2b3c4d5e70"));
    CHECK(a[0] == 0x02);  // locally administered, unicast

    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "ntc-vmm");
        return parse_command_line(int(args.size()), args.data());
    };
    auto run = std::get<RunCommand>(parse({"run", "d1.img", "--net", "tap:ntc0"}));
    REQUIRE(run.net);
    CHECK(run.net->tap == "ntc0");
    CHECK_FALSE(run.net->mac);
    auto resume = std::get<ResumeCommand>(parse({"resume", "d2.img", "--net", "tap:t1", "--mac", "02:00:00:00:00:01"}));
    REQUIRE(resume.net);
    CHECK(resume.net->tap == "t1");
    CHECK(resume.net->mac == MacAddress{2, 0, 0, 0, 0, 1});
    CHECK_FALSE(std::get<RunCommand>(parse({"run", "d1.img"})).net);
    CHECK_THROWS_AS(parse({"run", "d1.img", "--net", "user"}), ntc::Error);
    CHECK_THROWS_AS(parse({"run", "d1.img", "--net", "tap:"}), ntc::Error);
    CHECK(std::holds_alternative<ExitNow>(parse({"run", "d1.img", "--mac", "02:00:00:00:00:01"})));
}

TEST_CASE("a missing TAP interface is refused with what to do") {
    auto message = [](const std::string& name) {
        try {
            open_tap(name);
        } catch (const ntc::Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    std::string missing = message("ntc-no-such0");
    CHECK(missing.find("does not exist") != std::string::npos);
    CHECK(missing.find("ip tuntap add dev ntc-no-such0 mode tap") != std::string::npos);
    CHECK(message("a-name-longer-than-15").find("1 to 15 characters") != std::string::npos);
    CHECK(message("").find("1 to 15 characters") != std::string::npos);
}
