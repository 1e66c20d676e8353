#include "resume.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ntc/error.h>
#include <sstream>
#include <utility>

#include "checkpoint.h"
#include "guest_disk.h"
#include "loading_overlay.h"
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

namespace {

void remove_files(const std::vector<std::string>& files, const std::optional<std::string>& dir) {
    for (const auto& f : files) ::unlink(f.c_str());
    if (dir) ::rmdir(dir->c_str());
}

// Removes what it holds unless released: a refused resume leaves nothing.
struct MadeFiles {
    std::vector<std::string> files;
    std::optional<std::string> dir;
    ~MadeFiles() { remove_files(files, dir); }
};

std::string make_scratch_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/var/tmp") + "/ntc-instance-XXXXXX";
    if (!::mkdtemp(pattern.data()))
        ntc::throw_errno("cannot make a directory for a throwaway instance (" + pattern + ")");
    return pattern;
}

void create_next_disk(const std::string& path, uint64_t bytes) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) ntc::throw_errno("cannot create " + path + " as the second disk (pass --disk to choose one)");
    bool sized = ::ftruncate(fd, off_t(bytes)) == 0;
    // The message is made before close() and unlink() can change errno.
    std::string why = sized ? "" : ntc::errno_text("cannot size " + path);
    ::close(fd);
    if (!sized) {
        ::unlink(path.c_str());
        throw ntc::Error(why);
    }
}

}  // namespace

uint64_t machine_ram_for_record(uint64_t ram_bytes) {
    constexpr uint64_t kUnit = 2ull << 20;
    return (ram_bytes + kUnit - 1) / kUnit * kUnit;
}

ResumePlan resume_plan(const ResumeCommand& command) {
    if (command.boot_kernel && (command.overlay || command.throwaway))
        throw ntc::Error("--boot-kernel cannot start an instance: no new VM generation ID reaches the kernel it "
                         "restores, so every instance of the checkpoint would hand out the same random bytes.\n"
                         "Resume instances without --boot-kernel.");
    // A resume that stopped while loading may have left disk 2 half merged.
    settle_loading_overlay(command.disk);
    Checkpoint checkpoint = find_checkpoint(command.disk);
    const ntc_record& r = checkpoint.record;

    MachineConfig config;
    config.ram_bytes = machine_ram_for_record(r.ram_bytes);
    config.cpus = r.cpus;
    config.console_log = command.console_log;
    config.instance_name = command.instance_name;
    config.crash_dump = command.crash_dump;
    config.net = command.net;
    // Without a new identity (--name, --mac) the machine goes on as the one
    // that took the checkpoint, with its card's MAC.
    if (config.net && !config.net->mac && config.instance_name.empty()) config.net->mac = recorded_card_mac(r);
    if (command.boot_kernel) {
        config.boot = load_boot_files(command.disk, std::string(r.kernel_release));
        config.boot.cmdline = resume_cmdline(config.boot.cmdline, checkpoint.swap_partition);
    } else {
        config.image = ImageLocation{command.disk, checkpoint.partition_offset, checkpoint.partition_bytes};
        config.lazy_image = !command.load_first;
    }

    MadeFiles made;
    std::optional<std::string> overlay = command.overlay;
    if (command.throwaway) {
        made.dir = make_scratch_dir();
        overlay = *made.dir + "/instance.cow";
    }
    std::string next = command.next.value_or(overlay.value_or(command.disk) + ".next");
    config.disks = {{command.disk, false, overlay}, {next, false, std::nullopt}};
    // The restored drivers expect their devices where they left them.
    if (auto differences = machine_differences(r, config); !differences.empty()) {
        std::string text = "the checkpoint was taken on another machine than this resume would build:";
        for (const auto& d : differences) text += "\n  " + d;
        throw ntc::Error(text + "\nResume it with the options it ran with (--net, --mac).");
    }
    // A disk in use is refused before anything is created beside it.
    if (overlay) {
        // A reused overlay would hold another instance's writes over this
        // checkpoint, its image already retired.
        if (::access(overlay->c_str(), F_OK) == 0)
            throw ntc::Error("overlay " + *overlay + " exists: an instance starts on a new overlay.\n" +
                             "Give a new file's name, or turn that instance into a plain disk with ntc-clone.");
        create_vm_overlay(*overlay, command.disk);
        made.files.push_back(*overlay);
    } else {
        open_vm_disk(command.disk, false);
    }
    if (!command.next) {
        create_next_disk(next, checkpoint.disk_bytes);
        made.files.push_back(next);
    }
    ResumePlan plan{config, std::exchange(made.files, {}), std::exchange(made.dir, std::nullopt)};
    if (command.throwaway)
        std::fprintf(stderr, "ntc-vmm: a throwaway instance: its writes go to %s, removed when the VM ends\n",
                     overlay->c_str());
    return plan;
}

int run_resume(const ResumePlan& plan) {
    int status;
    try {
        status = run_machine(plan.config);
    } catch (const ntc::Error&) {
        remove_files(plan.created_files, plan.scratch_dir);
        throw;
    }
    if (plan.scratch_dir) remove_files(plan.created_files, plan.scratch_dir);
    return status;
}

}  // namespace ntc::vmm
