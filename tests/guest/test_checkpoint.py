"""Level 2: a live checkpoint onto disk 2, resumed in a second guest.

Guest A (disk 1 + disk 2) runs a counter (console + file on /data), a process
holding SysV semaphores and shared memory, and has an fsync'ed file; it takes
a checkpoint with `echo checkpoint > /proc/ntc` and runs on.  Guest B (same
QEMU options, disk 2 alone) must resume from the checkpoint: the counter
continues from its checkpoint value, the IPC objects and the file are
identical, what A wrote afterwards is absent, and disk 2's filesystems are
clean after B's power-off.
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


check = ntclab.check


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        check(not ntcguest.Area(disk2).valid_checkpoint(), "fresh disk 2 looks like a checkpoint")

        with ntclab.guest_for_disk("ckpt-A", disk1, disks=[disk1, disk2],
                                   mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            _, perm = a.sh("ls -l /proc/ntc")
            check(perm.startswith("-rw-------"), f"/proc/ntc mode: {perm}", a)
            state = ntcguest.start_state_workloads(a, ipc_timeout=30)
            a.sh("sleep 1")

            rc, st = ntcguest.checkpoint(a)
            print("checkpoint:", st)
            check(rc == 0 and st.get("result") == "0", f"checkpoint failed: rc {rc}, {st}", a)
            check(st.get("state") == "idle" and st.get("sequence") == "1", f"status {st}", a)
            ntcguest.check_no_reclaim_while_frozen(a, st)
            ntcguest.check_copy_pages_before_freeze(a, st)
            ntcguest.check_cpus_back(a, st, CPUS - 1)
            ntcguest.check_snapshot_freed_after_thaw(a, st, restored=False)
            pause = float(st["pause_ms"]) / 1000

            # A runs on: the counter advances after the checkpoint.
            a.sh("sleep 3")
            ntcguest.write_after_checkpoint(a)
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            _, out = a.sh(f"awk '$2 == {n_ck} {{t = $3}} $2 == {n_ck + 1} {{g = $3 - t}} "
                          "END {printf \"GAP %.3f LAST %d\\n\", g, $2}' /data/counter.log")
            gap, last_a = re.search(r"GAP ([\d.]+) LAST (\d+)", out).groups()
            gap, last_a = float(gap), int(last_a)
            # The counter's clock is the system clock, which under TCG
            # stands still for the atomic copy (clock_lost_us), and the
            # counter writes every 50 ms.
            seen = pause - int(st["clock_lost_us"]) / 1e6
            print(f"pause {pause:.3f}s, {seen:.3f}s on the system clock; counter gap across the "
                  f"checkpoint {gap:.3f}s (after {n_ck}), A's last {last_a}")
            check(last_a > n_ck + 20, f"counter did not advance after the checkpoint ({n_ck} -> {last_a})", a)
            check(seen - 0.05 <= gap <= seen + 0.25,
                  f"counter gap across the checkpoint {gap:.3f}s does not match the pause, "
                  f"{seen:.3f}s on the system clock", a)
            a.poweroff()

        area = ntcguest.Area(disk2)
        print("disk 2:", area)
        check(area.valid_checkpoint() and area.sequence == 1, f"disk 2 holds no checkpoint: {area}")
        info = ntcguest.ntc_info_check(disk2)
        check(info == 0, f"ntc-info --check rejected the checkpoint ({info})")

        # Same machine as A: the firmware's memory map (checked by the resume
        # code) depends on the devices, so B has a blank disk where A's disk 2
        # was; disk 2 is B's first and only real disk.
        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("ckpt-B", disk1, disks=[disk2, blank],
                                   mem_mib=MEM_MIB, cpus=CPUS) as b:
            t_b = time.monotonic()
            n_b = ntcguest.expect_counter_resumed(b, n_ck)
            print(f"B resumed in {time.monotonic() - t_b:.1f}s, counter continued at {n_b}")
            st_b = ntcguest.check_resumed_from(b, 1)
            ntcguest.check_cpus_back(b, st_b, CPUS - 1)
            ntcguest.check_snapshot_freed_after_thaw(b, st_b, restored=True)
            b.sh("sleep 2")
            problems = ntcguest.check_resumed_state(b, state)
            check(not problems, "B's state after the resume:\n" + "\n".join(problems), b)
            b.sh("killall ntc-counter ntc-ipc; sleep 0.5", check=False)
            b.poweroff()

        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"checkpoint test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
