#include "ntc/error.h"

#include <cerrno>
#include <cstring>

namespace ntc {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

void throw_errno(const std::string& what) { throw Error(errno_text(what)); }

}  // namespace ntc
