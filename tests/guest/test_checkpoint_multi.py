"""Level 2: three checkpoints onto the same disk 2 under memory pressure.

Guest A has disk 1's swap active and a process whose memory does not fit in
RAM, so many of its pages are on disk 1's swap at checkpoint time.  Three
checkpoints are taken (ntc-info --check accepts each one while A runs on);
guest B resumes the latest: the counter continues from checkpoint 3, and
every page of the memory hog, including those swapped out on disk 1 and
copied to disk 2's area, reads back intact.  CPU 1 is offline for
checkpoint 1 and stays so; the checkpoint records the machine's two CPUs
all the same.  During checkpoint 2 a process may run only on CPU 1: the
CPUs are then left to the hibernation core, and the process keeps its
affinity.  Checkpoint 3 takes CPU 1 down before its freeze.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 256
CPUS = 2
HOG_MIB = 200


check = ntclab.check


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        # swap must hold the hog's swapped-out pages and the image
        disk1 = ntcguest.build_disk1(tmp, swap_mib=512)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("multi-A", disk1, disks=[disk1, disk2],
                                   mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            a.sh("ntc-counter /data/counter.log 100 >/dev/null & :")
            a.sh(f"ntc-memhog {HOG_MIB} & :")
            a.expect(r"HOG READY", 300)
            used = ntcguest.swap_used_kib(a)
            print(f"swap in use on disk 1 before the checkpoints: {used} KiB")
            check(used > 16 * 1024, f"no memory pressure: only {used} KiB swapped out", a)

            for seq in (1, 2, 3):
                if seq == 1:
                    a.sh("echo 0 > /sys/devices/system/cpu/cpu1/online")
                if seq == 2:
                    _, out = a.sh("taskset -c 1 sleep 100000 & echo PINNED $!")
                    pinned = int(re.search(r"PINNED (\d+)", out).group(1))
                rc, st = ntcguest.checkpoint(a)
                print(f"checkpoint {seq}:", st)
                check(rc == 0 and st.get("result") == "0" and st.get("sequence") == str(seq),
                      f"checkpoint {seq} failed: rc {rc}, {st}", a)
                check(int(st["swap_slots_copied"]) > 0 or seq > 1,
                      f"checkpoint {seq} copied no swap slots", a)
                ntcguest.check_cpus_back(a, st, CPUS - 1 if seq == 3 else 0, "0" if seq == 1 else "0-1")
                ntcguest.check_snapshot_freed_after_thaw(a, st, restored=False)
                if seq == 1:
                    a.sh("echo 1 > /sys/devices/system/cpu/cpu1/online")
                if seq == 2:
                    # The wait: the console's busybox ash exited (and init
                    # started another) when a job it started died after the
                    # command, while it read the next one.
                    _, out = a.sh(f"taskset -pc {pinned}; kill {pinned}; wait {pinned}; true")
                    check(re.search(r"affinity list: 1$", out, re.M), f"the process pinned to CPU 1 lost its affinity: {out}", a)
                area = ntcguest.Area(disk2)
                check(area.valid_checkpoint() and area.sequence == seq and area.cpus == CPUS,
                      f"disk 2 after checkpoint {seq}: {area}, recording {area.cpus} CPUs", a)
                # A new area's first checkpoint starts the change history;
                # the later ones list what they wrote since.
                check(area.generation == seq and area.history_since == 1
                      and st.get("generation") == str(seq) and st.get("history_since") == "1",
                      f"change history after checkpoint {seq}: {area}, {st}", a)
                info = ntcguest.ntc_info_check(disk2)
                check(info == 0, f"ntc-info --check rejected checkpoint {seq} ({info})", a)
                a.sh("sleep 2")
            snap_t = int(st["time_unix_ns"]) / 1e9
            a.sh("kill -USR1 $(pidof ntc-memhog)")
            a.expect(r"HOG (OK|BAD) \d+\r?\n", 300)
            check(a.out[a.cursor - 20:a.cursor].find(b"HOG OK") >= 0, "memory hog corrupted in A", a)
            _, out = a.sh(f"awk '$3 < {snap_t:.6f} {{n=$2}} END {{print \"CKN\", n, $2}}' /data/counter.log")
            n_ck, last_a = map(int, re.search(r"CKN (\d+) (\d+)", out).groups())
            check(last_a > n_ck, "counter did not advance after checkpoint 3", a)
            a.poweroff(300)

        ntcguest.keep_copy(disk2)
        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("multi-B", disk1, disks=[disk2, blank],
                                   mem_mib=MEM_MIB, cpus=CPUS) as b:
            # The resumed shell finishes A's `echo checkpoint` and prints its end marker.
            m = b.expect(r"(NTC-GUEST-READY)|@@NTC-END-[\w-]+=0@@", 300)
            check(m.group(1) is None, "guest B booted fresh instead of resuming", b)
            st_b = ntcguest.check_resumed_from(b, 3)
            ntcguest.check_cpus_back(b, st_b, CPUS - 1)
            ntcguest.check_snapshot_freed_after_thaw(b, st_b, restored=True)
            b.sh("sleep 1")
            _, out = b.sh(f"awk '$2 == {n_ck + 1} {{print \"NEXT\", $3}}' /data/counter.log")
            check("NEXT" in out, f"counter did not continue from {n_ck} on B", b)
            print(f"B: {ntcguest.check_hog_intact(b, 'the swapped-out pages after the resume')}")
            b.sh("killall ntc-counter ntc-memhog; sleep 0.5", check=False)
            b.poweroff(300)

        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"multi-checkpoint test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
