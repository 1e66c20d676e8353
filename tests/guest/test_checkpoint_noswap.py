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

Before that, the hazard of turning swap off: the hog starts with swap on
and a tmpfs pushes part of it out, so that `swapoff -a` has a few hundred
MiB to read back.  A checkpoint asked for while it does (SwapTotal fallen
to what is left to read) must be refused with -EBUSY, disk 2 left
empty: the partition is no longer active swap, yet processes' pages are
still in its slots, where the image would go.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 1024
CPUS = 2
HOG_MIB = 870
# Pressure beside the hog with swap on: what swapoff then reads back.
PUSH_MIB = 300
# What the reclaim pushes out (about 500 MiB) and the image beside it.
SWAP_MIB = 1536

check = ntclab.check


def swap_devices(g, timeout=600):
    """The devices /proc/swaps lists, once it lists none or after timeout s."""
    _, out = g.sh(f"for i in $(seq {timeout}); do grep -q '^/dev/' /proc/swaps || break; sleep 1; done; "
                  "grep '^/dev/' /proc/swaps; true", timeout + 60)
    return [line.split()[0] for line in out.splitlines() if line.startswith("/dev/")]


def refused_while_swapoff(a, disk2):
    """Pushes part of the hog out to disk 1's swap, then asks for a
    checkpoint while swapoff reads it back: refused, disk 2 untouched."""
    a.sh(f"mkdir -p /tmp/push && mount -t tmpfs -o size={PUSH_MIB}m push /tmp/push && "
         f"dd if=/dev/zero of=/tmp/push/x bs=1M count={PUSH_MIB} 2>/dev/null; umount /tmp/push", 600)
    used_mib = ntcguest.swap_used_kib(a) // 1024
    check(used_mib >= 100, f"only {used_mib} MiB went to swap: swapoff would end too soon to race", a)
    # While swapoff reads pages back, SwapTotal is only what it has still to
    # read (si_swapinfo()), so a drop from the partition's size says it has
    # begun.  Only shell builtins from there on, so that no fork widens the
    # gap: the poll, the checkpoint, what is left to read.
    _, out = a.sh("swaptotal() { while read k v u; do [ $k = SwapTotal: ] && return; done </proc/meminfo; }; "
                  "swaptotal; full=$v; swapoff -a & off=$!; "
                  "until swaptotal; [ $v != $full ] || ! kill -0 $off 2>/dev/null; do :; done; "
                  "echo checkpoint > /proc/ntc; ck=$?; swaptotal; echo \"CHECKPOINT=$ck LEFT_KIB=$v\"; "
                  "wait $off; echo \"SWAPOFF=$?\"", 900)
    left = re.search(r"LEFT_KIB=(\d+)", out)
    check(left and int(left.group(1)) > 0,
          f"swapoff ended before the checkpoint was asked for ({used_mib} MiB to read back): {out}", a)
    st = ntcguest.status(a)
    check("CHECKPOINT=1" in out and "busy" in out and st["result"] == "-16",
          f"a checkpoint during swapoff should be refused with -EBUSY: {out} {st}", a)
    left_on = swap_devices(a, 0)
    check("SWAPOFF=0" in out and not left_on, f"swapoff failed: {out}, still swap: {left_on}", a)
    area = ntcguest.Area(disk2)
    check(area.state == ntcguest.STATE_EMPTY, f"the refused checkpoint wrote disk 2: {area}", a)
    print(f"refused with -EBUSY while swapoff read {used_mib} MiB back ({int(left.group(1)) >> 10} MiB left)",
          flush=True)


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=SWAP_MIB)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("noswap-A", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            a.sh("ntc-counter /data/counter.log 50 & :")
            ntcguest.start_in_background(a, f"ntc-memhog {HOG_MIB}", r"HOG READY", 600)
            refused_while_swapoff(a, disk2)
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
            n_ck, sequence = ntcguest.counter_before(a, st["time_unix_ns"]), int(st["sequence"])
            a.kill()

        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("noswap-B", disk1, disks=[disk2, blank], mem_mib=MEM_MIB, cpus=CPUS) as b:
            ntcguest.expect_counter_resumed(b, n_ck, 600)
            ntcguest.check_resumed_from(b, sequence)
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
