#include "error.h"

#include <cerrno>
#include <cstring>

namespace ntc::vmm {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace ntc::vmm
