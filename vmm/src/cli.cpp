#include "cli.h"

#include <CLI/CLI.hpp>
#include <ntc/error.h>

#include "instance_record.h"

namespace ntc::vmm {

uint64_t parse_size(const std::string& text) {
    size_t used = 0;
    uint64_t value;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception&) {
        throw ntc::Error("bad size '" + text + "'");
    }
    std::string suffix = text.substr(used);
    unsigned shift;
    if (suffix.empty() || suffix == "M" || suffix == "m" || suffix == "MiB") shift = 20;
    else if (suffix == "G" || suffix == "g" || suffix == "GiB") shift = 30;
    else if (suffix == "K" || suffix == "k" || suffix == "KiB") shift = 10;
    else if (suffix == "T" || suffix == "t" || suffix == "TiB") shift = 40;
    else throw ntc::Error("bad size suffix in '" + text + "' (use K, M, G or T)");
    if (value > (UINT64_MAX >> shift)) throw ntc::Error("size '" + text + "' is too large");
    return value << shift;
}

NetSpec parse_net(const std::string& net, const std::optional<std::string>& mac) {
    if (!net.starts_with("tap:") || net.size() == 4)
        throw ntc::Error("bad --net '" + net + "' (want tap:NAME, NAME an existing TAP interface)");
    return {net.substr(4), mac ? std::optional(parse_mac(*mac)) : std::nullopt};
}

namespace {
constexpr const char* kCrashDumpHelp =
    "if the guest triple-faults, or on SIGQUIT, write its RAM to this file (its kernel log is plain text there)";
}  // namespace

Command parse_command_line(int argc, const char* const* argv) {
    CLI::App app{"ntc-vmm: a small KVM virtual machine monitor for NTC disks"};
    app.require_subcommand(1);

    RunCommand run;
    std::string mem = "512M";
    std::string first_disk;
    std::vector<std::string> more_disks;
    auto* run_cmd = app.add_subcommand(
        "run", "boot a guest disk (kernel, initrd and command line from its BLS entry, GRUB menu or /vmlinuz)");
    run_cmd->add_option("disk", first_disk, "first disk (/dev/vda), whose kernel is booted")->required();
    run_cmd->add_option("--disk", more_disks, "another disk, in order: /dev/vdb, /dev/vdc, ...");
    run_cmd->add_option("--ro-disk", run.read_only_disks, "another disk, read-only, after the --disk ones");
    run_cmd->add_option("--mem", mem, "guest RAM, e.g. 512M or 2G")->capture_default_str();
    run_cmd->add_option("--cpus", run.cpus, "vCPUs")->capture_default_str();
    run_cmd->add_option("--kernel", run.kernel, "bzImage instead of the kernel found on the disk");
    run_cmd->add_option("--initrd", run.initrd, "initramfs instead of the one found on the disk");
    run_cmd->add_option("--append", run.append, "kernel command line instead of the one found on the disk");
    run_cmd->add_option("--console-log", run.console_log, "write COM1 to this file instead of the terminal");
    run_cmd->add_option("--crash-dump", run.crash_dump, kCrashDumpHelp);
    // One network card, after the disks; the same options on resume.
    std::optional<std::string> net, mac;
    auto add_net_options = [&](CLI::App* cmd) {
        auto* net_opt = cmd->add_option("--net", net, "virtio-net card on a host TAP interface: tap:NAME");
        cmd->add_option("--mac", mac, "the card's MAC (default: derived from the first disk's partition table)")
            ->needs(net_opt);
    };
    add_net_options(run_cmd);

    ResumeCommand resume;
    auto* resume_cmd = app.add_subcommand("resume", "resume disk 2's NTC checkpoint");
    resume_cmd->add_option("disk", resume.disk, "disk 2, holding the checkpoint")->required();
    resume_cmd->add_option("--disk", resume.next,
                           "disk to put where disk 2 was (default: a new sparse DISK.next, or OVERLAY.next, of "
                           "disk 2's size)");
    auto* overlay_opt = resume_cmd->add_option(
        "--overlay", resume.overlay,
        "resume an instance: disk 2 stays unchanged and may be shared by other instances at once; this new "
        "file takes the instance's writes (ntc-clone turns it into a plain disk)");
    resume_cmd
        ->add_flag("--throwaway", resume.throwaway,
                   "resume an instance on a temporary overlay (and second disk) in $TMPDIR or /var/tmp, "
                   "removed when the VM ends")
        ->excludes(overlay_opt);
    auto* boot_kernel_opt =
        resume_cmd->add_flag("--boot-kernel", resume.boot_kernel,
                             "boot disk 2's kernel and let it load the image (resume=), as a PC would; "
                             "slower, but reads compressed images too");
    resume_cmd
        ->add_flag("--load-first", resume.load_first,
                   "read and check the whole image before the guest runs (by default the guest runs at once, its "
                   "pages read on first touch and in the background, its writes kept beside disk 2 until the "
                   "image is in and checked); slower, more so with more memory")
        ->excludes(boot_kernel_opt);
    resume_cmd->add_option("--console-log", resume.console_log, "write COM1 to this file instead of the terminal");
    resume_cmd->add_option("--crash-dump", resume.crash_dump, kCrashDumpHelp);
    add_net_options(resume_cmd);
    for (auto [cmd, name] : {std::pair{run_cmd, &run.instance_name}, std::pair{resume_cmd, &resume.instance_name}})
        cmd->add_option("--name", *name,
                        "this machine's instance name, which the guest can read (ntc.ko reports it; "
                        "letters, digits, '.', '_', '-', up to 63)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return ExitNow{app.exit(e) == 0 ? 0 : kExitError};  // --help: 0; bad arguments: 1, not CLI11's code
    }
    std::optional<NetSpec> net_spec;
    if (net) net_spec = parse_net(*net, mac);
    check_instance_name(*resume_cmd ? resume.instance_name : run.instance_name);
    if (*resume_cmd) {
        resume.net = net_spec;
        return resume;
    }
    run.net = net_spec;
    run.disks.push_back(first_disk);
    run.disks.insert(run.disks.end(), more_disks.begin(), more_disks.end());
    run.ram_bytes = parse_size(mem);
    if (run.initrd && !run.kernel) throw ntc::Error("--initrd needs --kernel");
    return run;
}

}  // namespace ntc::vmm
