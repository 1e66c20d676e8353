#!/usr/bin/env python3
"""Level 2: disk 1's swap takes the slots of the redo journal while a
checkpoint runs (ntc.ko's move_out(), Documentation/kmod.md, "Keeping the
previous checkpoint").

Checkpoint 2 keeps checkpoint 1 resumable, so the pre-copy writes the
blocks of a new file on disk 1 into spare slots of the snapshot area: the
journal.  Those slots are free in disk 1's swap, and the swap takes its
lowest free slots first, as the journal does.  Checkpoint 2 stops after
its pre-copy (stall_at=precopied) while a hog larger than RAM swaps tens
of MiB out; the frozen delta then copies those swap slots in place, so
each journal block in them must move to another slot first.  A journal
block left behind would be overwritten by swap data, and the commit would
put that data into the file.  Checks:

  * checkpoint 2 succeeds, kept checkpoint 1 (kept_previous) and moved
    journal blocks (journal_moves > 0); ntc-info --check accepts disk 2;
  * guest B resumes checkpoint 2 from disk 2: the counter goes on, the
    file read from disk past the page cache has its content, the hog's
    pages (in swap or in the image) read back intact, and e2fsck finds
    disk 2's filesystems clean.
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
# Checkpoint 1 holds about 85 MB of the area, checkpoint 2 about 120 MB of
# image beside 200 MB of swap: more than build_disk1's default 256 MiB.
SWAP_MIB = 512
FILE_MIB = 16
# Larger than the guest's RAM: the swap-out passes checkpoint 1's slots and
# reaches the journal's, just above them.
HOG_MIB = 230

check = ntclab.check


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=SWAP_MIB)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("move-A", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            a.sh("ntc-counter /data/counter.log 50 & :")
            rc, st = ntcguest.checkpoint(a)
            check(rc == 0 and st.get("result") == "0", f"checkpoint 1 failed: rc {rc}, {st}", a)

            _, out = a.sh(f"dd if=/dev/urandom of=/data/big bs=1M count={FILE_MIB} 2>/dev/null && sync && "
                          "sha256sum /data/big", 300)
            digest = re.search(r"\b([0-9a-f]{64})\b", out).group(1)
            a.sh("echo precopied > /sys/module/ntc/parameters/stall_at")
            # the hog starts once the checkpoint has stopped after its pre-copy
            a.sh(f"(while ! dmesg | grep -q 'stalled at precopied'; do sleep 1; done; ntc-memhog {HOG_MIB}) & :")
            a.send("echo checkpoint > /proc/ntc; echo CHECKPOINT-RC $?")
            a.expect(r"ntc: stalled at precopied", 600)
            a.expect(r"HOG READY", 300)
            rc = int(a.expect(r"CHECKPOINT-RC (\d+)", 600).group(1))
            a.sh("echo > /sys/module/ntc/parameters/stall_at")
            st = ntcguest.status(a)
            print(f"checkpoint 2: {st.get('journal_blocks')} journal blocks, {st.get('journal_moves')} moved, "
                  f"{st.get('swap_slots_copied')} swap slots copied", flush=True)
            check(rc == 0 and st.get("result") == "0" and st.get("sequence") == "2",
                  f"checkpoint 2 failed: rc {rc}, {st}", a)
            check(st.get("kept_previous") == "1", f"checkpoint 2 did not keep checkpoint 1: {st}", a)
            check(int(st.get("journal_moves", "0")) > 0,
                  f"disk 1's swap took no journal slot, so nothing was moved: {st}", a)
            info = ntcguest.ntc_info_check(disk2)
            check(info == 0, f"ntc-info --check rejected checkpoint 2 ({info})", a)
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            a.kill()

        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("move-B", disk1, disks=[disk2, blank], mem_mib=MEM_MIB, cpus=CPUS) as b:
            ntcguest.expect_counter_resumed(b, n_ck)
            ntcguest.check_resumed_from(b, 2)
            _, out = b.sh("sync && echo 3 > /proc/sys/vm/drop_caches && sha256sum /data/big", 300)
            check(digest in out, f"/data/big on disk 2 is not what checkpoint 2 copied (sha256 {digest}): "
                  f"{out!r}", b)
            ntcguest.check_hog_intact(b, "the hog's pages after the resume", 600)
            b.sh("killall ntc-counter ntc-memhog; sleep 0.5", check=False)
            b.poweroff()
        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"journal move test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
