#pragma once
// /etc/fstab of a guest disk.
#include <optional>
#include <string>
#include <string_view>

namespace ntc::vmm {

// The device of the first line that mounts "/", as written there (UUID=...,
// LABEL=..., /dev/vda1): the kernel's root= takes the same forms.  nullopt
// when no line does.
std::optional<std::string> fstab_root(std::string_view text);

}  // namespace ntc::vmm
