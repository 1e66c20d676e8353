#include <cstdio>
#include <fstream>
#include <iterator>
#include <ntc/error.h>

#include "cli.h"
#include "kvm.h"
#include "loading_overlay.h"
#include "machine.h"
#include "resume.h"

using namespace ntc::vmm;

namespace {

std::vector<uint8_t> read_host_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ntc::Error(std::string(what) + " " + path + " not found or not readable");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

MachineConfig run_config(const RunCommand& run) {
    MachineConfig config;
    config.ram_bytes = run.ram_bytes;
    config.cpus = run.cpus;
    config.console_log = run.console_log;
    config.instance_name = run.instance_name;
    config.crash_dump = run.crash_dump;
    config.net = run.net;
    for (const auto& d : run.disks) config.disks.push_back({d, false});
    for (const auto& d : run.read_only_disks) config.disks.push_back({d, true});
    check_machine_config(config);
    if (run.kernel) {
        config.boot.kernel = read_host_file(*run.kernel, "kernel");
        if (run.initrd) config.boot.initrd = read_host_file(*run.initrd, "initrd");
    }
    // A resume that stopped while loading may have left a disk half merged:
    // settled once the command is known good, before the disk is read.
    for (const auto& d : run.disks) settle_loading_overlay(d);
    if (!run.kernel) {
        config.boot = load_boot_files(run.disks.front(), std::nullopt);
        std::fprintf(stderr, "ntc-vmm: booting %s\n", config.boot.source.c_str());
    }
    if (run.append) config.boot.cmdline = *run.append;
    return config;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Command command = parse_command_line(argc, argv);
        if (auto* exit_now = std::get_if<ExitNow>(&command)) return exit_now->status;
        if (auto why = kvm_unusable_reason()) throw ntc::Error(*why);
        if (auto* resume = std::get_if<ResumeCommand>(&command)) return run_resume(resume_plan(*resume));
        return run_machine(run_config(std::get<RunCommand>(command)));
    } catch (const ntc::Error& e) {
        std::fprintf(stderr, "ntc-vmm: %s\n", e.what());
        return kExitError;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ntc-vmm: internal error: %s\n", e.what());
        return kExitError;
    }
}
