#pragma once
#include <stdexcept>
#include <string>

namespace ntc {

// An error a user can act on: what went wrong, and (after a newline) what to do.
class Error : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// Error for a failed system call: "<what>: <strerror(errno)>".
[[noreturn]] void throw_errno(const std::string &what);

} // namespace ntc
