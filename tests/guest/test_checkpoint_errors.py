"""Level 2: checkpoints that must fail, and what they must leave behind.

One guest, disk 1 with a swap partition too small for the image, disk 2 made
from it.  Garbage written to /proc/ntc is refused (-EINVAL); a missing or
unmarked target fails (-ENODEV, -EINVAL); with most of RAM held by a tmpfs
and no swap active, there is no memory for the snapshot's copy (-ENOMEM); a
second checkpoint while one runs fails with -EBUSY; the running one fails
with -ENOSPC before disk 2 changes.  After each, the
guest runs on, and disk 2 holds nothing that looks like a checkpoint
(ntc-info --check rejects it).  Finally the idle module unloads; loading it
with a source= that is no block device, or one whose writes it cannot see
(a bio-based RAM disk, as device-mapper and md are), is refused with a
message saying so; then it loads.  With its ftrace hooks in place ftrace
cannot be turned off; loaded with ftrace off, it loads without them and
says so.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402


check = ntclab.check
MEM_MIB = 256
FILL_MIB = MEM_MIB * 6 // 10


def no_checkpoint(g, disk2, what):
    area = ntcguest.Area(disk2)
    check(not area.valid_checkpoint() and area.kind == "ntc-area",
          f"after {what}, disk 2 looks like a checkpoint: {area}", g)
    info = ntcguest.ntc_info_check(disk2)
    check(info != 0, f"after {what}, ntc-info --check accepted disk 2", g)
    return area


def alive(g):
    _, out = g.sh("echo alive-$((20+22))")
    check("alive-42" in out, "guest not responding", g)


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=16)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("errors-A", disk1, disks=[disk1, disk2],
                                   mem_mib=MEM_MIB, cpus=2) as a:
            a.wait_ready()
            for garbage in ("garbage", "checkpoint now", "", "disk"):
                rc, out = a.sh(f"echo '{garbage}' > /proc/ntc", check=False)
                check(rc != 0 and "Invalid argument" in out,
                      f"{garbage!r} written to /proc/ntc: rc {rc}, {out}", a)
            rc, out = a.sh("dd if=/dev/urandom of=/proc/ntc bs=20 count=1", check=False)
            check(rc != 0 and "Invalid argument" in out, f"binary garbage accepted: {out}", a)
            no_checkpoint(a, disk2, "garbage")

            param = "/sys/module/ntc/parameters/target"
            a.sh(f"echo /dev/vdc3 > {param}")
            rc, st = ntcguest.checkpoint(a)
            check(rc != 0 and st["result"] == "-19", f"missing target: rc {rc}, {st}", a)
            a.sh(f"echo /dev/vda2 > {param}")
            rc, st = ntcguest.checkpoint(a)
            check(rc != 0 and st["result"] == "-22", f"unmarked target: rc {rc}, {st}", a)
            area = no_checkpoint(a, disk2, "missing target")
            check(area.state == ntcguest.STATE_EMPTY,
                  f"a refused target was written: {area}", a)
            a.sh(f"echo auto > {param}")
            alive(a)

            # -ENOMEM: tmpfs pages cannot be reclaimed without swap, and the
            # snapshot needs a free page for each page it copies.
            a.sh(f"mkdir -p /tmp/fill && mount -t tmpfs -o size={FILL_MIB}m fill /tmp/fill && "
                 f"dd if=/dev/urandom of=/tmp/fill/x bs=1M count={FILL_MIB} 2>/dev/null", 300)
            rc, st = ntcguest.checkpoint(a)
            check(rc != 0 and st["result"] == "-12", f"no memory for the snapshot: rc {rc}, {st}", a)
            print("ENOMEM checkpoint:", st)
            no_checkpoint(a, disk2, "-ENOMEM")
            alive(a)
            a.sh("umount /tmp/fill")

            # -EBUSY while the first one runs, held after its reclaim
            # (stall_at); that one then fails with -ENOSPC: disk 1's 16 MiB
            # swap partition, the snapshot area's twin, cannot hold the
            # image, and that is known before disk 2 changes.  The console
            # shell waits for both instead of reading the console (busybox
            # ash's line editor ends the shell when its console read spans
            # a freeze: Documentation/kmod.md, known problems).
            a.sh("echo reclaimed > /sys/module/ntc/parameters/stall_at")
            _, out = a.sh("(echo checkpoint > /proc/ntc; echo \"FIRST=$?\") & first=$!; "
                          "i=0; until dmesg | grep -q 'ntc: stalled at reclaimed' || [ $i -ge 600 ]; do "
                          "i=$((i+1)); sleep 0.1; done; "
                          "echo checkpoint > /proc/ntc; echo \"SECOND=$?\"; "
                          "echo > /sys/module/ntc/parameters/stall_at; wait $first", 120)
            check("FIRST=1" in out and "SECOND=1" in out and "busy" in out,
                  f"concurrent checkpoints: {out}", a)
            st = ntcguest.status(a)
            check(st["result"] == "-28", f"too small swap: expected -ENOSPC, got {st}", a)
            check(st["pause_ms"] == "0.000", f"-ENOSPC found only after the freeze: {st}", a)
            print("ENOSPC checkpoint:", st)
            area = no_checkpoint(a, disk2, "-ENOSPC")
            check(area.state == ntcguest.STATE_EMPTY, f"-ENOSPC, known before disk 2 changed, changed it: {area}", a)
            alive(a)

            # Unload when idle, load again.
            a.sh("rmmod ntc")
            rc, _ = a.sh("test -e /proc/ntc", check=False)
            check(rc != 0, "/proc/ntc still there after rmmod", a)
            # A disk 1 it cannot track is refused at load, saying why.
            for source, message in (("/dev/nonexistent", "source=/dev/nonexistent is not a block device"),
                                    ("/dev/ram0", "disk 1 ram0 is not request-based")):
                rc, out = a.sh(f"insmod /lib/modules/ntc/ntc.ko source={source} 2>&1; dmesg | tail -n 5",
                               check=False)
                check(message in out and a.sh("test -e /proc/ntc", check=False)[0] != 0,
                      f"insmod source={source}: want refused with {message!r}, got: {out}", a)
                print(f"refused as expected: source={source}")
            a.sh("insmod /lib/modules/ntc/ntc.ko")
            st = ntcguest.status(a)
            check(st["state"] == "idle", f"reloaded module: {st}", a)
            alive(a)

            # The ftrace hooks are permanent: ftrace cannot be turned off
            # under them, and a module loaded with it off goes without
            # them, saying so (Documentation/kmod.md, step 5).
            ftrace = "/proc/sys/kernel/ftrace_enabled"
            rc, out = a.sh(f"echo 0 > {ftrace}", check=False)
            check(rc != 0 and "busy" in out and a.sh(f"cat {ftrace}")[1].strip() == "1",
                  f"ftrace turned off under the module's hooks: rc {rc}, {out}", a)
            _, out = a.sh(f"rmmod ntc && echo 0 > {ftrace} && insmod /lib/modules/ntc/ntc.ko && dmesg | tail -n 6")
            for hooked in ("hibernate_preallocate_memory", "swsusp_free"):
                check(f"cannot hook {hooked}() (-16)" in out, f"loaded with ftrace off, no word about {hooked}(): {out}", a)
            st = ntcguest.status(a)
            check(st["state"] == "idle", f"module loaded with ftrace off: {st}", a)
            a.sh(f"rmmod ntc && echo 1 > {ftrace} && insmod /lib/modules/ntc/ntc.ko")
            alive(a)
            a.poweroff()
        problems = ntcguest.e2fsck_disk(disk1)
        check(not problems, f"e2fsck on disk 1: {problems}")
    print(f"checkpoint error test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
