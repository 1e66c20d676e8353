#pragma once
// `ntc-vmm resume`: the machine that continues a checkpoint, built from what
// disk 2 records about the machine that took it.
#include "cli.h"
#include "machine.h"

namespace ntcvmm {

MachineConfig resume_config(const ResumeCommand& command);

// The boot entry's options with the resume device set to `partition` of the
// first disk.
std::string resume_cmdline(const std::string& options, unsigned partition);

}  // namespace ntcvmm
