#!/usr/bin/env python3
"""Level 2: a power cut at any moment of a checkpoint (issue: crash safety).

Guest A takes checkpoint 1 onto disk 2, then starts checkpoint 2 with ntc.ko's
test parameter stall_at=POINT, which stops the checkpoint at POINT and says
so on the console; there the whole machine is killed (SIGKILL of QEMU, the
power cut).  Eight points spread over the checkpoint: before the
invalidation, after it, after the reclaim, after the pre-copy, frozen after
the snapshot, halfway through the image, just before the header and just
after it.  After each:

  * disk 2 holds either a sound checkpoint (ntc-info --check accepts it) or
    none; never a resumable-looking damaged one.  Which one is known: the
    previous checkpoint before the invalidation, the new one once its header
    is down, none in between;
  * a sound one resumes: guest B continues the counter from that checkpoint;
  * disk 1 recovers by its journal (e2fsck -p replays it, then -fn is clean).
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 256
CPUS = 2

check = ntclab.check


def cut_at(tmp, base, point):
    """Checkpoint 1, then checkpoint 2 cut at `point`; returns the disks and
    the counter's value at checkpoint 1."""
    disk1 = os.path.join(tmp, f"disk1-{point}.img")
    subprocess.run(["cp", "--sparse=always", base, disk1], check=True, timeout=300)
    for suffix in (".vmlinuz", ".initrd", ".cmdline"):
        shutil.copy(base + suffix, disk1 + suffix)
    disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, f"disk2-{point}.img"))
    with ntclab.guest_for_disk(f"kill-{point}", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
        a.wait_ready()
        a.sh("ntc-counter /data/counter.log 50 & :")
        a.sh("sleep 1")
        rc, st = ntcguest.checkpoint(a)
        check(rc == 0 and st.get("result") == "0", f"checkpoint 1 failed: rc {rc}, {st}", a)
        n_ck1 = ntcguest.counter_before(a, st["time_unix_ns"])
        a.sh(f"echo {point} > /sys/module/ntc/parameters/stall_at")
        a.send("echo checkpoint > /proc/ntc")
        a.expect(rf"ntc: stalled at {point}\b", 600)
        a.kill()  # the power cut
    return disk1, disk2, n_ck1


def main():
    t_start = time.monotonic()
    results = []
    with ntcguest.workdir() as tmp:
        base = ntcguest.build_disk1(tmp)
        for point, expected in ntcguest.POWER_CUT_POINTS:
            t0 = time.monotonic()
            disk1, disk2, n_ck1 = cut_at(tmp, base, point)
            held = ntcguest.judge_power_cut(point, expected, disk1, disk2, tmp)
            if held:
                blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
                with ntclab.guest_for_disk(f"kill-{point}-resume", disk1, disks=[disk2, blank],
                                           mem_mib=MEM_MIB, cpus=CPUS) as b:
                    ntcguest.expect_resumed_after_cut(b, point, held, n_ck1)
                    b.kill()
                os.unlink(blank)
            results.append((point, held, time.monotonic() - t0))
            for f in (disk1, disk2):
                os.unlink(f)
    print(ntcguest.power_cut_table(results))
    print(f"kill test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
