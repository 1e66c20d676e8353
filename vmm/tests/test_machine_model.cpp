#include <doctest/doctest.h>
#include <support.h>

#include <cstring>
#include <filesystem>
#include <ntc/error.h>
#include <ntc/overlay.h>
#include <ntc/swap_area.h>

#include "layout.h"
#include "machine_model.h"
#include "resume.h"

using namespace ntc::vmm;

namespace {

constexpr MacAddress kMac{0x02, 0x4e, 0x54, 0x01, 0x02, 0x03};

MachineConfig machine(bool with_net, MacAddress mac = kMac) {
    MachineConfig config;
    config.cpus = 2;
    config.disks = {{"disk2.img", false}, {"disk2.img.next", false}};
    if (with_net) config.net = NetSpec{"tap0", mac};
    return config;
}

// The record ntc.ko writes when the checkpointed kernel ran on `config`.
ntc_record record_of(const MachineConfig& config) {
    ntc_record r{};
    r.cpus = config.cpus;
    std::memcpy(r.acpi_oem_id, layout::kAcpiOemId, sizeof r.acpi_oem_id);
    std::memcpy(r.acpi_oem_table_id, layout::kAcpiOemTableId, sizeof r.acpi_oem_table_id);
    r.acpi_oem_revision = layout::kMachineModel;
    for (const auto& f : machine_functions(config)) {
        ntc_machine_device& d = r.devices[r.device_count++];
        d.devfn = f.devfn;
        d.vendor = f.vendor;
        d.device = f.device;
        std::memcpy(d.mac, f.mac.data(), 6);
    }
    return r;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

}  // namespace

TEST_CASE("ntc-vmm's machine: host bridge, a disk per slot from 00:01.0, then the card") {
    auto functions = machine_functions(machine(true));
    REQUIRE(functions.size() == 4);
    CHECK(functions[0].devfn == 0);
    CHECK(functions[0].vendor == layout::kHostBridgeVendor);
    CHECK(functions[1].devfn == (1 << 3));
    CHECK(functions[2].device == layout::kVirtioPciDeviceBase + 2);
    CHECK(functions[3].devfn == (3 << 3));
    CHECK(functions[3].device == layout::kVirtioPciDeviceBase + 1);
    CHECK(functions[3].mac == kMac);
}

TEST_CASE("a checkpoint resumes only on the machine it was taken on") {
    MachineConfig office = machine(true);
    ntc_record r = record_of(office);
    CHECK(machine_differences(r, office).empty());

    SUBCASE("the card is missing") {
        auto d = joined(machine_differences(r, machine(false)));
        CHECK(d.find("00:03.0 1af4:1041 (network card, MAC 02:4e:54:01:02:03), which this machine lacks") !=
              std::string::npos);
    }
    SUBCASE("another MAC is no difference: ntc.ko gives the card the instance's") {
        CHECK(machine_differences(r, machine(true, {0x02, 0, 0, 0, 0, 9})).empty());
        CHECK(recorded_card_mac(r) == kMac);
        CHECK_FALSE(recorded_card_mac(record_of(machine(false))));
    }
    SUBCASE("a card the checkpointed kernel never saw") {
        auto d = joined(machine_differences(record_of(machine(false)), office));
        CHECK(d.find("this machine adds 00:03.0") != std::string::npos);
    }
    SUBCASE("another number of vCPUs") {
        MachineConfig more = office;
        more.cpus = 4;
        CHECK(joined(machine_differences(r, more)).find("it had 2 vCPUs, this machine 4") != std::string::npos);
    }
    SUBCASE("taken on QEMU, not ntc-vmm") {
        std::memcpy(r.acpi_oem_id, "BOCHS ", 6);
        CHECK(joined(machine_differences(r, office)).find("firmware 'BOCHS '") != std::string::npos);
    }
    SUBCASE("another machine model of ntc-vmm") {
        r.acpi_oem_revision = layout::kMachineModel + 1;
        CHECK(joined(machine_differences(r, office)).find("machine model") != std::string::npos);
    }
    SUBCASE("a record from before the machine fields is not refused for them") {
        ntc_record old{};
        old.cpus = 2;
        CHECK(machine_differences(old, machine(false)).empty());
    }
}

namespace {

// A disk 2 in `dir` with a checkpoint taken on ntc-vmm's machine with a
// network card (kMac).
testsupport::TestDisk checkpointed_disk(const testsupport::TempDir& dir) {
    testsupport::make_tree(dir / "tree", 1);
    auto disk = testsupport::make_gpt_disk(dir, "disk.img", dir / "tree");
    auto page = testsupport::read_bytes(disk.path, disk.swap_offset, NTC_PAGE_SIZE);
    ntc::Page area = ntc::make_area_page(ntc::PageView(page.data(), NTC_PAGE_SIZE), ntc::AreaSource{});
    testsupport::write_bytes(disk.path, disk.swap_offset, {area.begin(), area.end()});
    testsupport::write_fake_checkpoint(disk.path, disk.swap_offset, 4);

    // The checkpointed machine had a network card; this resume gives none.
    page = testsupport::read_bytes(disk.path, disk.swap_offset, NTC_PAGE_SIZE);
    ntc_record rec;
    std::memcpy(&rec, page.data(), sizeof rec);
    MachineConfig office = machine(true);
    office.disks = {{disk.path, false}, {disk.path + ".next", false}};
    ntc_record machine_part = record_of(office);
    std::memcpy(rec.acpi_oem_id, machine_part.acpi_oem_id, sizeof rec.acpi_oem_id);
    std::memcpy(rec.acpi_oem_table_id, machine_part.acpi_oem_table_id, sizeof rec.acpi_oem_table_id);
    rec.acpi_oem_revision = machine_part.acpi_oem_revision;
    rec.device_count = machine_part.device_count;
    std::memcpy(rec.devices, machine_part.devices, sizeof rec.devices);
    ntc::seal_record(rec);
    std::memcpy(page.data(), &rec, sizeof rec);
    testsupport::write_bytes(disk.path, disk.swap_offset, page);
    return disk;
}

ResumeCommand resume_command(const std::string& disk, std::optional<NetSpec> net) {
    ResumeCommand command;
    command.disk = disk;
    command.net = std::move(net);
    return command;
}

}  // namespace

TEST_CASE("resume refuses another machine before it writes anything") {
    testsupport::TempDir dir;
    auto disk = checkpointed_disk(dir);
    auto before = testsupport::file_digest(disk.path);

    ResumeCommand command = resume_command(disk.path, std::nullopt);
    try {
        resume_plan(command);
        FAIL("a resume without the card was not refused");
    } catch (const ntc::Error& e) {
        std::string why = e.what();
        CHECK(why.find("another machine") != std::string::npos);
        CHECK(why.find("network card") != std::string::npos);
        CHECK(why.find("--net") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(disk.path + ".next"));
    CHECK(testsupport::file_digest(disk.path) == before);

    command.net = NetSpec{"tap0", kMac};
    ResumePlan plan = resume_plan(command);  // the same machine: accepted
    CHECK(plan.config.net.has_value());
    std::filesystem::remove(disk.path + ".next");
}

TEST_CASE("an instance's resume makes a new overlay and its second disk, and leaves disk 2 as it was") {
    testsupport::TempDir dir;
    auto disk = checkpointed_disk(dir);
    auto before = testsupport::file_digest(disk.path);
    ResumeCommand command = resume_command(disk.path, NetSpec{"tap0", kMac});
    command.overlay = dir / "a.cow";

    ResumePlan plan = resume_plan(command);
    REQUIRE(plan.config.disks.size() == 2);
    CHECK(plan.config.disks[0].path == disk.path);
    CHECK(plan.config.disks[0].overlay == dir / "a.cow");
    CHECK(plan.config.disks[1].path == dir / "a.cow.next");
    CHECK(plan.created_files == std::vector<std::string>{dir / "a.cow", dir / "a.cow.next"});
    CHECK(ntc::Overlay::open(dir / "a.cow", ntc::DiskFile::Mode::read).sectors_in_overlay() == 0);
    CHECK(testsupport::file_digest(disk.path) == before);

    SUBCASE("an overlay that exists is refused and kept") {
        auto digest = testsupport::file_digest(dir / "a.cow");
        command.next = dir / "other.next";
        CHECK_THROWS_WITH_AS(resume_plan(command), doctest::Contains("exists"), ntc::Error);
        CHECK(testsupport::file_digest(dir / "a.cow") == digest);
        CHECK_FALSE(std::filesystem::exists(dir / "other.next"));
    }
    SUBCASE("--boot-kernel is refused: the restored kernel would not reseed its RNG") {
        command.overlay = dir / "c.cow";
        command.boot_kernel = true;
        CHECK_THROWS_WITH_AS(resume_plan(command), doctest::Contains("same random bytes"), ntc::Error);
        CHECK_FALSE(std::filesystem::exists(dir / "c.cow"));
    }
    SUBCASE("a disk 2 that a VM holds in place is refused, and nothing is made") {
        ntc::DiskFile in_place(disk.path, ntc::DiskFile::Mode::read_write);
        REQUIRE(in_place.try_lock_exclusive());
        command.overlay = dir / "b.cow";
        CHECK_THROWS_WITH_AS(resume_plan(command), doctest::Contains("in use"), ntc::Error);
        CHECK_FALSE(std::filesystem::exists(dir / "b.cow"));
        CHECK_FALSE(std::filesystem::exists(dir / "b.cow.next"));
    }
    SUBCASE("a throwaway instance's files are made in a directory of their own under $TMPDIR") {
        std::filesystem::create_directory(dir / "tmp");
        ::setenv("TMPDIR", (dir / "tmp").c_str(), 1);
        command.overlay.reset();
        command.throwaway = true;
        ResumePlan throwaway = resume_plan(command);
        ::unsetenv("TMPDIR");
        REQUIRE(throwaway.scratch_dir);
        CHECK(throwaway.scratch_dir->starts_with(dir / "tmp/ntc-instance-"));
        CHECK(throwaway.config.disks[0].overlay == *throwaway.scratch_dir + "/instance.cow");
        CHECK(throwaway.config.disks[1].path == *throwaway.scratch_dir + "/instance.cow.next");
        CHECK(std::filesystem::exists(*throwaway.scratch_dir + "/instance.cow"));
    }
}

TEST_CASE("an instance's card has a MAC of its own; without a new name a resume keeps the recorded one") {
    testsupport::TempDir dir;
    auto disk = checkpointed_disk(dir);
    MachineConfig config;
    config.disks = {{disk.path, false}};
    config.net = NetSpec{"tap0", std::nullopt};
    MacAddress plain = card_mac(config);
    config.instance_name = "a";
    MacAddress a = card_mac(config);
    config.instance_name = "b";
    MacAddress b = card_mac(config);
    CHECK(plain != a);
    CHECK(a != b);
    CHECK(card_mac(config) == b);
    config.net->mac = kMac;
    CHECK(card_mac(config) == kMac);

    ResumeCommand command = resume_command(disk.path, NetSpec{"tap0", std::nullopt});
    command.next = dir / "next.img";
    CHECK(resume_plan(command).config.net->mac == kMac);  // the checkpointed machine's
    command.instance_name = "b";
    command.overlay = dir / "b.cow";
    ResumePlan instance = resume_plan(command);
    CHECK_FALSE(instance.config.net->mac);
    CHECK(card_mac(instance.config) == b);
}
