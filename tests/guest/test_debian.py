"""Level 2: NTC on a Debian 12 guest installed the way users install it
(Documentation/disk-layout.md, "The Debian guest"): root and swap named by
UUID, ntc.ko built by DKMS from the ntc-dkms package and loaded at boot, from
the initramfs (so that the first checkpoint onto the fresh clone copies only
what was written since boot).

The office VM boots BOOTS times with disk 2 attached, whose partitions carry
the same UUIDs.  In the first boot a counter runs as a systemd service and
the guest takes a checkpoint; systemd is still running after it.  Every
boot, root and swap are disk 1's, every persistent link names disk 1, the
initramfs says it chose disk 1's root over the clone (and, once disk 2
holds a checkpoint, disk 1's swap as the resume device), the module is
loaded and systemd is running with no failed unit; and the checkpoint on
disk 2 is still there afterwards, neither resumed nor turned into swap.
Then QEMU with the same options boots disk 2 first, without disk 1, and
initramfs-tools' own resume path resumes it: the same boot (boot_id), the
counter service's same process counting on from where it was, systemd
running with no failed unit, journald writing, the clock right.  Disk 2's
root is clean after the resumed guest's power-off.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402
import debian_guest  # noqa: E402

MEM_MIB = 1024
CPUS = 2
BOOTS = 10
check = ntclab.check


def check_on_disk1(g, boot, disk2_checkpointed):
    """Root, swap and every persistent link on disk 1 (vda); the initramfs's choices logged."""
    _, root = g.sh("findmnt -no SOURCE /")
    _, swaps = g.sh("swapon --noheadings --show=NAME")
    _, links = g.sh("for l in /dev/disk/by-uuid/* /dev/disk/by-partuuid/*; do readlink -f $l; done")
    _, chosen = g.sh("dmesg | grep ntc-snapshot-disk: || true")
    _, module = g.sh("cat /sys/module/ntc/initstate 2>&1 || true")
    print(f"boot {boot}: root {root}, swap {swaps.split()}, {chosen.strip()}")
    check(root.strip() == "/dev/vda1", f"boot {boot}: root is {root}, not disk 1's /dev/vda1", g)
    check(swaps.split() == ["/dev/vda2"], f"boot {boot}: swap on {swaps.split()}, not disk 1's /dev/vda2 alone", g)
    stray = [link for link in links.split() if not link.startswith("/dev/vda")]
    check(not stray, f"boot {boot}: persistent links name disk 2: {stray}", g)
    check(re.search(r"ntc-snapshot-disk: root UUID=\S+ is /dev/vda1", chosen),
          f"boot {boot}: the initramfs did not choose disk 1's root over disk 2's: {chosen!r}", g)
    if disk2_checkpointed:
        check(re.search(r"ntc-snapshot-disk: resume device UUID=\S+ is /dev/vda2", chosen),
              f"boot {boot}: the initramfs did not choose disk 1's swap over disk 2's checkpoint: {chosen!r}", g)
    check(module.strip() == "live", f"boot {boot}: ntc.ko not loaded at boot: {module}", g)


def counter_and_pid(g):
    _, out = g.sh("echo COUNTER $(cat /run/ntc-counter) $(systemctl show -P MainPID ntc-counter)")
    n, pid = re.search(r"COUNTER (\d+) (\d+)", out).groups()
    return int(n), int(pid)


def main():
    t_start = time.monotonic()
    disk1_cached = debian_guest.debian_disk()
    with ntcguest.workdir() as tmp:
        disk1 = os.path.join(tmp, "disk1.img")
        for suffix in ("", ".vmlinuz", ".initrd", ".cmdline"):
            subprocess.run(["cp", "--sparse=always", disk1_cached + suffix, disk1 + suffix], check=True, timeout=300)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        for boot in range(1, BOOTS + 1):
            t_boot = time.monotonic()
            with ntclab.guest_for_disk(f"debian-A{boot}", disk1, disks=[disk1, disk2],
                                       mem_mib=MEM_MIB, cpus=CPUS) as a:
                debian_guest.wait_login(a)
                t_login = time.monotonic()
                state, failed = debian_guest.system_state(a)
                print(f"boot {boot}: login in {t_login - t_boot:.0f}s, boot finished "
                      f"{time.monotonic() - t_boot:.0f}s after the start", flush=True)
                check(state == "running" and not failed, f"boot {boot}: systemd {state}, failed: {failed}", a)
                check_on_disk1(a, boot, disk2_checkpointed=boot > 1)
                if boot == 1:
                    a.sh(debian_guest.COUNTER)
                    a.sh("sleep 2")
                    _, boot_id = a.sh("cat /proc/sys/kernel/random/boot_id")
                    n_before, pid = counter_and_pid(a)
                    rc, st = ntcguest.checkpoint(a)
                    print("checkpoint:", st)
                    check(rc == 0 and st.get("result") == "0", f"checkpoint failed: rc {rc}, {st}", a)
                    # Loaded from the initramfs, the module saw every write to disk 1.
                    check(st.get("disk_copy") == "since_clone",
                          f"the first checkpoint onto a fresh clone compared the disks: {st.get('disk_copy_note')}", a)
                    state, failed = debian_guest.system_state(a)
                    check(state == "running" and not failed,
                          f"after the checkpoint: systemd {state}, failed: {failed}", a)
                    n_after, _ = counter_and_pid(a)
                    check(n_after > n_before, f"the counter stopped at the checkpoint ({n_before} -> {n_after})", a)
                    ntcguest.check_no_kernel_warnings(a, "the office VM's kernel warned")
                t_off = time.monotonic()
                a.poweroff()
                print(f"boot {boot}: powered off in {time.monotonic() - t_off:.0f}s", flush=True)
            area = ntcguest.Area(disk2)
            check(area.valid_checkpoint() and area.sequence == 1,
                  f"after boot {boot}, disk 2 holds no checkpoint 1: {area}")

        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("debian-B", disk1, disks=[disk2, blank], mem_mib=MEM_MIB, cpus=CPUS) as b:
            t_b = time.monotonic()
            # The console shell that wrote the checkpoint goes on; a fresh
            # boot would log in again.
            m = b.expect(rf"@@NTC-END-debian-A1-\d+=(\d+)@@|(?P<fresh>{debian_guest.PROMPT})", 300)
            check(m.group("fresh") is None, "disk 2 booted fresh instead of resuming", b)
            b.sh("stty -echo; PS1=''", 30)
            print(f"B resumed in {time.monotonic() - t_b:.1f}s")
            st_b = ntcguest.status(b)
            check(st_b.get("state") == "resumed", f"B's /proc/ntc: {st_b}", b)
            _, boot_id_b = b.sh("cat /proc/sys/kernel/random/boot_id")
            check(boot_id_b == boot_id, f"B is boot {boot_id_b}, not the checkpointed {boot_id}", b)
            b.sh("sleep 2")
            n_b, pid_b = counter_and_pid(b)
            check(pid_b == pid and n_b > n_before,
                  f"counter service: pid {pid_b} at {n_b}, checkpointed pid {pid} at {n_before}", b)
            state, failed = debian_guest.system_state(b)
            check(state == "running" and not failed, f"after the resume: systemd {state}, failed: {failed}", b)
            b.sh("logger ntc-resumed-journal-check")
            _, journal = b.sh("journalctl --since=-1min -g ntc-resumed-journal-check -o cat --no-pager", 60,
                              check=False)
            check("ntc-resumed-journal-check" in journal, f"journald wrote nothing after the resume: {journal}", b)
            _, clock = b.sh("date +%s")
            check(abs(int(clock) - time.time()) < 10, f"B's clock {clock}, host {time.time():.0f}", b)
            ntcguest.check_no_kernel_warnings(b, "the resumed kernel warned")
            b.poweroff()

        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"debian test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
