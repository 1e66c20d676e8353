#pragma once
// `ntc-vmm resume`: the machine that continues a checkpoint, built from what
// disk 2 records about the machine that took it.
#include "cli.h"
#include "machine.h"

namespace ntc::vmm {

struct ResumePlan {
    MachineConfig config;
    std::vector<std::string> created_files;  // the new DISK2.next, the new overlay
    std::optional<std::string> scratch_dir;  // --throwaway's, holding its files
};

// Checks the checkpoint against the machine to build, and makes the files it
// needs.  Throws ntc::Error, leaving no file made.
ResumePlan resume_plan(const ResumeCommand& command);

// Runs the plan's machine.  When the machine cannot start (a damaged image,
// say), the files made for it are removed again: a refusal leaves nothing.
// A throwaway instance's files go when the VM ends.
int run_resume(const ResumePlan& plan);

// The machine RAM size for a record's ram_bytes.  ntc.ko records the
// kernel's count of physical pages, which is the machine's RAM less what the
// firmware map keeps for itself below 1 MiB; machine sizes are whole 2 MiB
// units, so rounding up recovers the size.
uint64_t machine_ram_for_record(uint64_t ram_bytes);

// The boot entry's options with the resume device set to `partition` of the
// first disk.
std::string resume_cmdline(const std::string& options, unsigned partition);

}  // namespace ntc::vmm
