#!/usr/bin/env python3
"""Level 2: a power cut at any moment of a checkpoint (issue: crash safety).

Guest A takes checkpoint 1 onto disk 2, then starts checkpoint 2 with ntc.ko's
test parameter stall_at=POINT, which stops the checkpoint at POINT and says
so on the console; there the whole machine is killed (SIGKILL of QEMU, the
power cut).  Checkpoint 2 keeps checkpoint 1 resumable until its own header
is down (ntc.ko's redo journal): eight points from before the pre-copy to
after the journal is in place, and two of them again with ntc.ko loaded
anew between the checkpoints (it then knows checkpoint 1's slots only from
its holdings on disk 2).  Two more cut a checkpoint that writes in place
(keep_previous=0): after the invalidation and halfway through the image;
and two one that must give checkpoint 1 up because the area cannot hold
both (a tmpfs full of random data): halfway through its image and after
its commit.  Before each checkpoint A writes a marker file (its content
names the checkpoint) and syncs.  After each cut:

  * disk 2 holds either a sound checkpoint (ntc-info --check accepts it) or
    none; never a resumable-looking damaged one.  Which one is known: kept,
    checkpoint 1 until the header of checkpoint 2 is down, then checkpoint 2;
    in place, none;
  * while it holds checkpoint 1, its filesystems are byte for byte as
    checkpoint 1 left them (everything checkpoint 2 wrote went elsewhere);
  * a sound one resumes: guest B continues the counter from that
    checkpoint, and reads that checkpoint's marker from disk past its page
    cache; after a cut between the header and the journal's end, B's kernel
    put the journal in place before it ran (/proc/ntc
    resumed_journal_blocks);
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

# With 100 MiB of random data in a tmpfs, checkpoint 1 holds about 185 MB
# of the 256 MiB area (build_disk1's swap): its image and the tmpfs,
# swapped out.  The data is written anew before checkpoint 2, which then
# cannot fit beside checkpoint 1: it gives checkpoint 1 up, puts its
# journal in place and writes in place from then on.  A cut then leaves
# none (with keep_previous on, that is what shows the give-up: a kept
# checkpoint 1 would be there); after its header, checkpoint 2.
GIVE_UP_CUT_POINTS = [ntcguest.CutPoint("writing", True, 0, fill_mib=100),
                      ntcguest.CutPoint("committed", True, 2, fill_mib=100)]

check = ntclab.check


def cut_at(tmp, base, cut):
    """Checkpoint 1, then checkpoint 2 cut at cut (a CutPoint); returns the
    disks, the counter's value at checkpoint 1, each checkpoint's marker and
    a copy of disk 2 as checkpoint 1 left it."""
    disk1 = os.path.join(tmp, f"disk1-{cut.label}.img")
    subprocess.run(["cp", "--sparse=always", base, disk1], check=True, timeout=300)
    for suffix in (".vmlinuz", ".initrd", ".cmdline"):
        shutil.copy(base + suffix, disk1 + suffix)
    disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, f"disk2-{cut.label}.img"))
    disk2_ck1 = os.path.join(tmp, "disk2-checkpoint1.img")
    with ntclab.guest_for_disk(f"kill-{cut.label}", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
        a.wait_ready()
        a.sh("ntc-counter /data/counter.log 50 & :")
        fill = f"dd if=/dev/urandom of=/fill/data bs=1M count={cut.fill_mib} conv=notrunc 2>/dev/null"
        if cut.fill_mib:
            a.sh(f"mkdir -p /fill && mount -t tmpfs -o size={cut.fill_mib + 8}m tmpfs /fill && {fill}", 300)
        markers = {1: ntcguest.write_marker(a, 1)}
        a.sh("sleep 1")
        rc, st = ntcguest.checkpoint(a)
        check(rc == 0 and st.get("result") == "0", f"checkpoint 1 failed: rc {rc}, {st}", a)
        n_ck1 = ntcguest.counter_before(a, st["time_unix_ns"])
        # nothing writes disk 2 between checkpoints
        subprocess.run(["cp", "--sparse=always", disk2, disk2_ck1], check=True, timeout=300)
        if cut.fill_mib:
            a.sh(fill, 300)
        markers[2] = ntcguest.write_marker(a, 2)
        ntcguest.start_cut_checkpoint(a, cut)
        a.kill()  # the power cut
    return disk1, disk2, n_ck1, markers, disk2_ck1


def main():
    t_start = time.monotonic()
    results = []
    with ntcguest.workdir() as tmp:
        base = ntcguest.build_disk1(tmp)
        for cut in ntcguest.POWER_CUT_POINTS + GIVE_UP_CUT_POINTS:
            t0 = time.monotonic()
            disk1, disk2, n_ck1, markers, disk2_ck1 = cut_at(tmp, base, cut)
            held = ntcguest.judge_power_cut(cut, disk1, disk2, tmp)
            if held == 1:
                differ = ntcguest.differ_outside_area(disk2, disk2_ck1)
                check(not differ, f"cut at {cut.label}: disk 2 holds checkpoint 1, but checkpoint 2 wrote "
                      f"into its filesystems: {differ}")
            os.unlink(disk2_ck1)
            if held:
                blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
                with ntclab.guest_for_disk(f"kill-{cut.label}-resume", disk1, disks=[disk2, blank],
                                           mem_mib=MEM_MIB, cpus=CPUS) as b:
                    ntcguest.expect_resumed_after_cut(b, cut.label, held, n_ck1)
                    ntcguest.expect_marker_on_disk(b, markers[held], f"cut at {cut.label}")
                    applied = int(ntcguest.status(b).get("resumed_journal_blocks", "0"))
                    if cut.point == "applying":
                        check(applied > 0, f"cut at {cut.label}: the resumed kernel put no journal in place", b)
                    else:
                        check(applied == 0, f"cut at {cut.label}: the resumed kernel found a journal to put "
                              f"in place ({applied} blocks)", b)
                    b.kill()
                os.unlink(blank)
            results.append((cut.label, held, time.monotonic() - t0))
            for f in (disk1, disk2):
                os.unlink(f)
    print(ntcguest.power_cut_table(results))
    print(f"kill test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
