#pragma once
// Two kinds of failure, handled differently: a UserError ends the VMM with a
// plain message; a GuestError is a misbehaving guest and only ever puts the
// device it talked to into its error state.
#include <stdexcept>
#include <string>

namespace ntc::vmm {

struct UserError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct GuestError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// strerror(errno) appended, for failed system calls.
std::string errno_text(const std::string& what);

}  // namespace ntc::vmm
