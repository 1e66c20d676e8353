#pragma once
// What is left of the scratch overlay DISK2.loading of a resume in place
// (ntc::loading_overlay_path) when an ntc-vmm stopped.
#include <string>

namespace ntc::vmm {

// Deals with a DISK.loading left by an ntc-vmm that stopped, under the
// disk's lock; does nothing when there is none.  Stopped while loading, it
// held the writes of a machine whose memory is gone over a disk that still
// holds its checkpoint: it is removed.  Stopped while merging
// (NTC_OVERLAY_FLAG_MERGING), the disk is part written: the merge is
// finished (the image retired, every sector written in, synced) and then
// the overlay removed.  Says what it did on stderr.  Throws ntc::Error
// (the disk in use, an overlay it cannot read), changing nothing.
void settle_loading_overlay(const std::string& disk);

}  // namespace ntc::vmm
