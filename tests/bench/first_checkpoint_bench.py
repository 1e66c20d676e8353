"""The first checkpoint after a clone (issue 14): a guest under QEMU whose
root is 4 GiB holding 1 GiB of files, with disk 1 and two fresh clones of
it, X and Y.  The checkpoint onto X copies what disk 1 wrote since boot
(ntc.ko loaded from the initramfs, ntc-clone's record of disk 1); the
checkpoint onto Y right after it, in the same boot, is today's full compare
(a second target: every block of both disks read).  Per checkpoint: its
time in the disk copy passes (disk_copy_ms), whole time, pause and the
blocks of both disks read to copy.

Printed and written to build/bench/first_checkpoint.md; nothing is asserted
(target: time and blocks read at most 0.1x the full compare's).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import bench_report  # noqa: E402
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 512
ROOT_MIB = 4096
FILL_MIB = 1024
FILES = 8


def fill_overlay(tmp):
    """An overlay tree with FILL_MIB of random data in /var/fill."""
    overlay = os.path.join(tmp, "fill")
    os.makedirs(os.path.join(overlay, "var", "fill"))
    for i in range(FILES):
        with open(os.path.join(overlay, "var", "fill", f"file{i}"), "wb") as f:
            subprocess.run(["head", "-c", f"{FILL_MIB // FILES}M", "/dev/urandom"], stdout=f, check=True,
                           timeout=300)
    return overlay


def take(g, area):
    ntcguest.set_target(g, area)
    rc, st = ntcguest.checkpoint(g, 1800)
    if rc != 0 or st.get("result") != "0":
        g.fail(f"checkpoint onto {area} failed: {rc} {st}")
    row = {"copy": st["disk_copy"], "note": st["disk_copy_note"], "read": int(st["disk_blocks_read"]),
           "copy_ms": int(st["disk_copy_ms"]), "total_ms": int(st["total_ms"]),
           "pause_ms": float(st["pause_ms"])}
    print(row, flush=True)
    return row


def run(tmp):
    disk1 = ntcguest.build_disk1(tmp, name="first.img", swap_mib=1024,
                                 extra=["--root-mib", str(ROOT_MIB), "--overlay", fill_overlay(tmp)])
    x = ntcguest.make_disk2(disk1, os.path.join(tmp, "first-x.img"))
    y = ntcguest.make_disk2(disk1, os.path.join(tmp, "first-y.img"))
    with ntclab.guest_for_disk("first-bench", disk1, disks=[disk1, x, y], mem_mib=MEM_MIB, cpus=2) as g:
        g.wait_ready()
        g.sh("ntc-counter /data/counter.log 50 >/dev/null & :")
        g.sh("sleep 5")
        rows = [take(g, "/dev/vdb3"), take(g, "/dev/vdc3")]
        g.poweroff()
    return rows


def main():
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        clone, full = run(tmp)
    lines = ["| checkpoint | disk_copy | blocks read | disk copy s | whole s | pause ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in (("onto fresh clone X", clone), ("onto Y after it (full compare)", full)):
        lines.append(f"| {name} | {r['copy']} | {r['read']} | {r['copy_ms'] / 1000:.2f} | "
                     f"{r['total_ms'] / 1000:.1f} | {r['pause_ms']:.0f} |")
    lines += ["", f"since_clone / full compare: blocks read {clone['read'] / full['read']:.3f}, "
              f"disk copy time {clone['copy_ms'] / full['copy_ms']:.3f} (target <= 0.1 each); "
              f"whole checkpoint {clone['total_ms'] / full['total_ms']:.3f}.", "",
              f"X: {clone['note']}"]
    bench_report.publish("first_checkpoint", "the first checkpoint after a clone",
                         f"QEMU {ntclab.accel().upper()}, {MEM_MIB} MiB guest, 2 vCPUs; disk 1 with a "
                         f"{ROOT_MIB} MiB root holding {FILL_MIB} MiB of random files, a 64 MiB data partition "
                         "and 1 GiB of swap; the counter writing /data.  Blocks read = `disk_blocks_read` of "
                         "/proc/ntc (4 KiB blocks of disk 1 and disk 2), disk copy = its `disk_copy_ms` (the "
                         "copy passes before the freeze and inside it); both checkpoints write a whole image "
                         "too, which the whole time includes.",
                         "\n".join(lines), t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
