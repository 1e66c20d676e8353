#include "error.h"

#include <cerrno>
#include <cstring>

namespace ntcvmm {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace ntcvmm
