"""ntc.ko benchmark (issue 3): for guests of 256, 512 and 1024 MiB whose
memory is half taken by a workload, in one boot each:

* raw sequential write MB/s of disk 2's snapshot area, measured in the guest
  (dd, 1 MiB blocks, fsync);
* a checkpoint: pause ms, image MB, image write MB/s (and its ratio to raw);
* the disk delta copied while frozen, with pre-copy and without
  (module parameter precopy=0), while a writer keeps changing /data;
* stock hibernation of the same guest (`echo disk > /sys/power/state`, disk
  1's swap active): how long it keeps the guest stopped, from "Freezing user
  space processes" to the console's suspension just before power-off, and the ratio of NTC's pause to it.

Figures are printed side by side and written to build/bench/kmod.md; nothing
is asserted about times (targets: write >= 0.8x raw, pause <= 0.6x stock).
Set NTC_BENCH_MEM="256 512" to choose the sizes.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import ntcguest  # noqa: E402
import bench_report  # noqa: E402
from ntcguest import ntclab  # noqa: E402



def uptime_pair(out, tag):
    m = re.search(tag + r" ([\d.]+) \S+ ([\d.]+)", out)
    return float(m.group(2)) - float(m.group(1))


def stock_hibernation(g):
    """Hibernates the guest the stock way; returns the seconds it was stopped."""
    g.sh("echo 7 > /proc/sys/kernel/printk")
    start = len(g.out)
    g.send("echo disk > /sys/power/state")
    g.wait_exit(900)
    log = g.text(start)
    t0 = re.search(r"\[\s*([\d.]+)\] Freezing user space processes", log)
    # The console is suspended just before power_down(): its last line.
    t1 = (re.findall(r"\[\s*([\d.]+)\] (?:printk: Suspending console|reboot: Power down)", log)
          or [None])[-1]
    if not (t0 and t1):
        g.fail("no freeze/power-down lines from stock hibernation")
    return float(t1) - float(t0.group(1))


def run(mem, tmp):
    r = {"mem": mem}
    disk1 = ntcguest.build_disk1(tmp, name=f"bench{mem}.img", swap_mib=2 * mem)
    disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, f"bench{mem}-2.img"))
    with ntclab.guest_for_disk(f"kmod-bench-{mem}", disk1, disks=[disk1, disk2],
                               mem_mib=mem, cpus=2) as g:
        g.wait_ready()
        g.sh(f"ntc-memhog {mem // 2} >/dev/null & :")
        g.sh("while ! grep -q . /proc/$(pidof ntc-memhog)/status; do sleep 1; done")
        # Let the hog finish filling its memory (it prints nothing here).
        g.sh(f"sleep {max(5, mem // 64)}")

        raw_mib = mem // 2
        _, out = g.sh(f"a=$(cat /proc/uptime); dd if=/dev/zero of=/dev/vdb3 bs=1M seek=1 "
                      f"count={raw_mib} conv=fsync 2>/dev/null; b=$(cat /proc/uptime); "
                      f"echo RAW $a $b", 600)
        r["raw_mbs"] = raw_mib * 1.048576 / uptime_pair(out, "RAW")

        rc, st = ntcguest.checkpoint(g, 900)
        if rc != 0:
            g.fail(f"checkpoint failed: {st}")
        r["pause_ms"] = float(st["pause_ms"])
        r["snapshot_ms"] = float(st["snapshot_ms"])
        r["image_mb"] = int(st["image_bytes"]) / 1e6
        r["write_mbs"] = int(st["image_bytes"]) / 1e6 / max(int(st["write_ms"]), 1) * 1000
        r["total_ms"] = int(st["total_ms"])

        g.sh("(while :; do dd if=/dev/urandom of=/data/churn bs=64k count=32 conv=fsync "
             "2>/dev/null; done) >/dev/null 2>&1 & :")
        g.sh("sleep 2")
        rc, st = ntcguest.checkpoint(g, 900)
        if rc != 0:
            g.fail(f"checkpoint with pre-copy failed: {st}")
        r["frozen_pre"] = int(st["disk_blocks_frozen"])
        r["precopied"] = int(st["disk_blocks_precopy"])
        r["pause_pre_ms"] = float(st["pause_ms"])
        g.sh("echo 0 > /sys/module/ntc/parameters/precopy; sleep 2")
        rc, st = ntcguest.checkpoint(g, 900)
        if rc != 0:
            g.fail(f"checkpoint without pre-copy failed: {st}")
        r["frozen_nopre"] = int(st["disk_blocks_frozen"])
        r["pause_nopre_ms"] = float(st["pause_ms"])
    # Stock hibernation of the same guest in a fresh boot with the same
    # workload, so that its memory is as "cold" as at NTC's first checkpoint.
    with ntclab.guest_for_disk(f"kmod-bench-{mem}-stock", disk1, disks=[disk1, disk2],
                               mem_mib=mem, cpus=2) as g:
        g.wait_ready()
        g.sh(f"ntc-memhog {mem // 2} >/dev/null & :")
        g.sh(f"sleep {max(5, mem // 64)}")
        g.sh("sync")
        r["stock_ms"] = stock_hibernation(g) * 1000
    for f in (disk1, disk2):
        os.unlink(f)
    return r


def main():
    sizes = [int(x) for x in os.environ.get("NTC_BENCH_MEM", "256 512 1024").split()]
    rows = []
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        for mem in sizes:
            print(f"--- {mem} MiB guest", flush=True)
            r = run(mem, tmp)
            print(r, flush=True)
            rows.append(r)
    head = ("| RAM MiB | image MB | pause ms, 1st checkpoint | of which snapshot ms | "
            "pause ms, later checkpoints | stock stopped ms | pause/stock 1st, later "
            "(target <= 0.6) | write MB/s | raw MB/s | write/raw (target >= 0.8) | "
            "frozen blocks, pre-copy | frozen blocks, no pre-copy | blocks pre-copied |")
    lines = [head, "| " + " | ".join(["---"] * (head.count("|") - 1)) + " |"]
    for r in rows:
        later = (r["pause_pre_ms"] + r["pause_nopre_ms"]) / 2
        lines.append(f"| {r['mem']} | {r['image_mb']:.0f} | {r['pause_ms']:.0f} | "
                     f"{r['snapshot_ms']:.0f} | {later:.0f} | {r['stock_ms']:.0f} | "
                     f"{r['pause_ms'] / r['stock_ms']:.2f}, {later / r['stock_ms']:.2f} | "
                     f"{r['write_mbs']:.0f} | {r['raw_mbs']:.0f} | "
                     f"{r['write_mbs'] / r['raw_mbs']:.2f} | "
                     f"{r['frozen_pre']} | {r['frozen_nopre']} | {r['precopied']} |")
    table = "\n".join(lines)
    print(table)
    bench_report.write("kmod", "## kmod: ntc.ko checkpoint vs stock hibernation (QEMU "
                       f"{ntclab.accel().upper()}, 2 vCPUs)\n\n"
                       "Workload: half of RAM filled by ntc-memhog; for the frozen disk "
                       "delta, a writer rewrites 2 MiB on /data in a loop. Pause = user space "
                       "frozen; stock stopped = freeze to power-off of `echo disk > "
                       "/sys/power/state` in a fresh boot with the same workload (LZO, its "
                       "default). Later checkpoints find memory already reclaimed. Raw = busybox "
                       "dd of 1 MiB blocks to disk 2's area with fsync. Blocks are 4 KiB.\n\n" + table + "\n\n"
                       f"Run time {time.monotonic() - t0:.0f} s.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
