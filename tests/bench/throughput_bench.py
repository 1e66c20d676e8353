"""What a checkpoint costs the workload afterwards (issue 17): a guest under
QEMU with disk 1's swap active and half of its RAM written round and round
by ntc-memsweep.  Its pages per second in the 10 s before a checkpoint
(before `echo checkpoint` starts, once its speed settled), in the 10 s
after the thaw (while ntc.ko writes the image), in the 10 s after the
command returns, and the 10 s after those, for three checkpoints
in a row.  ntc.ko reclaims memory before the freeze until the image fits
/sys/power/image_size (2/5 of RAM by default), pushing the workload's
pages out to swap; the workload takes them back afterwards, page fault by
page fault.  The third checkpoint raises image_size to all of RAM, so that
the reclaim only makes room for the atomic copy (about half of RAM).

Printed and written to build/bench/throughput.md; nothing is asserted
(target: after >= 0.9x before).  NTC_BENCH_THROUGHPUT_MEM chooses the
sizes in MiB (default "1024").
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import bench_report  # noqa: E402
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

WINDOW_S = 10
LOG = "/tmp/sweep.log"


def pages_per_s(g, start, end):
    """ntc-memsweep's pages per second between two of its timestamps, from
    its last lines at or before each."""
    _, out = g.sh(f"awk '$3 <= {start} {{a = $2; ta = $3}} $3 <= {end} {{b = $2; tb = $3}} "
                  f"END {{print \"RATE\", a + 0, ta + 0, b + 0, tb + 0}}' {LOG}")
    a, ta, b, tb = (float(x) for x in re.search(r"RATE (\S+) (\S+) (\S+) (\S+)", out).groups())
    if not (ta and tb > ta):
        g.fail(f"ntc-memsweep logged nothing between {start} and {end} s: {out}")
    return (b - a) / (tb - ta)


def wait_steady(g, limit_s=180):
    """Until two 5 s windows in a row agree within 10%: the workload's speed
    settles for tens of seconds after it starts and after a checkpoint
    (under TCG more than on hardware: huge pages, the translation cache)."""
    g.sh("sleep 5")
    last = None
    for _ in range(limit_s // 5):
        now = ntcguest.uptime(g)
        rate = pages_per_s(g, now - 5, now)
        if last and abs(rate - last) <= 0.1 * rate:
            return
        last = rate
        g.sh("sleep 5")
    g.fail(f"ntc-memsweep's speed did not settle in {limit_s} s")


def run(mem, tmp):
    r = {"mem": mem, "checkpoints": []}
    disk1 = ntcguest.build_disk1(tmp, name=f"throughput{mem}.img", swap_mib=2 * mem)
    disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, f"throughput{mem}-2.img"))
    with ntclab.guest_for_disk(f"throughput-bench-{mem}", disk1, disks=[disk1, disk2], mem_mib=mem, cpus=2) as g:
        g.wait_ready()
        _, swaps = g.sh("echo SWAPS $(tail -n +2 /proc/swaps | wc -l)")
        ntclab.check(re.search(r"SWAPS [1-9]", swaps) is not None, f"no swap active: {swaps}", g)
        # With transparent huge pages the workload's speed moved between 7
        # and 37 M pages/s within a minute, unrelated to the checkpoints
        # (huge pages made and split by faults, reclaim and khugepaged), so
        # that before and after could not be compared; without, it held.
        g.sh("echo never > /sys/kernel/mm/transparent_hugepage/enabled")
        g.sh(f"ntc-memsweep {mem // 2} {LOG} & :")
        g.sh(f"while ! [ -s {LOG} ]; do sleep 1; done", 600)
        _, out = g.sh("echo IMAGE_SIZE $(cat /sys/power/image_size)")
        default_size = int(re.search(r"IMAGE_SIZE (\d+)", out).group(1))
        for image_size in (default_size, default_size, mem << 20):
            g.sh(f"echo {image_size} > /sys/power/image_size")
            wait_steady(g)
            t0 = ntcguest.uptime(g)
            rc, st = ntcguest.checkpoint(g, 900)
            t1 = ntcguest.uptime(g)
            if rc != 0 or st.get("result") != "0":
                g.fail(f"checkpoint failed: {rc} {st}")
            g.sh(f"sleep {2 * WINDOW_S + 1}")
            thawed = int(st["thawed_uptime_ms"]) / 1000
            r["checkpoints"].append({"before": pages_per_s(g, t0 - WINDOW_S, t0),
                                     "after_thaw": pages_per_s(g, thawed, thawed + WINDOW_S),
                                     "after": pages_per_s(g, t1, t1 + WINDOW_S),
                                     "later": pages_per_s(g, t1 + WINDOW_S, t1 + 2 * WINDOW_S),
                                     "pause_ms": float(st["pause_ms"]),
                                     "shrunk_mb": int(st["shrunk_pages"]) * 4096 / 1e6,
                                     "image_mb": int(st["image_bytes"]) / 1e6, "took_s": t1 - t0,
                                     "image_size_mb": image_size / 1e6,
                                     "frozen_reclaimed": int(st["frozen_reclaimed_pages"])})
            print(r["checkpoints"][-1], flush=True)
    for f in (disk1, disk2):
        os.unlink(f)
    return r


def main():
    sizes = [int(x) for x in os.environ.get("NTC_BENCH_THROUGHPUT_MEM", "1024").split()]
    t0 = time.monotonic()
    head = ("| RAM MiB | checkpoint | image_size MB | pages/s before | pages/s after the thaw | "
            "after the thaw/before (target >= 0.9) | pages/s after the command | after the command/before | "
            f"pages/s {WINDOW_S}-{2 * WINDOW_S} s after it | reclaimed before the freeze MB | reclaimed frozen pages | "
            "image MB | pause ms | checkpoint took s |")
    lines = [head, "| " + " | ".join(["---"] * (head.count("|") - 1)) + " |"]
    with ntcguest.workdir() as tmp:
        for mem in sizes:
            print(f"--- {mem} MiB guest", flush=True)
            r = run(mem, tmp)
            for n, c in enumerate(r["checkpoints"], 1):
                lines.append(f"| {mem} | {n} | {c['image_size_mb']:.0f} | {c['before']:.0f} | {c['after_thaw']:.0f} | "
                             f"{c['after_thaw'] / c['before']:.2f} | {c['after']:.0f} | "
                             f"{c['after'] / c['before']:.2f} | {c['later']:.0f} | {c['shrunk_mb']:.0f} | "
                             f"{c['frozen_reclaimed']} | {c['image_mb']:.0f} | {c['pause_ms']:.0f} | {c['took_s']:.1f} |")
    table = "\n".join(lines)
    print(table)
    bench_report.write("throughput", "## throughput: the workload after a checkpoint, with swap (QEMU "
                       f"{ntclab.accel().upper()}, 2 vCPUs)\n\n"
                       "Workload: ntc-memsweep writing one word of every page of half of RAM, round and "
                       f"round; disk 1's swap active; transparent huge pages off.  Pages per second in the {WINDOW_S} s before `echo "
                       f"checkpoint > /proc/ntc` starts (its speed settled first), in the {WINDOW_S} s "
                       f"after the thaw (`thawed_uptime_ms`: the guest runs again while ntc.ko writes the image), "
                       f"in the {WINDOW_S} s after the command returns, then the {WINDOW_S} s after those; three checkpoints in a row, the third with "
                       "/sys/power/image_size raised to all of RAM.  Reclaimed = ntc.ko's reclaim before the freeze "
                       "(`shrunk_pages`: the workload's pages pushed to swap, and page cache).\n\n" + table + "\n\n"
                       f"Run time {time.monotonic() - t0:.0f} s.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
