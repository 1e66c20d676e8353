#include "resume.h"

#include <fcntl.h>
#include <unistd.h>

#include <ntc/error.h>
#include <sstream>

#include "checkpoint.h"
#include "guest_disk.h"
#include "machine_model.h"

namespace ntc::vmm {

std::string resume_cmdline(const std::string& options, unsigned partition) {
    std::istringstream in(options);
    std::string word, out;
    while (in >> word) {
        if (word.starts_with("resume=") || word == "noresume") continue;
        out += word + " ";
    }
    return out + "resume=/dev/vda" + std::to_string(partition);
}

uint64_t machine_ram_for_record(uint64_t ram_bytes) {
    constexpr uint64_t kUnit = 2ull << 20;
    return (ram_bytes + kUnit - 1) / kUnit * kUnit;
}

ResumePlan resume_plan(const ResumeCommand& command) {
    Checkpoint checkpoint = find_checkpoint(command.disk);
    const ntc_record& r = checkpoint.record;

    MachineConfig config;
    config.ram_bytes = machine_ram_for_record(r.ram_bytes);
    config.cpus = r.cpus;
    config.console_log = command.console_log;
    config.instance_name = command.instance_name;
    config.crash_dump = command.crash_dump;
    config.net = command.net;
    if (command.boot_kernel) {
        config.boot = load_boot_files(command.disk, std::string(r.kernel_release));
        config.boot.cmdline = resume_cmdline(config.boot.cmdline, checkpoint.swap_partition);
    } else {
        config.image = ImageLocation{command.disk, checkpoint.partition_offset, checkpoint.partition_bytes};
    }

    std::string next = command.next.value_or(command.disk + ".next");
    config.disks = {{command.disk, false}, {next, false}};
    // The restored drivers expect their devices where they left them.
    if (auto differences = machine_differences(r, config); !differences.empty()) {
        std::string text = "the checkpoint was taken on another machine than this resume would build:";
        for (const auto& d : differences) text += "\n  " + d;
        throw ntc::Error(text + "\nResume it with the options it ran with (--net, --mac).");
    }
    // A disk in use is refused before anything is created beside it.
    open_vm_disk(command.disk, false);
    if (!command.next) {
        int nfd = ::open(next.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (nfd < 0) ntc::throw_errno("cannot create " + next + " as the second disk (pass --disk to choose one)");
        bool sized = ::ftruncate(nfd, off_t(checkpoint.disk_bytes)) == 0;
        // The message is made before close() and unlink() can change errno.
        std::string why = sized ? "" : ntc::errno_text("cannot size " + next);
        ::close(nfd);
        if (!sized) {
            ::unlink(next.c_str());
            throw ntc::Error(why);
        }
    }
    return {config, command.next ? std::nullopt : std::optional(next)};
}

int run_resume(const ResumePlan& plan) {
    try {
        return run_machine(plan.config);
    } catch (const ntc::Error&) {
        if (plan.created_disk) ::unlink(plan.created_disk->c_str());
        throw;
    }
}

}  // namespace ntc::vmm
