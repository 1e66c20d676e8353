#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio_blk.h"
#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

constexpr uint16_t NEXT = 1, WRITE = 2;

struct Disk {
    int fd = ::memfd_create("disk", 0);
    Disk() { REQUIRE(::ftruncate(fd, 1 << 20) == 0); }
    ~Disk() { ::close(fd); }
};

// Header at 0x10000, data at 0x11000, status at 0x12000.
void request(FakeQueue& q, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    q.ram.put<uint32_t>(0x10000, type);
    q.ram.put<uint32_t>(0x10004, 0);
    q.ram.put<uint64_t>(0x10008, sector);
    q.ram.put<uint8_t>(0x12000, 0xff);
    q.descriptor(0, 0x10000, 16, NEXT, 1);
    q.descriptor(1, 0x11000, data_len, uint16_t(NEXT | (data_writable ? WRITE : 0)), 2);
    q.descriptor(2, 0x12000, 1, WRITE, 0);
    q.offer(0);
}

}  // namespace

TEST_CASE("virtio-blk writes, reads back, flushes, and answers get-id") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "serial-1", 1);
    CHECK((blk.features() & VirtioBlock::kFeatureFlush));

    std::memset(&ram.bytes[0x11000], 0xab, 1024);
    request(q, 1, 8, 1024, false);
    CHECK(blk.process(0, q.queue));
    CHECK(ram.get<uint8_t>(0x12000) == 0);
    uint8_t on_disk[1024];
    REQUIRE(::pread(disk.fd, on_disk, 1024, 8 * 512) == 1024);
    CHECK(on_disk[0] == 0xab);
    CHECK(on_disk[1023] == 0xab);

    std::memset(&ram.bytes[0x11000], 0, 1024);
    request(q, 0, 8, 1024, true);
    CHECK(blk.process(0, q.queue));
    CHECK(ram.get<uint8_t>(0x12000) == 0);
    CHECK(ram.bytes[0x11000 + 1023] == 0xab);
    CHECK(q.used(1).second == 1025);

    request(q, 4, 0, 0, false);
    blk.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 0);

    request(q, 8, 0, 20, true);
    blk.process(0, q.queue);
    CHECK(std::string(reinterpret_cast<char*>(&ram.bytes[0x11000])) == "serial-1");

    request(q, 99, 0, 0, false);
    blk.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 2);  // unsupported
}

TEST_CASE("virtio-blk refuses out-of-range and misaligned requests and writes to a read-only disk") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    request(q, 0, 2047, 1024, true);  // runs past the end
    blk.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
    request(q, 0, ~0ull / 256, 512, true);  // sector * 512 would overflow
    blk.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
    request(q, 0, 0, 100, true);  // not whole sectors
    blk.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 1);

    VirtioBlock ro(disk.fd, 1 << 20, true, "x", 1);
    CHECK((ro.features() & VirtioBlock::kFeatureReadOnly));
    request(q, 1, 0, 512, false);
    ro.process(0, q.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
}

TEST_CASE("virtio-blk requests without status byte are guest errors") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    q.descriptor(0, 0x10000, 16, 0, 0);
    q.offer(0);
    CHECK_THROWS_AS(blk.process(0, q.queue), GuestError);
    // A zero-length last writable descriptor: the status goes in the one before.
    FakeQueue q2(ram, 16);
    q2.ram.put<uint32_t>(0x10000, 4);
    q2.descriptor(0, 0x10000, 16, NEXT, 1);
    q2.descriptor(1, 0x12000, 1, NEXT | WRITE, 2);
    q2.descriptor(2, 0x13000, 0, WRITE, 0);
    q2.offer(0);
    ram.put<uint8_t>(0x12000, 0xff);
    blk.process(0, q2.queue);
    CHECK(ram.get<uint8_t>(0x12000) == 0);
}

TEST_CASE("virtio-blk offers a queue each for the guest's vCPUs, up to its limit") {
    Disk disk;
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 4);
    CHECK(blk.queue_count() == 4);
    CHECK((blk.features() & VirtioBlock::kFeatureMultiQueue));
    auto config = blk.config();
    REQUIRE(config.size() >= offsetof(virtio_blk_config, num_queues) + 2);
    uint16_t queues;
    std::memcpy(&queues, &config[offsetof(virtio_blk_config, num_queues)], 2);
    CHECK(queues == 4);
    CHECK_THROWS_AS(VirtioBlock(disk.fd, 1 << 20, false, "x", 0), ntc::Error);
    CHECK_THROWS_AS(VirtioBlock(disk.fd, 1 << 20, false, "x", VirtioBlock::kMaxQueues + 1), ntc::Error);
}
