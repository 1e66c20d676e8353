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
# point -> the checkpoint disk 2 must hold after the power cut there (0: none)
POINTS = [("start", 1), ("invalidated", 0), ("reclaimed", 0), ("precopied", 0),
          ("frozen", 0), ("writing", 0), ("written", 0), ("committed", 2)]

check = ntclab.check


def recovers_by_journal(disk, tmp):
    """Each ext4 filesystem of disk 1, copied out (e2fsck cannot reopen an
    image at an offset after replaying its journal): e2fsck -p replays the
    journal, then e2fsck -fn finds it clean."""
    problems = []
    for p in ntclab.partitions(disk):
        if p.fstype != "ext4":
            continue
        part = os.path.join(tmp, "partition.img")
        subprocess.run(["dd", f"if={disk}", f"of={part}", "bs=1M", f"skip={p.offset}", f"count={p.size}",
                        "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"], check=True, timeout=300)
        for args, ok in ((["-p"], (0, 1)), (["-fn"], (0,))):  # -p: 1 = the journal was replayed
            r = subprocess.run(["e2fsck", *args, part], capture_output=True, text=True)
            if r.returncode not in ok:
                problems.append(f"e2fsck {args[0]} at {p.offset}: rc {r.returncode}\n{r.stdout}{r.stderr}")
        os.unlink(part)
    return problems


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
        for point, expected in POINTS:
            t0 = time.monotonic()
            disk1, disk2, n_ck1 = cut_at(tmp, base, point)
            area = ntcguest.Area(disk2)
            sound = ntcguest.ntc_info_check(disk2) == 0
            held = area.sequence if area.valid_checkpoint() else 0
            print(f"cut at {point}: disk 2 holds {'checkpoint %d' % held if held else 'no checkpoint'} "
                  f"({area.kind}), ntc-info --check {'accepts' if sound else 'refuses'} it", flush=True)
            check(not held or sound, f"cut at {point}: disk 2 looks resumable but is damaged: {area}")
            check(held == expected, f"cut at {point}: disk 2 holds checkpoint {held}, expected {expected or 'none'}")
            problems = recovers_by_journal(disk1, tmp)
            check(not problems, f"cut at {point}: disk 1 does not recover by its journal: {problems}")
            if held:
                blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
                with ntclab.guest_for_disk(f"kill-{point}-resume", disk1, disks=[disk2, blank],
                                           mem_mib=MEM_MIB, cpus=CPUS) as b:
                    m = b.expect(r"(NTC-GUEST-READY)|CNT (\d+) ", 300)
                    check(m.group(1) is None, f"cut at {point}: disk 2 booted fresh instead of resuming", b)
                    n = int(m.group(2))
                    # Checkpoint 2's own value is not known: the guest died
                    # before it could read its counter file.
                    if held == 1:
                        check(n == n_ck1 + 1, f"cut at {point}: counter resumed at {n}, checkpoint 1 had {n_ck1}", b)
                    else:
                        check(n > n_ck1 + 1, f"cut at {point}: counter resumed at {n}, not after checkpoint 1's {n_ck1}", b)
                    print(f"cut at {point}: checkpoint {held} resumed, counter at {n}", flush=True)
                    b.kill()
                os.unlink(blank)
            results.append((point, held, time.monotonic() - t0))
            for f in (disk1, disk2):
                os.unlink(f)
    print("| cut at | disk 2 holds | seconds |")
    print("| --- | --- | ---: |")
    for point, held, seconds in results:
        print(f"| {point} | {'checkpoint %d' % held if held else 'none'} | {seconds:.0f} |")
    print(f"kill test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
