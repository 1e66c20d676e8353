"""Level 2: the first checkpoint onto a fresh clone copies what disk 1 wrote
since boot, instead of comparing the two disks block by block.

ntc-clone records each ext superblock of disk 1 in the clone's snapshot area;
the guest's initramfs loads ntc.ko before the root is mounted, so it sees
every write to disk 1 (Documentation/kmod.md, "The first checkpoint after a
clone").

Guest A has disk 1 and two fresh clones X and Y of it.  Its checkpoint onto X
must say since_clone and read a small part of what the full compare onto Y
(the checkpoint after it) reads.  Guest B resumes X: the files A wrote after
boot and before the checkpoint are there.

Then the fallbacks, in guest C with a fresh clone Z of disk 1 and another, W:
after Z was made, disk 1's data partition was written offline (debugfs), so
the checkpoint onto Z proves the root alone and compares the data partition,
which brings the offline file onto Z; with ntc.ko loaded again after the root
was mounted, the checkpoint onto W compares everything and says why.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 256
CPUS = 2
ROOT_PART, DATA_PART = 1, 2

check = ntclab.check


def take(g, what):
    rc, st = ntcguest.checkpoint(g)
    print(f"{what}: disk_copy {st.get('disk_copy')} ({st.get('disk_copy_note')}), "
          f"{st.get('disk_blocks_read')} blocks read, pause {st.get('pause_ms')} ms")
    check(rc == 0 and st.get("result") == "0", f"{what} failed: rc {rc}, {st}", g)
    return st


def debugfs_cat(disk, part_offset, path):
    r = subprocess.run(["debugfs", "-R", f"cat {path}", f"{disk}?offset={part_offset}"],
                       capture_output=True, text=True, timeout=60)
    return r.stdout


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        parts = {p.number: p for p in ntclab.partitions(disk1)}
        x = ntcguest.make_disk2(disk1, os.path.join(tmp, "x.img"))
        y = ntcguest.make_disk2(disk1, os.path.join(tmp, "y.img"))
        area = ntcguest.Area(x)
        check(area.origin == [ROOT_PART, DATA_PART], f"ntc-clone recorded no clone origin for both ext partitions: {area}")

        with ntclab.guest_for_disk("clone-A", disk1, disks=[disk1, x, y], mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            state = ntcguest.start_state_workloads(a, ipc_timeout=30)
            a.sh("echo written-since-boot > /root/since-boot.txt && sync")

            ntcguest.set_target(a, "/dev/vdb3")
            st_x = take(a, "checkpoint onto X")
            check(st_x.get("disk_copy") == "since_clone" and
                  f"partition {ROOT_PART} {DATA_PART};" in st_x.get("disk_copy_note", ""),
                  f"the first checkpoint onto a fresh clone did not use ntc-clone's record: {st_x}", a)
            n_ck = ntcguest.counter_before(a, st_x["time_unix_ns"])
            a.sh("sleep 1")
            ntcguest.set_target(a, "/dev/vdc3")
            st_y = take(a, "checkpoint onto Y")
            check(st_y.get("disk_copy") == "full_compare" and "another disk 2" in st_y.get("disk_copy_note", ""),
                  f"a checkpoint onto a second disk 2 did not compare the disks: {st_y}", a)
            read_x, read_y = int(st_x["disk_blocks_read"]), int(st_y["disk_blocks_read"])
            used = sum(parts[n].size for n in (ROOT_PART, DATA_PART)) // 4096
            print(f"blocks read: since_clone {read_x}, full compare {read_y} ({read_x / read_y:.3f}x); "
                  f"the ext partitions have {used} blocks")
            check(read_y >= 2 * used, f"the full compare read {read_y} blocks, less than both disks' "
                  f"{used} blocks of ext partitions twice", a)
            check(read_x * 4 < read_y, f"since_clone read {read_x} blocks, not far below the full compare's {read_y}", a)
            a.sh("killall ntc-counter ntc-ipc; sleep 0.5", check=False)
            a.poweroff()

        for disk in (x, y):
            check(ntcguest.Area(disk).valid_checkpoint(), f"{disk} holds no checkpoint")
            check(ntcguest.Area(disk).origin == [], f"{disk}: the clone origin outlived the first checkpoint")

        blanks = [ntcguest.blank_like(x, os.path.join(tmp, f"blank{i}.img")) for i in (1, 2)]
        with ntclab.guest_for_disk("clone-B", disk1, disks=[x] + blanks, mem_mib=MEM_MIB, cpus=CPUS) as b:
            ntcguest.expect_counter_resumed(b, n_ck)
            ntcguest.check_resumed_from(b, st_x["sequence"])
            _, text = b.sh("cat /root/since-boot.txt")
            check("written-since-boot" in text, f"a file written after boot is not on X: {text}", b)
            problems = ntcguest.check_resumed_state(b, state)
            check(not problems, "B's state after the resume:\n" + "\n".join(problems), b)
            b.sh("killall ntc-counter ntc-ipc; sleep 0.5", check=False)
            b.poweroff()
        problems = ntcguest.e2fsck_disk(x)
        check(not problems, f"e2fsck on X: {problems}")

        # The fallbacks.
        z = ntcguest.make_disk2(disk1, os.path.join(tmp, "z.img"))
        w = ntcguest.make_disk2(disk1, os.path.join(tmp, "w.img"))
        offline = os.path.join(tmp, "offline.txt")
        with open(offline, "w") as f:
            f.write("written-offline-after-the-clone\n")
        subprocess.run(["debugfs", "-w", "-R", f"write {offline} /offline.txt",
                        f"{disk1}?offset={parts[DATA_PART].offset}"], check=True, capture_output=True, timeout=60)
        check("written-offline" not in debugfs_cat(z, parts[DATA_PART].offset, "/offline.txt"),
              "the offline file is on Z before any checkpoint")
        with ntclab.guest_for_disk("clone-C", disk1, disks=[disk1, z, w], mem_mib=MEM_MIB, cpus=CPUS) as c:
            c.wait_ready()
            ntcguest.set_target(c, "/dev/vdb3")
            st_z = take(c, "checkpoint onto Z")
            note = st_z.get("disk_copy_note", "")
            check(st_z.get("disk_copy") == "since_clone" and f"partition {ROOT_PART};" in note,
                  f"onto Z, the root alone should be proven unchanged since the clone: {st_z}", c)
            c.sh("rmmod ntc && insmod /lib/modules/ntc/ntc.ko")
            ntcguest.set_target(c, "/dev/vdc3")
            st_w = take(c, "checkpoint onto W after a late load")
            check(st_w.get("disk_copy") == "full_compare" and "before ntc.ko was loaded" in st_w.get("disk_copy_note", ""),
                  f"with ntc.ko loaded after the root was mounted, the checkpoint should compare everything: {st_w}", c)
            c.poweroff()
        check("written-offline" in debugfs_cat(z, parts[DATA_PART].offset, "/offline.txt"),
              "the checkpoint onto Z did not bring the file disk 1 got after the clone")
    print(f"checkpoint after a clone test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
