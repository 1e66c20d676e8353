#!/usr/bin/env python3
"""Level 2: a guest without swap whose memory is mostly in use checkpoints
(issue 17's first acceptance line, on the in-guest path).

A 1 GiB guest runs with its swap partition off (swapoff -a) and 870 MiB,
85 % of its RAM, held by ntc-memhog (each page's content its own).  The
snapshot's copy cannot fit beside that, and no reclaim can make room
without swap: ntc.ko refused such a checkpoint (guest.checkpoint_nomem still
checks the refusal where the swap partition is too small to help).  Now it
makes disk 1's swap partition, the snapshot area's twin, swap for the
checkpoint (Documentation/kmod.md, step 4):

  * the checkpoint succeeds and says so (swap_borrowed: 1); when it
    returns, disk 1 is without swap again and the hog reads every page
    back intact; ntc-info --check accepts disk 2;
  * guest B resumes it from disk 2: the counter goes on, its kernel turns
    the borrowed swap off too, the hog reads every page back intact, and
    e2fsck finds disk 2's filesystems clean.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 1024
CPUS = 2
HOG_MIB = 870
# What the reclaim pushes out (about 500 MiB) and the image beside it.
SWAP_MIB = 1536

check = ntclab.check


def swap_devices(g, timeout=600):
    """The devices /proc/swaps lists, once it lists none or after timeout s."""
    _, out = g.sh(f"for i in $(seq {timeout}); do grep -q '^/dev/' /proc/swaps || break; sleep 1; done; "
                  "grep '^/dev/' /proc/swaps; true", timeout + 60)
    return [line.split()[0] for line in out.splitlines() if line.startswith("/dev/")]


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=SWAP_MIB)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("noswap-A", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            a.sh("swapoff -a")
            a.sh("ntc-counter /data/counter.log 50 & :")
            ntcguest.start_in_background(a, f"ntc-memhog {HOG_MIB}", r"HOG READY", 600)
            rc, st = ntcguest.checkpoint(a, 1200)
            print(f"checkpoint: image {st.get('image_pages')} pages, reclaimed {st.get('shrunk_pages')} pages "
                  f"before the freeze, {st.get('swap_slots_copied')} swap slots copied, pause {st.get('pause_ms')} "
                  f"ms, total {st.get('total_ms')} ms", flush=True)
            check(rc == 0 and st.get("result") == "0", f"the checkpoint failed: rc {rc}, {st}", a)
            check(st.get("swap_borrowed") == "1", f"the checkpoint did not say it borrowed swap: {st}", a)
            left = swap_devices(a, 0)
            check(not left, f"the borrowed swap is still on after the checkpoint: {left}", a)
            ntcguest.check_hog_intact(a, "the hog's pages after the checkpoint", 600)
            info = ntcguest.ntc_info_check(disk2)
            check(info == 0, f"ntc-info --check rejected the checkpoint ({info})", a)
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            a.kill()

        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("noswap-B", disk1, disks=[disk2, blank], mem_mib=MEM_MIB, cpus=CPUS) as b:
            ntcguest.expect_counter_resumed(b, n_ck, 600)
            ntcguest.check_resumed_from(b, 1)
            left = swap_devices(b)
            check(not left, f"the resumed kernel did not turn the borrowed swap off: {left}", b)
            ntcguest.check_hog_intact(b, "the hog's pages after the resume", 600)
            b.sh("killall ntc-counter ntc-memhog; sleep 0.5", check=False)
            b.poweroff(300)
        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"no-swap test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
