#include <doctest/doctest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>

#include "devices/block_io.h"
#include "devices/virtio_blk.h"
#include "fake_guest.h"
#include "support.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

constexpr uint16_t NEXT = 1, WRITE = 2;

struct Disk {
    int fd = ::memfd_create("disk", 0);
    Disk() { REQUIRE(::ftruncate(fd, 1 << 20) == 0); }
    ~Disk() { ::close(fd); }
};

// Request `slot` of a queue: descriptors 3 * slot on, header at
// 0x10000 + 0x3000 * slot, data 0x1000 after it, status 0x2000 after it.
uint64_t header_at(unsigned slot) { return 0x10000 + 0x3000ull * slot; }
uint64_t data_at(unsigned slot) { return header_at(slot) + 0x1000; }
uint64_t status_at(unsigned slot) { return header_at(slot) + 0x2000; }

void request(FakeQueue& q, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable, unsigned slot = 0) {
    q.ram.put<uint32_t>(header_at(slot), type);
    q.ram.put<uint32_t>(header_at(slot) + 4, 0);
    q.ram.put<uint64_t>(header_at(slot) + 8, sector);
    q.ram.put<uint8_t>(status_at(slot), 0xff);
    uint16_t first = uint16_t(3 * slot);
    q.descriptor(first, header_at(slot), 16, NEXT, uint16_t(first + 1));
    q.descriptor(uint16_t(first + 1), data_at(slot), data_len, uint16_t(NEXT | (data_writable ? WRITE : 0)),
                 uint16_t(first + 2));
    q.descriptor(uint16_t(first + 2), status_at(slot), 1, WRITE, 0);
    q.offer(first);
}

// What the device's worker does for one wake-up and the completions that
// follow it: serves the queue and returns the requests done at once, then
// returns the others as they complete (5 s at most); returns whether used
// buffers were added.
bool serve(VirtioBlock& blk, FakeQueue& q) {
    bool used = blk.process(0, q.queue);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
        if (blk.complete(std::span<Virtqueue>(&q.queue, 1))) used = true;
        if (!blk.in_flight()) return used;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd completions{blk.completion_fd(), POLLIN, 0};
        REQUIRE(::poll(&completions, 1, int(std::max<int64_t>(left.count(), 0))) == 1);
    }
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
    CHECK(serve(blk, q));
    CHECK(ram.get<uint8_t>(0x12000) == 0);
    uint8_t on_disk[1024];
    REQUIRE(::pread(disk.fd, on_disk, 1024, 8 * 512) == 1024);
    CHECK(on_disk[0] == 0xab);
    CHECK(on_disk[1023] == 0xab);

    std::memset(&ram.bytes[0x11000], 0, 1024);
    request(q, 0, 8, 1024, true);
    CHECK(serve(blk, q));
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

TEST_CASE("virtio-blk calls its before-writes hook for each write and flush, not for reads") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "hooked", 1);
    int calls = 0;
    blk.before_writes([&] { calls++; });
    request(q, VIRTIO_BLK_T_OUT, 0, 512, false);
    serve(blk, q);
    request(q, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    serve(blk, q);
    request(q, VIRTIO_BLK_T_IN, 0, 512, true);
    serve(blk, q);
    CHECK(calls == 2);
}

TEST_CASE("virtio-blk on an overlay reads the base until written, writes only the overlay, commits at a flush") {
    testsupport::TempDir dir;
    std::string base_path = dir / "disk2.img";
    std::vector<uint8_t> pattern(1 << 20);
    for (size_t i = 0; i < pattern.size(); i++) pattern[i] = uint8_t(i / 512 + 1);
    ntc::DiskFile::create_sparse(base_path, pattern.size()).write_at(0, pattern);
    std::string base_digest = testsupport::file_digest(base_path);
    ntc::Overlay overlay = ntc::Overlay::create(dir / "inst.cow", ntc::DiskFile(base_path, ntc::DiskFile::Mode::read));
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(overlay, "inst", 1);
    CHECK_FALSE((blk.features() & VirtioBlock::kFeatureReadOnly));

    std::memset(&ram.bytes[0x11000], 0xab, 1024);
    request(q, VIRTIO_BLK_T_OUT, 9, 1024, false);
    CHECK(serve(blk, q));
    CHECK(ram.get<uint8_t>(0x12000) == VIRTIO_BLK_S_OK);
    CHECK(overlay.sectors_in_overlay() == 2);
    // Sectors 8 to 15 in one request: the base's, the two written, the base's.
    request(q, VIRTIO_BLK_T_IN, 8, 4096, true);
    CHECK(serve(blk, q));
    CHECK(ram.get<uint8_t>(0x12000) == VIRTIO_BLK_S_OK);
    CHECK(q.used(1).second == 4097);
    CHECK(ram.bytes[0x11000] == 9);
    CHECK(ram.bytes[0x11000 + 511] == 9);
    CHECK(ram.bytes[0x11000 + 512] == 0xab);
    CHECK(ram.bytes[0x11000 + 1535] == 0xab);
    CHECK(ram.bytes[0x11000 + 1536] == 12);
    CHECK(ram.bytes[0x11000 + 4095] == 16);
    CHECK(testsupport::file_digest(base_path) == base_digest);

    // Unflushed, the writes are not in the overlay's bitmap on disk.
    CHECK(ntc::Overlay::open(dir / "inst.cow", ntc::DiskFile::Mode::read).sectors_in_overlay() == 0);
    request(q, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    serve(blk, q);
    CHECK(ram.get<uint8_t>(0x12000) == VIRTIO_BLK_S_OK);
    ntc::Overlay reopened = ntc::Overlay::open(dir / "inst.cow", ntc::DiskFile::Mode::read);
    CHECK(reopened.sectors_in_overlay() == 2);
    std::vector<uint8_t> sector(512);
    reopened.read_at(10 * 512, sector);
    CHECK(sector[0] == 0xab);
}

TEST_CASE("virtio-blk leaves its overlay once told, between requests: the overlay merged, then the base written") {
    testsupport::TempDir dir;
    std::string base_path = dir / "disk2.img";
    ntc::DiskFile::create_sparse(base_path, 1 << 20);
    std::string base_digest = testsupport::file_digest(base_path);
    ntc::Overlay overlay =
        ntc::Overlay::create(dir / "loading.cow", ntc::DiskFile(base_path, ntc::DiskFile::Mode::read));
    ntc::DiskFile base(base_path, ntc::DiskFile::Mode::read_write);
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(overlay, "loading", 1);
    bool done = false;
    int merges = 0;
    blk.leave_overlay_when([&] { return done; }, [&] { merges++; }, base.fd());

    std::memset(&ram.bytes[0x11000], 0xab, 512);
    request(q, VIRTIO_BLK_T_OUT, 4, 512, false);
    serve(blk, q);
    CHECK(ram.get<uint8_t>(0x12000) == VIRTIO_BLK_S_OK);
    CHECK(overlay.sectors_in_overlay() == 1);
    CHECK(testsupport::file_digest(base_path) == base_digest);
    CHECK_FALSE(blk.leave_overlay_if_done());

    done = true;
    std::memset(&ram.bytes[0x11000], 0xcd, 512);
    request(q, VIRTIO_BLK_T_OUT, 5, 512, false);
    serve(blk, q);  // leaves the overlay first, then writes the base
    CHECK(merges == 1);
    CHECK(blk.leave_overlay_if_done());
    CHECK(overlay.sectors_in_overlay() == 1);
    uint8_t on_disk = 0;
    REQUIRE(::pread(base.fd(), &on_disk, 1, 5 * 512) == 1);
    CHECK(on_disk == 0xcd);
    CHECK(merges == 1);
}

TEST_CASE("virtio-blk refuses out-of-range and misaligned requests and writes to a read-only disk") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    request(q, 0, 2047, 1024, true);  // runs past the end
    serve(blk, q);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
    request(q, 0, ~0ull / 256, 512, true);  // sector * 512 would overflow
    serve(blk, q);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
    request(q, 0, 0, 100, true);  // not whole sectors
    serve(blk, q);
    CHECK(ram.get<uint8_t>(0x12000) == 1);

    VirtioBlock ro(disk.fd, 1 << 20, true, "x", 1);
    CHECK((ro.features() & VirtioBlock::kFeatureReadOnly));
    request(q, 1, 0, 512, false);
    serve(ro, q);
    CHECK(ram.get<uint8_t>(0x12000) == 1);
}

TEST_CASE("virtio-blk requests without status byte are guest errors") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 16);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    q.descriptor(0, 0x10000, 16, 0, 0);
    q.offer(0);
    CHECK_THROWS_AS(serve(blk, q), GuestError);
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

TEST_CASE("virtio-blk returns each of the requests one wake-up found to its own chain") {
    Disk disk;
    for (unsigned k = 0; k < 8; k++) {
        std::vector<uint8_t> sector_data(4096, uint8_t(k + 1));
        REQUIRE(::pwrite(disk.fd, sector_data.data(), 4096, off_t(k) * 4096) == 4096);
    }
    FakeRam ram;
    FakeQueue q(ram, 32);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    CHECK(blk.in_flight() == 0);
    for (unsigned k = 0; k < 8; k++) request(q, VIRTIO_BLK_T_IN, 8 * k, 4096, true, k);
    serve(blk, q);
    REQUIRE(q.used_idx() == 8);
    std::vector<bool> returned(8);
    for (uint16_t n = 0; n < 8; n++) {
        auto [head, length] = q.used(n);
        REQUIRE(head % 3 == 0);
        REQUIRE(head / 3 < 8);
        returned[head / 3] = true;
        CHECK(length == 4097);
    }
    for (unsigned k = 0; k < 8; k++) {
        CHECK(returned[k]);
        CHECK(ram.get<uint8_t>(status_at(k)) == VIRTIO_BLK_S_OK);
        CHECK(ram.get<uint8_t>(data_at(k)) == k + 1);
        CHECK(ram.get<uint8_t>(data_at(k) + 4095) == k + 1);
    }
}

TEST_CASE("virtio-blk fails a read that the disk file cannot fill, after taking what it had") {
    Disk disk;
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    // The file shrinks under the VMM to 2 KiB past 512 KiB.
    REQUIRE(::ftruncate(disk.fd, (512 << 10) + 2048) == 0);
    FakeRam ram;
    FakeQueue q(ram, 16);
    request(q, VIRTIO_BLK_T_IN, 1024, 8192, true);
    CHECK(serve(blk, q));
    CHECK(ram.get<uint8_t>(status_at(0)) == VIRTIO_BLK_S_IOERR);
    CHECK(q.used(0).second == 1);
}

TEST_CASE("virtio-blk's reset waits for the requests in flight and returns none of them") {
    Disk disk;
    FakeRam ram;
    FakeQueue q(ram, 32);
    VirtioBlock blk(disk.fd, 1 << 20, false, "x", 1);
    for (unsigned k = 0; k < 8; k++) request(q, VIRTIO_BLK_T_OUT, 8 * k, 4096, false, k);
    request(q, VIRTIO_BLK_T_FLUSH, 0, 0, false, 8);
    blk.process(0, q.queue);
    CHECK(blk.in_flight() == 9);
    blk.quiesce();
    CHECK(blk.in_flight() == 0);
    CHECK(q.used_idx() == 0);
    for (unsigned k = 0; k < 9; k++) CHECK(ram.get<uint8_t>(status_at(k)) == 0xff);
}

TEST_CASE("without io_uring (a seccomp filter refuses it) disk requests run one at a time, with the same results") {
    Disk disk;
    {
        BlockIo io(8, "test");
        CHECK(io.asynchronous());
    }
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        sock_filter refuse_io_uring[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog program{sizeof(refuse_io_uring) / sizeof(refuse_io_uring[0]), refuse_io_uring};
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program))
            ::_exit(2);
        BlockIo io(8, "test");
        char out[512], in[512] = {};
        std::memset(out, 0x5a, sizeof(out));
        std::vector<iovec> write_buffers{{out, sizeof(out)}}, read_buffers{{in, sizeof(in)}};
        io.write(1, disk.fd, write_buffers, 4096);
        io.flush(2, disk.fd);
        io.read(3, disk.fd, read_buffers, 4096);
        io.submit();
        auto done = io.take_completions();
        bool right = !io.asynchronous() && io.in_flight() == 0 && done.size() == 3 && done[0].tag == 1 &&
                     done[0].result == 512 && done[1].tag == 2 && done[1].result == 0 && done[2].tag == 3 &&
                     done[2].result == 512 && std::memcmp(in, out, sizeof(in)) == 0;
        ::_exit(right ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("virtio-blk keeps the reads that must wait for the disk in flight together in io_uring") {
    // A file on a disk's filesystem, not in tmpfs: its uncached pages make a
    // read without waiting fail (RWF_NOWAIT), which tmpfs cannot tell.
    char path[] = "/var/tmp/ntc-blk-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    for (unsigned k = 0; k < 8; k++) {
        std::vector<uint8_t> sector_data(4096, uint8_t(0x40 + k));
        REQUIRE(::pwrite(fd, sector_data.data(), 4096, off_t(k) * 65536) == 4096);
    }
    REQUIRE(::ftruncate(fd, 1 << 20) == 0);
    REQUIRE(::fdatasync(fd) == 0);
    REQUIRE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);

    FakeRam ram;
    FakeQueue q(ram, 32);
    VirtioBlock blk(fd, 1 << 20, false, "x", 1);
    for (unsigned k = 0; k < 8; k++) request(q, VIRTIO_BLK_T_IN, 128 * k, 4096, true, k);
    request(q, VIRTIO_BLK_T_FLUSH, 0, 0, false, 8);
    CHECK_FALSE(blk.process(0, q.queue));
    CHECK(blk.in_flight() == 9);
    CHECK(blk.describe() == "9 requests in flight, 9 of them waiting in io_uring");
    serve(blk, q);
    CHECK(q.used_idx() == 9);
    for (unsigned k = 0; k < 9; k++) CHECK(ram.get<uint8_t>(status_at(k)) == VIRTIO_BLK_S_OK);
    for (unsigned k = 0; k < 8; k++) {
        CHECK(ram.get<uint8_t>(data_at(k)) == 0x40 + k);
        CHECK(ram.get<uint8_t>(data_at(k) + 4095) == 0x40 + k);
    }
    CHECK(blk.describe() == "0 requests in flight, 0 of them waiting in io_uring");
    ::close(fd);
}
