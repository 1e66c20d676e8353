#pragma once
// GRUB's menu in grub.cfg, as Debian's update-grub writes it: the menu
// entries (also those in submenus) and the one GRUB boots by default.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ntc::vmm {

struct GrubEntry {
    // A menu item: its place among the items of its menu, its title, its --id.
    struct Item {
        unsigned index = 0;
        std::string title;
        std::string id;
        bool operator==(const Item&) const = default;
    };
    std::vector<Item> path;  // the enclosing submenus, outermost first, then the entry
    std::string linux;       // kernel, relative to the filesystem that holds grub.cfg
    std::string args;
    std::vector<std::string> initrd;
};

struct GrubConfig {
    std::vector<GrubEntry> entries;  // every menuentry in menu order, submenus' ones in place
    // The value of `default` GRUB would boot with: an index, a title, an id,
    // or a path "submenu>entry" of those; empty when unset.
    std::string default_entry;
};

// Parses grub.cfg.  Quotes are removed and $var/${var} expanded from the
// top-level `set var=value` lines and from `grubenv` (the grubenv file next
// to grub.cfg, or empty); an unknown variable expands to nothing.  Only
// menuentry, submenu, linux, initrd and set mean anything here; other
// commands, conditions included, are skipped.  `default` is the last
// `set default=` outside menu entries and functions that is not empty,
// whether or not it is inside an if: update-grub puts it in
// `if [ "${next_entry}" ]; then set default="${next_entry}" else ... fi`,
// and next_entry (grub-reboot's boot-once choice) is not followed, because
// GRUB clears it when it boots it and this reader cannot.
GrubConfig parse_grub_config(std::string_view text, std::string_view grubenv);

// The entry to boot: the default one, or the first entry of the menu (item 0)
// when the default names none, as GRUB does.  With a release, that entry if
// its kernel is the release's (kernel_is_release), else the first entry in
// the menu whose kernel is.  nullopt when the entry found has no linux line.
std::optional<GrubEntry> choose_grub_entry(const GrubConfig& config, const std::optional<std::string>& release);

}  // namespace ntc::vmm
