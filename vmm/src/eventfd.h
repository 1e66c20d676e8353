#pragma once
// Eventfds as the VMM's threads use them: one thread signals, another polls
// and takes what was signalled.  Non-blocking and close-on-exec.
#include <string>

#include "kvm.h"

namespace ntc::vmm {

// Throws ntc::Error naming `purpose` when none can be made.
Fd make_eventfd(const std::string& purpose);
void signal_eventfd(int fd);
// Whether the eventfd was signalled; taking clears it.
bool take_eventfd(int fd);

}  // namespace ntc::vmm
