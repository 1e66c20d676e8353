#include "loading_overlay.h"

#include <unistd.h>

#include <cstdio>
#include <ntc/error.h>
#include <ntc/overlay.h>
#include <optional>

#include "checkpoint.h"
#include "guest_disk.h"
#include "image_restore.h"

namespace ntc::vmm {

void settle_loading_overlay(const std::string& disk) {
    const std::string path = loading_overlay_path(disk);
    if (::access(path.c_str(), F_OK) != 0) return;
    // Held while settling: a running resume holds it too, and its overlay is not left over.
    ntc::DiskFile locked = open_vm_disk(disk, false);
    std::optional<ntc::Overlay> overlay;
    try {
        overlay.emplace(ntc::Overlay::open(path, ntc::DiskFile::Mode::read));
    } catch (const ntc::Error& e) {
        throw ntc::Error(std::string(e.what()) + "\n" + path + " was left by an ntc-vmm resume of " + disk +
                         " that stopped; whether it stopped while writing it into the disk cannot be told, so "
                         "neither is touched.  Inspect them, then remove " +
                         path + ".");
    }
    if (!overlay->merging()) {
        if (::unlink(path.c_str()) != 0) ntc::throw_errno("cannot remove " + path);
        std::fprintf(stderr,
                     "ntc-vmm: removed %s, left by a resume that did not finish loading; %s keeps its "
                     "checkpoint\n",
                     path.c_str(), disk.c_str());
        return;
    }
    // The resumed machine's memory is gone, but its disk was half written:
    // what is finished is that disk as it stopped, as after a power cut.
    std::optional<Checkpoint> checkpoint;
    try {
        checkpoint = find_checkpoint(disk);
    } catch (const ntc::Error&) {
        // Retired before it stopped.
    }
    if (checkpoint) retire_image({disk, checkpoint->partition_offset, checkpoint->partition_bytes}, nullptr);
    overlay->copy_into(locked);
    if (::unlink(path.c_str()) != 0) ntc::throw_errno("cannot remove " + path);
    std::fprintf(stderr,
                 "ntc-vmm: finished writing %s into %s, which a resume stopped halfway: the disk now holds "
                 "what that machine wrote until it stopped, and no checkpoint\n",
                 path.c_str(), disk.c_str());
}

}  // namespace ntc::vmm
