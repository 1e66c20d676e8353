#include <doctest/doctest.h>

#include <ntc/error.h>
#include <string>
#include <vector>

#include "devices/acpi_pm.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"
#include "fake_guest.h"
#include "io_bus.h"
#include "layout.h"
#include "machine.h"

using namespace ntc::vmm;
using namespace ntc::vmm::testing;

namespace {

// Answers every read with `answer` and records what it was asked.
struct Recorder {
    uint64_t answer = 0;
    std::vector<std::pair<uint64_t, unsigned>> reads;
    std::vector<std::pair<uint64_t, uint64_t>> writes;  // offset, value
    BusDevice device() {
        return {[this](uint64_t offset, unsigned size) {
                    reads.push_back({offset, size});
                    return answer;
                },
                [this](uint64_t offset, unsigned, uint64_t value) {
                    writes.push_back({offset, value});
                }};
    }
};

std::string refusal(IoBus& bus, uint64_t base, uint64_t length, const char* name) {
    Recorder r;
    try {
        bus.add(base, length, r.device(), name);
    } catch (const ntc::Error& e) {
        return e.what();
    }
    return "";
}

// The machine's own devices, on their buses as run_machine puts them.
struct MachineBuses {
    FakeRam ram;
    std::vector<uint8_t> output;
    std::vector<std::pair<GuestRequest, std::string>> requests;
    bool sci = false;
    Serial serial{[this](uint8_t b) { output.push_back(b); }, [](bool) {}};
    PciBus pci;
    AcpiPm pm{[this](GuestRequest r, const char* how) { requests.push_back({r, how}); }, [this](bool on) { sci = on; }};
    IoBus ports, mmio;
    RecordingVm vm;
    MachineBuses() {
        pci.add(std::make_shared<VirtioPciDevice>(
            std::make_unique<VirtioBlock>(-1, 1 << 20, false, "t", 1), ram.memory, uint32_t(layout::kPciMmioBase), 16,
            [](bool) {}, vm));
        map_devices(ports, mmio, serial, pci, pm);
    }
};

}  // namespace

TEST_CASE("an access goes to the range holding its first byte, at its offset there") {
    IoBus bus;
    Recorder a, b;
    a.answer = 0x1234;
    bus.add(0x100, 8, a.device(), "a");
    bus.add(0x200, 1, b.device(), "b");
    CHECK(bus.find(0x100)->offset == 0);
    CHECK(bus.find(0x107)->offset == 7);
    CHECK_FALSE(bus.find(0x108));
    CHECK_FALSE(bus.find(0xff));
    CHECK_FALSE(bus.find(0));
    CHECK(bus.find(0x200)->offset == 0);
    CHECK_FALSE(bus.find(0x201));
    CHECK_FALSE(bus.find(~0ull));

    CHECK(bus.read(0x107, 4) == 0x1234);
    CHECK(a.reads == std::vector<std::pair<uint64_t, unsigned>>{{7, 4}});
    bus.write(0x103, 2, 0xbeef);
    CHECK(a.writes == std::vector<std::pair<uint64_t, uint64_t>>{{3, 0xbeef}});
    CHECK(b.reads.empty());
    CHECK(b.writes.empty());
}

TEST_CASE("what no device claims reads as all ones and swallows writes") {
    IoBus bus;
    Recorder a;
    bus.add(0x100, 8, a.device(), "a");
    CHECK(bus.read(0x108, 1) == 0xff);
    CHECK(bus.read(0x108, 2) == 0xffff);
    CHECK(bus.read(0xff, 4) == 0xffffffff);
    CHECK(bus.read(0x80000000, 8) == ~0ull);
    bus.write(0x108, 4, 0);
    bus.write(0xff, 1, 0);
    CHECK(a.reads.empty());
    CHECK(a.writes.empty());
    CHECK(IoBus().read(0, 4) == 0xffffffff);
}

TEST_CASE("a read gives only the bytes asked for") {
    IoBus bus;
    Recorder a;
    a.answer = 0x1122334455667788;
    bus.add(0, 8, a.device(), "a");
    CHECK(bus.read(0, 1) == 0x88);
    CHECK(bus.read(0, 2) == 0x7788);
    CHECK(bus.read(0, 4) == 0x55667788);
    CHECK(bus.read(0, 8) == 0x1122334455667788);
}

TEST_CASE("overlapping ranges are refused, naming both") {
    IoBus bus;
    Recorder a;
    bus.add(0x100, 0x10, a.device(), "a");
    CHECK(refusal(bus, 0xf8, 0x10, "b") == "cannot add b at 0xf8-0x107: it overlaps a at 0x100-0x10f");    // the start
    CHECK(refusal(bus, 0x108, 0x10, "b") == "cannot add b at 0x108-0x117: it overlaps a at 0x100-0x10f");  // the end
    CHECK(refusal(bus, 0x80, 0x100, "b") == "cannot add b at 0x80-0x17f: it overlaps a at 0x100-0x10f");   // containing
    CHECK(refusal(bus, 0x104, 4, "b") == "cannot add b at 0x104-0x107: it overlaps a at 0x100-0x10f");     // contained
    CHECK(refusal(bus, 0x100, 1, "b") == "cannot add b at 0x100: it overlaps a at 0x100-0x10f");           // same base
    CHECK(refusal(bus, 0x10f, 1, "b") == "cannot add b at 0x10f: it overlaps a at 0x100-0x10f");           // last byte
    CHECK(refusal(bus, 0x100, 0x10, "b") != "");  // the same range
    // Nothing refused was added.
    CHECK(bus.find(0xf8) == std::nullopt);
    CHECK(bus.find(0x110) == std::nullopt);
}

TEST_CASE("adjacent ranges are accepted") {
    IoBus bus;
    Recorder a, below, above;
    bus.add(0x100, 0x10, a.device(), "a");
    bus.add(0xf0, 0x10, below.device(), "below");
    bus.add(0x110, 1, above.device(), "above");
    bus.write(0xff, 1, 1);
    bus.write(0x100, 1, 2);
    bus.write(0x10f, 1, 3);
    bus.write(0x110, 1, 4);
    CHECK(below.writes == std::vector<std::pair<uint64_t, uint64_t>>{{0xf, 1}});
    CHECK(a.writes == std::vector<std::pair<uint64_t, uint64_t>>{{0, 2}, {0xf, 3}});
    CHECK(above.writes == std::vector<std::pair<uint64_t, uint64_t>>{{0, 4}});
}

TEST_CASE("empty and wrapping ranges are refused") {
    IoBus bus;
    CHECK(refusal(bus, 0x100, 0, "empty") == "cannot add empty: its range is empty");
    CHECK(refusal(bus, ~0ull, 2, "wrap") == "cannot add wrap: its range wraps around");
    CHECK(refusal(bus, ~0ull - 0xf, 0x20, "wrap") == "cannot add wrap: its range wraps around");
    CHECK(refusal(bus, ~0ull - 0xf, 0x10, "top") == "");  // ends on the last address
    CHECK(bus.find(~0ull)->offset == 0xf);
}

TEST_CASE("the machine's ports and MMIO window are claimed without overlap") {
    MachineBuses m;  // map_devices would have thrown on an overlap
    using namespace layout;
    for (auto [base, length] : {std::pair<uint16_t, unsigned>{kCom1, 8},
                                {kPm1EventBlock, 4},
                                {kPm1ControlBlock, 2},
                                {kPmTimer, 4},
                                {kGpe0Block, 2},
                                {kI8042Command, 1},
                                {kResetControl, 1},
                                {kPciConfigAddress, 1},
                                {kPciConfigData, 4}}) {
        CAPTURE(base);
        CHECK(m.ports.find(base));
        CHECK(m.ports.find(uint16_t(base + length - 1)));
    }
    for (uint16_t free : {0x3f7, 0x400, 0x5ff, 0x606, 0x607, 0x60e, 0x60, 0xcf7, 0xcfa, 0xcfb, 0xd00})
        CHECK_FALSE(m.ports.find(free));
    CHECK(m.mmio.find(kPciMmioBase));
    CHECK(m.mmio.find(kPciMmioEnd - 1));
    CHECK_FALSE(m.mmio.find(kPciMmioBase - 1));
    CHECK_FALSE(m.mmio.find(kPciMmioEnd));
    CHECK_FALSE(m.mmio.find(kLocalApic));
}

TEST_CASE("0xcf8 is the PCI address register, 0xcf9 the reset register, 0xcfc the data window") {
    MachineBuses m;
    m.ports.write(0xcf8, 4, 0x80000000u | (1u << 11));
    CHECK(m.ports.read(0xcf8, 4) == (0x80000000u | (1u << 11)));
    CHECK(m.ports.read(0xcfc, 4) == 0x10421af4);
    CHECK(m.ports.read(0xcfe, 2) == 0x1042);
    CHECK(m.ports.read(0xcf8, 1) == 0xff);  // only the whole register answers
    CHECK(m.ports.read(0xcf8, 2) == 0xffff);
    CHECK(m.ports.read(0xcf9, 1) == 0);
    CHECK(m.ports.read(0xcf9, 2) == 0xffff);  // not the reset register
    m.ports.write(0xcf9, 2, 0x0606);
    CHECK(m.requests.empty());
    CHECK(m.ports.read(0xcf8, 4) == (0x80000000u | (1u << 11)));  // and not the address either
    m.ports.write(0xcf9, 1, 0x02);
    CHECK(m.requests.empty());
    m.ports.write(0xcf9, 1, 0x06);
    REQUIRE(m.requests.size() == 1);
    CHECK(m.requests[0].first == GuestRequest::Reboot);
    CHECK(m.requests[0].second == "port 0xcf9");
}

TEST_CASE("COM1, the PM blocks and the i8042 reset on the port bus") {
    MachineBuses m;
    CHECK(m.ports.read(layout::kCom1 + 5, 1) == 0x60);  // LSR: transmitter empty and idle
    m.ports.write(layout::kCom1, 1, 'x');
    CHECK(m.output == std::vector<uint8_t>{'x'});
    m.ports.write(layout::kCom1 + 7, 1, 0x5a);
    CHECK(m.ports.read(layout::kCom1 + 7, 1) == 0x5a);

    CHECK(m.ports.read(layout::kPm1ControlBlock, 2) == 1);  // SCI_EN
    m.ports.write(layout::kPm1EventBlock + 2, 2, 0x0120);
    CHECK(m.ports.read(layout::kPm1EventBlock, 4) == 0x01200000);
    CHECK(m.ports.read(layout::kPmTimer, 4) <= 0xffffff);
    CHECK(m.ports.read(layout::kI8042Command, 1) == 0);
    m.ports.write(layout::kPm1ControlBlock, 2, (5u << 10) | (1u << 13));
    m.ports.write(layout::kI8042Command, 1, 0xfe);
    REQUIRE(m.requests.size() == 2);
    CHECK(m.requests[0].first == GuestRequest::PowerOff);
    CHECK(m.requests[1].first == GuestRequest::Reboot);
}

TEST_CASE("a GPE raises the SCI while its status and enable bits are set; the guest clears the status") {
    MachineBuses m;
    uint8_t gpe = 1u << layout::kGpeVmGeneration;
    m.pm.announce_vm_generation(false);  // a booted kernel enables it itself
    CHECK(m.ports.read(layout::kGpe0Block, 1) == gpe);
    CHECK_FALSE(m.sci);
    m.ports.write(layout::kGpe0Block + 1, 1, gpe);
    CHECK(m.sci);
    CHECK(m.ports.read(layout::kGpe0Block, 2) == (gpe | (gpe << 8)));
    m.ports.write(layout::kGpe0Block, 1, 0xfe);  // write-one-to-clear: other bits
    CHECK(m.sci);
    m.ports.write(layout::kGpe0Block, 1, gpe);
    CHECK_FALSE(m.sci);
    CHECK(m.ports.read(layout::kGpe0Block, 1) == 0);
    m.ports.write(layout::kGpe0Block, 2, 0);  // a word write: enable off
    CHECK(m.ports.read(layout::kGpe0Block + 1, 1) == 0);

    MachineBuses resumed;
    resumed.pm.announce_vm_generation(true);  // enabled as the resumed kernel left it
    CHECK(resumed.sci);
    CHECK(resumed.ports.read(layout::kGpe0Block, 2) == (gpe | (gpe << 8)));
}

TEST_CASE("the MMIO window reaches a BAR where the guest moves it, while memory decoding is on") {
    MachineBuses m;
    uint64_t bar = layout::kPciMmioBase;
    CHECK(m.mmio.read(bar + 0x12, 2) == 0xffff);  // memory space off
    m.ports.write(0xcf8, 4, 0x80000000u | (1u << 11) | 0x04);
    m.ports.write(0xcfc, 2, 0x2);
    CHECK(m.mmio.read(bar + 0x12, 2) == 1);  // num_queues
    m.ports.write(0xcf8, 4, 0x80000000u | (1u << 11) | 0x10);
    m.ports.write(0xcfc, 4, uint32_t(layout::kPciMmioBase + 0x100000));
    CHECK(m.mmio.read(bar + 0x12, 2) == 0xffff);
    CHECK(m.mmio.read(bar + 0x100000 + 0x12, 2) == 1);
}
