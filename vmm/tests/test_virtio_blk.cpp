#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

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

using namespace std::chrono_literals;

constexpr VirtioBlock::Io kBothWays[] = {VirtioBlock::Io::ring, VirtioBlock::Io::synchronous};
const char* name(VirtioBlock::Io io) { return io == VirtioBlock::Io::ring ? "io_uring" : "synchronous"; }

// Request `slot` has descriptors 3·slot to 3·slot + 2, its header at
// header(slot), data a page on, status byte two pages on; slot 0's header
// is at 0x10000.  Returns the chain's head.
uint64_t header(unsigned slot) { return 0x10000 + 0x4000ull * slot; }
uint64_t data(unsigned slot) { return header(slot) + 0x1000; }
uint64_t status(unsigned slot) { return header(slot) + 0x2000; }

uint16_t request(FakeQueue& q, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable,
                 unsigned slot = 0) {
    uint16_t head = uint16_t(3 * slot);
    q.ram.put<uint32_t>(header(slot), type);
    q.ram.put<uint32_t>(header(slot) + 4, 0);
    q.ram.put<uint64_t>(header(slot) + 8, sector);
    q.ram.put<uint8_t>(status(slot), 0xff);
    q.descriptor(head, header(slot), 16, NEXT, uint16_t(head + 1));
    q.descriptor(uint16_t(head + 1), data(slot), data_len, uint16_t(NEXT | (data_writable ? WRITE : 0)),
                 uint16_t(head + 2));
    q.descriptor(uint16_t(head + 2), status(slot), 1, WRITE, 0);
    q.offer(head);
    return head;
}

// Serves what `q` offers and completes what that left in flight, as the
// device's worker would: woken by the completion eventfd.
void serve(VirtioBlock& blk, FakeQueue& q) {
    blk.process(0, q.queue);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (q.used_idx() != q.avail_idx && std::chrono::steady_clock::now() < deadline) {
        pollfd fd{blk.completion_fd(), POLLIN, 0};
        REQUIRE(fd.fd >= 0);
        ::poll(&fd, 1, 100);
        blk.complete({&q.queue, 1});
    }
    REQUIRE(q.used_idx() == q.avail_idx);
}

// A FIFO the test plays the disk with: the device's fd both reads and
// writes it, so a read waits until a write (the device's or the test's)
// feeds it.
struct Fifo {
    std::string path = "/tmp/ntc-vmm-test-fifo-" + std::to_string(::getpid());
    int fd;
    Fifo() {
        ::unlink(path.c_str());
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        fd = ::open(path.c_str(), O_RDWR);
        REQUIRE(fd >= 0);
    }
    ~Fifo() {
        ::close(fd);
        ::unlink(path.c_str());
    }
};

}  // namespace

TEST_CASE("virtio-blk writes, reads back, flushes, and answers get-id, with io_uring and without") {
    for (auto io : kBothWays) {
        INFO(name(io));
        Disk disk;
        FakeRam ram;
        FakeQueue q(ram, 16);
        VirtioBlock blk(disk.fd, 1 << 20, false, "serial-1", io);
        REQUIRE(blk.uses_ring() == (io == VirtioBlock::Io::ring));
        CHECK((blk.features() & VirtioBlock::kFeatureFlush));

        std::memset(&ram.bytes[0x11000], 0xab, 1024);
        request(q, 1, 8, 1024, false);
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 0);
        uint8_t on_disk[1024];
        REQUIRE(::pread(disk.fd, on_disk, 1024, 8 * 512) == 1024);
        CHECK(on_disk[0] == 0xab);
        CHECK(on_disk[1023] == 0xab);

        std::memset(&ram.bytes[0x11000], 0, 1024);
        request(q, 0, 8, 1024, true);
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 0);
        CHECK(ram.bytes[0x11000 + 1023] == 0xab);
        CHECK(q.used(1).second == 1025);

        request(q, 4, 0, 0, false);
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 0);

        request(q, 8, 0, 20, true);
        serve(blk, q);
        CHECK(std::string(reinterpret_cast<char*>(&ram.bytes[0x11000])) == "serial-1");

        request(q, 99, 0, 0, false);
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 2);  // unsupported
    }
}

TEST_CASE("virtio-blk refuses out-of-range and misaligned requests and writes to a read-only disk") {
    for (auto io : kBothWays) {
        INFO(name(io));
        Disk disk;
        FakeRam ram;
        FakeQueue q(ram, 16);
        VirtioBlock blk(disk.fd, 1 << 20, false, "x", io);
        request(q, 0, 2047, 1024, true);  // runs past the end
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 1);
        request(q, 0, ~0ull / 256, 512, true);  // sector * 512 would overflow
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 1);
        request(q, 0, 0, 100, true);  // not whole sectors
        serve(blk, q);
        CHECK(ram.get<uint8_t>(0x12000) == 1);

        VirtioBlock ro(disk.fd, 1 << 20, true, "x", io);
        CHECK((ro.features() & VirtioBlock::kFeatureReadOnly));
        request(q, 1, 0, 512, false);
        serve(ro, q);
        CHECK(ram.get<uint8_t>(0x12000) == 1);
    }
}

TEST_CASE("virtio-blk requests without status byte are guest errors") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x");
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
    serve(blk, q2);
    CHECK(ram.get<uint8_t>(0x12000) == 0);
}

TEST_CASE("virtio-blk with io_uring: a read waits on the disk while the write after it completes") {
    // Played with a FIFO: the read can only finish with the bytes the
    // write puts in, so both are in flight at once, and the write's used
    // element comes first.
    Fifo fifo;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(fifo.fd, 1 << 20, false, "x");
    REQUIRE(blk.uses_ring());
    uint16_t read = request(q, 0, 0, 512, true, 0);
    std::memset(&ram.bytes[data(1)], 0xcd, 512);
    uint16_t write = request(q, 1, 0, 512, false, 1);
    serve(blk, q);
    CHECK(q.used(0) == std::pair<uint32_t, uint32_t>{write, 1});
    CHECK(q.used(1) == std::pair<uint32_t, uint32_t>{read, 513});
    CHECK(ram.get<uint8_t>(status(0)) == VIRTIO_BLK_S_OK);
    CHECK(ram.get<uint8_t>(status(1)) == VIRTIO_BLK_S_OK);
    CHECK(ram.bytes[data(0)] == 0xcd);
    CHECK(ram.bytes[data(0) + 511] == 0xcd);
}

TEST_CASE("virtio-blk with io_uring: a flush completes after the writes before it, which are on the disk") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 64);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x");
    for (unsigned i = 0; i < 8; i++) {
        std::memset(&ram.bytes[data(i)], 0x10 + i, 4096);
        request(q, 1, 8 * i, 4096, false, i);
    }
    uint16_t flush = request(q, 4, 0, 0, false, 8);
    serve(blk, q);
    CHECK(q.used(8) == std::pair<uint32_t, uint32_t>{flush, 1});
    for (unsigned i = 0; i <= 8; i++) CHECK(ram.get<uint8_t>(status(i)) == VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < 8; i++) {
        uint8_t on_disk[4096];
        REQUIRE(::pread(disk.fd, on_disk, 4096, 4096 * i) == 4096);
        CHECK(on_disk[0] == 0x10 + i);
        CHECK(on_disk[4095] == 0x10 + i);
    }

    // A write the disk holds up (a full FIFO): the flush waits for it.
    // (A FIFO has no fsync, so the flush then fails; without the wait it
    // would fail, and complete, first.)
    Fifo fifo;
    REQUIRE(::fcntl(fifo.fd, F_SETPIPE_SZ, 4096) >= 0);
    uint8_t fill[4096] = {};
    REQUIRE(::write(fifo.fd, fill, sizeof(fill)) == sizeof(fill));
    FakeRam ram2;
    FakeQueue q2(ram2, 64);
    VirtioBlock held(fifo.fd, 1 << 20, false, "x");
    uint16_t write = request(q2, 1, 0, 512, false, 0);
    flush = request(q2, 4, 0, 0, false, 1);
    held.process(0, q2.queue);
    std::this_thread::sleep_for(50ms);
    held.complete({&q2.queue, 1});
    CHECK(q2.used_idx() == 0);
    REQUIRE(::read(fifo.fd, fill, sizeof(fill)) == sizeof(fill));
    serve(held, q2);
    CHECK(q2.used(0) == std::pair<uint32_t, uint32_t>{write, 1});
    CHECK(q2.used(1) == std::pair<uint32_t, uint32_t>{flush, 1});
    CHECK(ram2.get<uint8_t>(status(0)) == VIRTIO_BLK_S_OK);
    CHECK(ram2.get<uint8_t>(status(1)) == VIRTIO_BLK_S_IOERR);
}

TEST_CASE("virtio-blk: a failing read or write is an I/O error, with io_uring and without") {
    for (auto io : kBothWays) {
        INFO(name(io));
        Disk disk;
        // Writes fail on a descriptor opened read-only (EBADF), reads past
        // the file's end (the disk claims more than the file has).
        int read_only = ::open(("/proc/self/fd/" + std::to_string(disk.fd)).c_str(), O_RDONLY);
        REQUIRE(read_only >= 0);
        FakeRam ram;
        FakeQueue q(ram, 16);
        VirtioBlock blk(read_only, 2 << 20, false, "x", io);
        request(q, 1, 0, 512, false, 0);
        request(q, 0, (1 << 20) / 512, 512, true, 1);
        request(q, 0, (1 << 20) / 512 - 1, 512, true, 2);  // the file's last sector reads fine
        serve(blk, q);
        CHECK(ram.get<uint8_t>(status(0)) == VIRTIO_BLK_S_IOERR);
        CHECK(ram.get<uint8_t>(status(1)) == VIRTIO_BLK_S_IOERR);
        CHECK(ram.get<uint8_t>(status(2)) == VIRTIO_BLK_S_OK);
        for (uint16_t n = 0; n < 3; n++) {
            auto [head, written] = q.used(n);
            CHECK(written == (head == 6 ? 513u : 1u));
        }
        ::close(read_only);
    }
}

TEST_CASE("virtio-blk with io_uring: drain waits for the requests in flight and leaves their buffers alone") {
    Fifo fifo;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(fifo.fd, 1 << 20, false, "x");
    request(q, 0, 0, 512, true, 0);
    blk.process(0, q.queue);
    auto drained = std::async(std::launch::async, [&] { blk.drain(); });
    CHECK(drained.wait_for(50ms) == std::future_status::timeout);
    uint8_t bytes[512] = {};
    REQUIRE(::write(fifo.fd, bytes, sizeof(bytes)) == sizeof(bytes));
    CHECK(drained.wait_for(5s) == std::future_status::ready);
    CHECK(blk.complete({&q.queue, 1}) == 0);
    CHECK(q.used_idx() == 0);
    CHECK(ram.get<uint8_t>(status(0)) == 0xff);
}
