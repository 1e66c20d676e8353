"""Level 2: incremental images: a checkpoint onto the disk 2 that holds the
last one writes only the image pages whose content changed since.

Guest A holds HOG_MIB of pages that do not change (ntc-memhog, each page's
content depends on its index) and SWEEP_MIB that change all the time
(ntc-memsweep), with the counter running.  Three checkpoints onto the same
disk 2: the second and third must leave most of their pages in the slots
the image before them wrote (image_pages_reused), write far fewer than the
first, and pass ntc-info --check (the swap map in stock format, the CRC over
every page in map order).  Guest B resumes the third: the counter goes on
from checkpoint 3's value (its page changed at every checkpoint) and every
hog page reads back intact (written by checkpoint 1, left in place since).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 256
CPUS = 2
HOG_MIB = 96
SWEEP_MIB = 16

check = ntclab.check


def main():
    t_start = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))

        with ntclab.guest_for_disk("incr-A", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=CPUS) as a:
            a.wait_ready()
            a.sh("ntc-counter /data/counter.log 50 & :")
            a.sh(f"ntc-memhog {HOG_MIB} & :")
            a.expect(r"HOG READY", 300)
            a.sh(f"ntc-memsweep {SWEEP_MIB} /tmp/sweep.log >/dev/null & :")
            a.sh("sleep 2")
            written = []
            for seq in (1, 2, 3):
                rc, st = ntcguest.checkpoint(a)
                check(rc == 0 and st.get("result") == "0" and st.get("sequence") == str(seq),
                      f"checkpoint {seq} failed: rc {rc}, {st}", a)
                pages, new, reused = (int(st[k]) for k in ("image_pages", "image_pages_written",
                                                          "image_pages_reused"))
                print(f"checkpoint {seq}: image {pages} pages, {new} written, {reused} left in place, "
                      f"{st['disk2_blocks_written']} blocks of disk 2 written, write {st['write_ms']} ms "
                      f"({st['image_hash_ms']} ms of it hashing), "
                      f"pause {st['pause_ms']} ms", flush=True)
                check(new + reused == pages, f"checkpoint {seq}: written + reused is not the image: {st}", a)
                if seq == 1:
                    check(reused == 0, f"the first checkpoint onto disk 2 reused pages: {st}", a)
                else:
                    check(new * 3 < written[0],
                          f"checkpoint {seq} wrote {new} image pages, not far fewer than the first's {written[0]}",
                          a)
                written.append(new)
                info = ntcguest.ntc_info_check(disk2)
                check(info == 0, f"ntc-info --check rejected checkpoint {seq} ({info})", a)
                a.sh("sleep 2")
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            a.sh("killall ntc-counter ntc-memsweep ntc-memhog; sleep 0.5", check=False)
            a.poweroff()

        blank = ntcguest.blank_like(disk2, os.path.join(tmp, "blank.img"))
        with ntclab.guest_for_disk("incr-B", disk1, disks=[disk2, blank], mem_mib=MEM_MIB, cpus=CPUS) as b:
            ntcguest.expect_counter_resumed(b, n_ck)
            ntcguest.check_resumed_from(b, 3)
            ntcguest.check_hog_intact(b, "the hog's pages, left in place since checkpoint 1,")
            b.sh("killall ntc-counter ntc-memsweep ntc-memhog; sleep 0.5", check=False)
            b.poweroff()
        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"incremental image test: passed in {time.monotonic() - t_start:.0f}s")


if __name__ == "__main__":
    main()
