#!/usr/bin/env python3
"""Level 2: a checkpoint refused for memory harms nothing.

A 1 GiB guest without swap with 870 MiB held by one process cannot hold
the snapshot's copy, and its 64 MiB swap partition is too small for ntc.ko
to make room by borrowing it as swap (guest.checkpoint_noswap is the case
where it is large enough).  The checkpoint must fail with -ENOMEM and leave the
guest as it was: the process alive with every page intact, no OOM kill in
the kernel log, disk 2 untouched.  (Before ntc.ko refused this case up
front, the snapshot's own reclaim evicted every file page and the OOM
killer killed the process right after the thaw.)
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 1024
HOG_MIB = 870

check = ntclab.check


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=64)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        with ntclab.guest_for_disk("nomem-A", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=2) as a:
            a.wait_ready()
            a.sh("swapoff -a")
            ntcguest.start_in_background(a, f"ntc-memhog {HOG_MIB}", r"HOG READY", 600)
            rc, st = ntcguest.checkpoint(a)
            print("checkpoint:", st, flush=True)
            check(rc != 0 and st.get("result") == "-12", f"expected -ENOMEM: rc {rc}, {st}", a)
            _, log = a.sh("dmesg")
            check("Out of memory" not in log and "oom-kill" not in log,
                  f"the refused checkpoint brought the OOM killer: {log[-3000:]}", a)
            check(a.sh("pidof ntc-memhog", check=False)[0] == 0, "the memory hog is gone", a)
            a.send("kill -USR1 $(pidof ntc-memhog)")
            m = a.expect(r"HOG (OK|BAD) \d+", 300)
            check(m.group(1) == b"OK", f"the memory hog's pages changed: {m.group(0)}", a)
            area = ntcguest.Area(disk2)
            check(area.state == ntcguest.STATE_EMPTY, f"a refused checkpoint changed disk 2: {area}", a)
            # Power off with the hog still running: killing it from the shell
            # first made the console's busybox shell exit about every second
            # time (its EXIT trap ran, no signal came), so the "poweroff" that
            # followed went to nobody; it did so without any checkpoint too
            # (Documentation/testing.md, "Known failure modes").
            a.poweroff()
    print(f"nomem test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
