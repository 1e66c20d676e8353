// Host-side parts: boot entries, command line, KVM availability, checkpoint
// header, a VM's hold on its disks, serial port.
#include <doctest/doctest.h>
#include <support.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <ntc/error.h>
#include <sstream>

#include "boot_entry.h"
#include "checkpoint.h"
#include "cli.h"
#include "devices/serial.h"
#include "e820.h"
#include "guest_disk.h"
#include "kvm.h"
#include "resume.h"
#include <ntc/swap_area.h>

using namespace ntc::vmm;

TEST_CASE("BLS entries are parsed") {
    auto e = parse_boot_entry("ntc-6.1", "# comment\ntitle   NTC guest (Debian)\nversion 6.1.0-56-amd64\n"
                                         "linux   /boot/vmlinuz-6.1.0-56-amd64\ninitrd /boot/a.img\n"
                                         "initrd /boot/b.img\noptions root=/dev/vda1 rw\n  options console=ttyS0  \n");
    CHECK(e.title == "NTC guest (Debian)");
    CHECK(e.version == "6.1.0-56-amd64");
    CHECK(e.linux == "/boot/vmlinuz-6.1.0-56-amd64");
    CHECK(e.initrd == std::vector<std::string>{"/boot/a.img", "/boot/b.img"});
    CHECK(e.options == "root=/dev/vda1 rw console=ttyS0");
}

TEST_CASE("the newest entry boots, or the one for a given release") {
    std::vector<BootEntry> entries = {
        parse_boot_entry("a", "version 6.1.0-9-amd64\nlinux /boot/vmlinuz-6.1.0-9-amd64\n"),
        parse_boot_entry("b", "version 6.1.0-56-amd64\nlinux /boot/vmlinuz-6.1.0-56-amd64\n"),
        parse_boot_entry("c", "version 6.1.0-10-amd64\nlinux /boot/vmlinuz-6.1.0-10-amd64\n"),
        parse_boot_entry("nolinux", "version 9.9\n"),
    };
    CHECK(choose_boot_entry(entries, std::nullopt)->name == "b");
    CHECK(choose_boot_entry(entries, std::string("6.1.0-10-amd64"))->name == "c");
    CHECK_FALSE(choose_boot_entry(entries, std::string("5.10.0-1-amd64")));
    CHECK_FALSE(choose_boot_entry({}, std::nullopt));
    CHECK(compare_versions("6.1.0-9", "6.1.0-10") < 0);
    CHECK(compare_versions("6.10", "6.9") > 0);
    CHECK(compare_versions("1.0", "1.0") == 0);
}

namespace {
Command parse(std::vector<const char*> args) {
    args.insert(args.begin(), "ntc-vmm");
    return parse_command_line(int(args.size()), args.data());
}
}  // namespace

TEST_CASE("command line") {
    auto run = std::get<RunCommand>(parse({"run", "d1.img", "--disk", "d2.img", "--disk", "d3.img", "--mem", "2G",
                                           "--cpus", "4", "--console-log", "c.log"}));
    CHECK(run.disks == std::vector<std::string>{"d1.img", "d2.img", "d3.img"});
    CHECK(run.ram_bytes == 2ull << 30);
    CHECK(run.cpus == 4);
    CHECK(run.console_log == "c.log");
    CHECK_FALSE(run.kernel);

    auto k = std::get<RunCommand>(parse({"run", "d1.img", "--kernel", "vmlinuz", "--initrd", "i", "--append", "x y"}));
    CHECK(k.kernel == "vmlinuz");
    CHECK(k.append == "x y");
    CHECK(k.ram_bytes == 512ull << 20);
    CHECK(k.cpus == 2);
    CHECK_THROWS_AS(parse({"run", "d1.img", "--initrd", "i"}), ntc::Error);
    CHECK_THROWS_AS(parse({"run", "d1.img", "--mem", "12Q"}), ntc::Error);

    auto r = std::get<ResumeCommand>(parse({"resume", "d2.img", "--disk", "next.img"}));
    CHECK(r.disk == "d2.img");
    CHECK(r.next == "next.img");
    CHECK(r.instance_name.empty());
    CHECK(std::get<ResumeCommand>(parse({"resume", "d2.img", "--name", "inst-1"})).instance_name == "inst-1");
    auto instance = std::get<ResumeCommand>(parse({"resume", "d2.img", "--overlay", "i.cow"}));
    CHECK(instance.overlay == "i.cow");
    CHECK_FALSE(instance.throwaway);
    CHECK(std::get<ResumeCommand>(parse({"resume", "d2.img", "--throwaway"})).throwaway);
    CHECK(std::get<ExitNow>(parse({"resume", "d2.img", "--throwaway", "--overlay", "i.cow"})).status == 1);
    // The image loaded behind the guest unless asked otherwise; the stock path has no such choice.
    CHECK_FALSE(instance.load_first);
    CHECK(std::get<ResumeCommand>(parse({"resume", "d2.img", "--load-first"})).load_first);
    CHECK(std::get<ExitNow>(parse({"resume", "d2.img", "--load-first", "--boot-kernel"})).status == 1);
    CHECK(std::get<RunCommand>(parse({"run", "d1.img", "--name", "office"})).instance_name == "office");
    CHECK_THROWS_AS(parse({"resume", "d2.img", "--name", "two words"}), ntc::Error);
    // Bad arguments exit 1 as documented, not with CLI11's own codes; --help exits 0.
    CHECK(std::get<ExitNow>(parse({"run"})).status == 1);
    CHECK(std::get<ExitNow>(parse({})).status == 1);
    CHECK(std::get<ExitNow>(parse({"--bogus"})).status == 1);
    CHECK(std::get<ExitNow>(parse({"run", "d1.img", "--bogus"})).status == 1);
    for (auto help : {std::vector<const char*>{"--help"}, std::vector<const char*>{"resume", "--help"}}) {
        std::ostringstream out;  // the help text, kept out of the test log
        std::streambuf* saved = std::cout.rdbuf(out.rdbuf());
        int status = std::get<ExitNow>(parse(help)).status;
        std::cout.rdbuf(saved);
        CHECK(status == 0);
        CHECK(out.str().find("Usage:") != std::string::npos);
    }

    CHECK(parse_size("1024") == 1ull << 30);
    CHECK(parse_size("64M") == 64ull << 20);
    CHECK(parse_size("4096K") == 4ull << 20);
    CHECK_THROWS_AS(parse_size("x"), ntc::Error);
    CHECK_THROWS_AS(parse_size("99999999999T"), ntc::Error);
}

TEST_CASE("resume command line points at the checkpoint's swap partition") {
    CHECK(resume_cmdline("root=/dev/vda1 rw resume=/dev/vda3 console=ttyS0", 3) ==
          "root=/dev/vda1 rw console=ttyS0 resume=/dev/vda3");
    CHECK(resume_cmdline("noresume quiet", 4) == "quiet resume=/dev/vda4");
}

TEST_CASE("the machine size comes back from the page count a checkpoint records") {
    for (uint64_t mib : {64ull, 256ull, 512ull, 4096ull}) {
        uint64_t ram = mib << 20;
        uint64_t present = 0;
        for (const auto& e : e820_map(ram))
            if (e.type == E820Type::Ram) present += e.size / 4096 * 4096;
        CHECK(machine_ram_for_record(present) == ram);
        CHECK(machine_ram_for_record(ram) == ram);
    }
}

TEST_CASE("a PVM /dev/kvm is refused; so is none, or one without kvm_intel/kvm_amd") {
    namespace fs = std::filesystem;
    fs::path root = fs::temp_directory_path() / ("ntcvmm-sys-" + std::to_string(::getpid()));
    fs::create_directories(root / "module");
    std::string dev = (root / "kvm").string();
    auto reason = [&] { return kvm_unusable_reason((root / "module").string(), dev); };
    CHECK(reason()->find("no " + dev) != std::string::npos);
    CHECK(reason()->find("QEMU") != std::string::npos);
    { std::ofstream(dev) << ""; }
    fs::create_directories(root / "module" / "kvm");
    CHECK(reason()->find("kvm_intel or kvm_amd") != std::string::npos);
    fs::create_directories(root / "module" / "kvm_amd");
    CHECK_FALSE(reason());
    fs::create_directories(root / "module" / "kvm_pvm");
    CHECK(reason()->find("PVM") != std::string::npos);
    fs::remove_all(root);
}

namespace {
std::array<uint8_t, NTC_PAGE_SIZE> checkpoint_page(uint32_t state = NTC_STATE_CHECKPOINT) {
    std::array<uint8_t, NTC_PAGE_SIZE> page{};
    ntc_record r{};
    r.state = state;
    r.cpus = 2;
    r.ram_bytes = 512ull << 20;
    std::strcpy(r.kernel_release, "6.1.0-56-amd64");
    ntc::seal_record(r);
    std::memcpy(page.data(), &r, sizeof(r));
    std::memcpy(&page[NTC_OFF_SIG], NTC_HIBERNATE_SIG, 10);
    std::memcpy(&page[NTC_OFF_ORIG_SIG], NTC_SWAP_SIG, 10);
    return page;
}
std::string why(const std::array<uint8_t, NTC_PAGE_SIZE>& page) {
    auto result = parse_checkpoint_page(page);
    return std::holds_alternative<std::string>(result) ? std::get<std::string>(result) : "";
}
}  // namespace

TEST_CASE("checkpoint header: a valid one, and each way of being invalid") {
    auto good = checkpoint_page();
    auto result = parse_checkpoint_page(good);
    REQUIRE(std::holds_alternative<ntc_record>(result));
    CHECK(std::get<ntc_record>(result).cpus == 2);
    CHECK(std::string(std::get<ntc_record>(result).kernel_release) == "6.1.0-56-amd64");

    auto corrupt = good;
    corrupt[100] ^= 1;
    CHECK(why(corrupt).find("CRC") != std::string::npos);
    CHECK(why(checkpoint_page(NTC_STATE_WRITING)).find("not completed") != std::string::npos);
    auto area = good;
    std::memcpy(&area[NTC_OFF_SIG], NTC_AREA_SIG, 10);
    CHECK(why(area).find("without a checkpoint") != std::string::npos);
    auto stock = good;
    std::memset(stock.data(), 0, 1024);
    CHECK(why(stock).find("did not write") != std::string::npos);
    auto swap = good;
    std::memcpy(&swap[NTC_OFF_SIG], NTC_SWAP_SIG, 10);
    CHECK(why(swap).find("ordinary swap") != std::string::npos);
}

TEST_CASE("a VM holds its disks locked: a second VM and ntc-clone are refused until it lets go") {
    testsupport::TempDir dir;
    std::string path = dir / "d.img";
    ntc::DiskFile::create_sparse(path, 1 << 20);
    {
        ntc::DiskFile held = open_vm_disk(path, false);
        CHECK(held.size() == 1 << 20);
        CHECK_FALSE(held.read_only());
        CHECK_THROWS_WITH_AS(open_vm_disk(path, true),
                             ("disk " + path + " is in use (locked by another VM or by ntc-clone)").c_str(),
                             ntc::Error);
        CHECK_FALSE(ntc::DiskFile(path, ntc::DiskFile::Mode::read).try_lock_shared());  // as ntc-clone takes it
    }
    CHECK(open_vm_disk(path, true).read_only());
    // Errors name the file as the disk it is.
    CHECK_THROWS_WITH_AS(open_vm_disk(dir / "none.img", false),
                         doctest::Contains(("cannot open disk " + dir / "none.img" + ": ").c_str()), ntc::Error);
    CHECK_THROWS_WITH_AS(open_vm_disk("/dev/null", true), "disk /dev/null is neither a regular file nor a block device",
                         ntc::Error);
}

TEST_CASE("16550: transmit, receive, interrupts, loopback, as the 8250 driver probes it") {
    std::string out;
    bool irq = false;
    Serial s([&](uint8_t b) { out += char(b); }, [&](bool on) { irq = on; });
    s.write(7, 0x5a);
    CHECK(s.read(7) == 0x5a);
    s.write(3, 0x80);  // DLAB
    s.write(0, 1);
    s.write(1, 0);
    CHECK(s.read(0) == 1);
    s.write(3, 0x03);
    s.write(2, 0x07);
    CHECK((s.read(2) & 0xc0) == 0xc0);  // FIFOs enabled: 16550A
    s.write(0, 'h');
    CHECK(out == "h");
    CHECK((s.read(5) & 0x60) == 0x60);
    s.write(4, 0x08);  // OUT2
    s.write(1, 0x01);  // RX interrupt
    CHECK_FALSE(irq);
    s.receive('k');
    CHECK(irq);
    CHECK((s.read(5) & 1));
    CHECK(s.read(2) == (0x04 | 0xc0));
    CHECK(s.read(0) == 'k');
    CHECK_FALSE(irq);
    s.write(1, 0x02);  // THRE interrupt on enable
    CHECK(irq);
    CHECK((s.read(2) & 0x0f) == 0x02);
    CHECK_FALSE(irq);
    s.write(4, 0x18);  // loopback
    s.write(0, 'z');
    CHECK(out == "h");
    CHECK(s.read(0) == 'z');
}

// What the 8250 driver's interrupt handler does: read IIR and, while it
// names THRE, refill the 16-byte FIFO, for at most 512 rounds.
static int serve_8250_interrupt(Serial& s, std::string& to_send) {
    int rounds = 0;
    while (rounds < 512 && (s.read(2) & 0x0f) == 0x02) {
        rounds++;
        for (int i = 0; i < 16 && !to_send.empty(); i++) {
            s.write(0, uint8_t(to_send.front()));
            to_send.erase(0, 1);
        }
        if (to_send.empty()) s.write(1, 0x00);  // nothing left: THRE interrupts off
    }
    return rounds;
}

TEST_CASE("16550: one FIFO refill per THRE interrupt, and none lost") {
    std::string out;
    bool irq = false;
    Serial s([&](uint8_t b) { out += char(b); }, [&](bool on) { irq = on; });
    s.write(3, 0x03);
    s.write(2, 0x07);  // FIFOs on
    s.write(4, 0x08);  // OUT2

    std::string text;
    for (int i = 0; text.size() < 4096; i++) text += "line " + std::to_string(i) + "\n";
    std::string to_send = text;
    s.write(1, 0x02);  // the driver starts transmitting: THRE interrupts on
    int interrupts = 0;
    while (irq && interrupts < 1000) {
        interrupts++;
        // Raised at once, THRE would keep one handler call refilling until
        // the text ran out.
        CHECK(serve_8250_interrupt(s, to_send) == 1);
    }
    CHECK(to_send.empty());
    CHECK(out == text);
    CHECK(interrupts == int((text.size() + 15) / 16));
    CHECK_FALSE(irq);
}
