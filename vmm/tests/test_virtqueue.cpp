#include <doctest/doctest.h>

#include "fake_guest.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {
constexpr uint16_t NEXT = 1, WRITE = 2, INDIRECT = 4;
}

TEST_CASE("a chain of readable then writable descriptors becomes host buffers") {
    FakeRam ram;
    FakeQueue q(ram, 8);
    q.descriptor(0, 0x10000, 16, NEXT, 1);
    q.descriptor(1, 0x11000, 512, NEXT | WRITE, 2);
    q.descriptor(2, 0x12000, 1, WRITE, 0);
    q.offer(0);
    auto chain = q.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == 0);
    REQUIRE(chain->readable.size() == 1);
    REQUIRE(chain->writable.size() == 2);
    CHECK(chain->readable[0].iov_base == ram.bytes.data() + 0x10000);
    CHECK(chain->writable[0].iov_len == 512);
    CHECK_FALSE(q.queue.pop());
    q.queue.push_used(chain->head, 513);
    CHECK(q.used_idx() == 1);
    CHECK(q.used(0) == std::pair<uint32_t, uint32_t>{0, 513});
}

TEST_CASE("indirect descriptor tables are followed") {
    FakeRam ram;
    FakeQueue q(ram, 4);
    const uint64_t table = 0x8000;
    q.descriptor(table, 0, 0x10000, 16, NEXT, 1);
    q.descriptor(table, 1, 0x11000, 4096, NEXT, 2);
    q.descriptor(table, 2, 0x12000, 1, WRITE, 0);
    q.descriptor(3, table, 48, INDIRECT, 0);
    q.offer(3);
    auto chain = q.queue.pop();
    REQUIRE(chain);
    CHECK(chain->head == 3);
    CHECK(chain->readable.size() == 2);
    CHECK(chain->writable.size() == 1);
}

TEST_CASE("ring indices wrap around at 2^16 and at the ring size") {
    FakeRam ram;
    FakeQueue q(ram, 4);
    q.descriptor(0, 0x10000, 8, WRITE, 0);
    for (unsigned round = 0; round < 70000; round++) {
        q.offer(0);
        auto chain = q.queue.pop();
        REQUIRE(chain);
        q.queue.push_used(chain->head, 8);
    }
    CHECK(q.used_idx() == uint16_t(70000));
    CHECK_FALSE(q.queue.pop());
}

TEST_CASE("malformed rings are guest errors, never out-of-bounds accesses") {
    FakeRam ram(1 << 20);
    FakeQueue q(ram, 8);

    SUBCASE("descriptor loop") {
        q.descriptor(0, 0x10000, 8, NEXT, 1);
        q.descriptor(1, 0x10000, 8, NEXT, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("next index beyond the table") {
        q.descriptor(0, 0x10000, 8, NEXT, 8);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("head index beyond the table") {
        q.offer(200);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("buffer outside RAM") {
        q.descriptor(0, (1 << 20) - 4, 8, 0, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("buffer length overflowing the address space") {
        q.descriptor(0, 0x10000, 0xffffffff, 0, 0);
        ram.put<uint64_t>(FakeQueue::kDesc, 0xfffffffffffff000ull);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("nested indirect table") {
        q.descriptor(0x8000, 0, 0x9000, 16, INDIRECT, 0);
        q.descriptor(0, 0x8000, 16, INDIRECT, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("indirect table of bad length") {
        q.descriptor(0, 0x8000, 24, INDIRECT, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("loop inside an indirect table") {
        q.descriptor(0x8000, 0, 0x10000, 8, NEXT, 1);
        q.descriptor(0x8000, 1, 0x10000, 8, NEXT, 0);
        q.descriptor(0, 0x8000, 32, INDIRECT, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("readable after writable") {
        q.descriptor(0, 0x10000, 8, WRITE | NEXT, 1);
        q.descriptor(1, 0x10000, 8, 0, 0);
        q.offer(0);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
    SUBCASE("available index far ahead of the ring") {
        ram.put<uint16_t>(FakeQueue::kAvail + 2, 100);
        CHECK_THROWS_AS(q.queue.pop(), GuestError);
    }
}

TEST_CASE("queue configuration is checked when enabled") {
    FakeRam ram(1 << 16);
    Virtqueue q(ram.memory);
    q.desc_address = 0x1000;
    q.avail_address = 0x2000;
    q.used_address = 0x3000;
    q.size = 3;
    CHECK_THROWS_AS(q.enable(), GuestError);
    q.size = 512;
    CHECK_THROWS_AS(q.enable(), GuestError);
    q.size = 256;
    q.used_address = 0xffff0;
    CHECK_THROWS_AS(q.enable(), GuestError);
    q.used_address = 0x3002;
    CHECK_THROWS_AS(q.enable(), GuestError);
    q.used_address = 0x3000;
    CHECK_NOTHROW(q.enable());
    CHECK(q.ready());
}

TEST_CASE("a queue's description says what the driver offered, the device took and gave back") {
    FakeRam ram;
    FakeQueue q(ram, 4);
    q.descriptor(0, 0x10000, 8, WRITE, 0);
    q.descriptor(1, 0x11000, 8, WRITE, 0);
    q.offer(0);
    q.offer(1);
    ram.put<uint16_t>(FakeQueue::kAvail, VRING_AVAIL_F_NO_INTERRUPT);
    auto chain = q.queue.pop();
    REQUIRE(chain);
    q.queue.push_used(chain->head, 8);
    CHECK(q.queue.describe() == "available 2, taken 1, used 1, driver flags 0x1");
    q.queue.reset();
    CHECK(q.queue.describe() == "not enabled");
}

TEST_CASE("with the event index, a queue found empty asks the driver to notify at its next chain") {
    FakeRam ram;
    FakeQueue q(ram, 8);
    q.queue.event_index = true;
    q.queue.enable();
    const uint64_t avail_event = FakeQueue::kUsed + 4 + 8 * 8;
    ram.put<uint16_t>(avail_event, 0xffff);
    q.descriptor(0, 0x10000, 8, WRITE, 0);
    q.offer(0);
    q.offer(0);
    REQUIRE(q.queue.pop());
    CHECK(ram.get<uint16_t>(avail_event) == 0xffff);  // not empty yet: no request
    REQUIRE(q.queue.pop());
    CHECK_FALSE(q.queue.pop());
    CHECK(ram.get<uint16_t>(avail_event) == 2);
}

TEST_CASE("interrupts: the driver's flag without the event index, its used_event with it") {
    FakeRam ram;
    auto complete = [](FakeQueue& q, unsigned chains) {
        for (unsigned i = 0; i < chains; i++) {
            q.offer(0);
            auto chain = q.queue.pop();
            REQUIRE(chain);
            q.queue.push_used(chain->head, 8);
        }
    };
    FakeQueue flags(ram, 8);
    flags.descriptor(0, 0x10000, 8, WRITE, 0);
    complete(flags, 1);
    CHECK(flags.queue.needs_interrupt());
    ram.put<uint16_t>(FakeQueue::kAvail, VRING_AVAIL_F_NO_INTERRUPT);
    complete(flags, 1);
    CHECK_FALSE(flags.queue.needs_interrupt());

    // With the event index the flag means nothing; used_event is where the
    // driver wants the next interrupt: when the used index passes it.
    FakeRam ram2;
    FakeQueue q(ram2, 8);
    q.queue.event_index = true;
    q.queue.enable();
    q.descriptor(0, 0x10000, 8, WRITE, 0);
    ram2.put<uint16_t>(FakeQueue::kAvail, VRING_AVAIL_F_NO_INTERRUPT);
    const uint64_t used_event = FakeQueue::kAvail + 4 + 2 * 8;
    ram2.put<uint16_t>(used_event, 4);
    complete(q, 1);
    CHECK(q.queue.needs_interrupt());  // the first since enable()
    complete(q, 2);                    // used index 3: entry 4 not yet used
    CHECK_FALSE(q.queue.needs_interrupt());
    complete(q, 2);  // used index 5: entry 4 was used
    CHECK(q.queue.needs_interrupt());
    complete(q, 3);  // used_event 4 is behind: the driver has not caught up
    CHECK_FALSE(q.queue.needs_interrupt());
    ram2.put<uint16_t>(used_event, 8);
    complete(q, 1);  // entry 8 used
    CHECK(q.queue.needs_interrupt());
}
