#pragma once
#include <stdexcept>
#include <string>

namespace ntc {

// The one error type of NTC's host programs (ntc-clone, ntc-info, ntc-vmm):
// an error a user can act on, what went wrong and (after a newline) what to
// do.  Each program's main prints its text after the program's name and
// exits with its error status; kinds that are handled differently derive
// from it (ntc::vmm::GuestError).
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "<what>: <strerror(errno)>", for a failed system call.
std::string errno_text(const std::string& what);

// Throws Error(errno_text(what)).
[[noreturn]] void throw_errno(const std::string& what);

}  // namespace ntc
