#include "fstab.h"

#include <sstream>

namespace ntc::vmm {

std::optional<std::string> fstab_root(std::string_view text) {
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string device, mount_point;
        if (!(fields >> device >> mount_point) || device.starts_with('#')) continue;
        if (mount_point == "/") return device;
    }
    return std::nullopt;
}

}  // namespace ntc::vmm
