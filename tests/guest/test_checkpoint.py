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
            a.sh("ntc-counter /data/counter.log 50 & :")
            a.sh("ntc-ipc hold & :")
            a.expect(r"IPCHOLD semid=\d+", 30)
            _, ipc_a = a.sh("ntc-ipc check")
            ipc_a = re.search(r"IPCCHECK .*", ipc_a).group(0)
            a.sh("dd if=/dev/urandom of=/data/filec bs=4096 count=256 conv=fsync 2>/dev/null")
            _, sum_a = a.sh("md5sum /data/filec")
            sum_a = re.search(r"[0-9a-f]{32}", sum_a).group(0)
            a.sh("sleep 1")

            rc, st = ntcguest.checkpoint(a)
            print("checkpoint:", st)
            check(rc == 0 and st.get("result") == "0", f"checkpoint failed: rc {rc}, {st}", a)
            check(st.get("state") == "idle" and st.get("sequence") == "1", f"status {st}", a)
            pause = float(st["pause_ms"]) / 1000
            snap_t = int(st["time_unix_ns"]) / 1e9

            # A runs on: the counter advances after the checkpoint.
            a.sh("sleep 3")
            a.sh("echo written-after-checkpoint > /data/after.txt && sync")
            _, out = a.sh("awk '{if (NR>1 && $3-p>m) {m=$3-p; at=$2} p=$3} "
                          "END {printf \"GAP %.3f %d LAST %d\\n\", m, at, $2}' /data/counter.log")
            gap, gap_at, last_a = re.search(r"GAP ([\d.]+) (\d+) LAST (\d+)", out).groups()
            gap, gap_at, last_a = float(gap), int(gap_at), int(last_a)
            _, out = a.sh(f"awk '$3 < {snap_t:.6f} {{n=$2}} END {{print \"CKN\", n}}' /data/counter.log")
            n_ck = int(re.search(r"CKN (\d+)", out).group(1))
            print(f"pause {pause:.3f}s, largest counter gap {gap:.3f}s (after {gap_at}), "
                  f"counter at checkpoint {n_ck}, A's last {last_a}")
            check(last_a > n_ck + 20, f"counter did not advance after the checkpoint ({n_ck} -> {last_a})", a)
            check(gap_at == n_ck + 1, f"largest gap before {gap_at}, not at the checkpoint ({n_ck})", a)
            check(abs(gap - pause) <= max(0.5, 0.5 * pause),
                  f"largest counter gap {gap:.3f}s not close to the pause {pause:.3f}s", a)
            a.poweroff()

        area = ntcguest.Area(disk2)
        print("disk 2:", area)
        check(area.valid_checkpoint() and area.sequence == 1, f"disk 2 holds no checkpoint: {area}")
        info = ntcguest.ntc_info_check(disk2)
        check(info in (None, 0), f"ntc-info --check rejected the checkpoint ({info})")

        # Same machine as A: the firmware's memory map (checked by the resume
        # code) depends on the devices, so B has a blank disk where A's disk 2
        # was; disk 2 is B's first and only real disk.
        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("ckpt-B", disk1, disks=[disk2, blank],
                                   mem_mib=MEM_MIB, cpus=CPUS) as b:
            t_b = time.monotonic()
            m = b.expect(r"(NTC-GUEST-READY)|CNT (\d+) ", 300)
            check(m.group(1) is None, "guest B booted fresh instead of resuming", b)
            n_b = int(m.group(2))
            print(f"B resumed in {time.monotonic() - t_b:.1f}s, counter continued at {n_b}")
            check(n_b == n_ck + 1, f"counter resumed at {n_b}, checkpoint value was {n_ck}", b)
            st_b = ntcguest.status(b)
            check(st_b.get("state") == "resumed" and st_b.get("resumed_from") == "1",
                  f"B's /proc/ntc: {st_b}", b)
            _, ipc_b = b.sh("ntc-ipc check")
            ipc_b = re.search(r"IPCCHECK .*", ipc_b).group(0)
            check(ipc_b == ipc_a and "shm=ok" in ipc_b, f"IPC differs: {ipc_a} / {ipc_b}", b)
            _, sum_b = b.sh("md5sum /data/filec")
            check(sum_a in sum_b, f"file (c) differs: {sum_a} / {sum_b}", b)
            rc, _ = b.sh("test -e /data/after.txt", check=False)
            check(rc != 0, "A's write after the checkpoint is on disk 2", b)
            b.sh("sleep 2")
            _, out = b.sh("awk '{if (NR>1 && $2!=p+1) print \"DISCONT\", p, $2; p=$2} "
                          "END {print \"LAST\", p}' /data/counter.log")
            check("DISCONT" not in out, f"counter file not continuous on B: {out[-500:]}", b)
            b.sh("killall ntc-counter ntc-ipc; sleep 0.5", check=False)
            b.poweroff()

        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"checkpoint test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
