"""Checkpoints shipped to a copy (issue 14): a 1 GiB guest under QEMU whose
disk 2 is 4 GiB, ntc-memsweep writing 5% of its RAM round and round, ten
checkpoints INTERVAL_S apart while it runs.

Per checkpoint: what ntc.ko wrote to disk 2 (`disk2_blocks_written`), its
write time and pause.  The first is shipped whole into a new copy; each
later one is shipped with `ntc-send --since` to the copy holding the one
before, through a pipe into `ntc-receive`: bytes sent against the bytes
the checkpoint truly changed (4 KiB blocks of disk 2 that differ from the
copy, counted before the send), and the wall time.  For one of them, side
by side: `rsync --inplace --no-whole-file` of the disk file onto a copy of
the previous state, and `cp` of the whole file.

Then the same guest again with RESIDENT_MIB more that never changes
(ntc-memhog) beside the sweep, for RESIDENT_CHECKPOINTS checkpoints: what a
later checkpoint writes against the first depends on how much of the
guest's memory the first image holds, which the first setting leaves
mostly free.

Printed and written to build/bench/ship.md; nothing is asserted (targets:
a later checkpoint writes <= 0.2x the first, bytes sent <= 1.2x the bytes
changed, time <= 0.1x rsync's).
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import bench_report  # noqa: E402
import ntcguest  # noqa: E402
from ntcguest import ntclab  # noqa: E402

MEM_MIB = 1024
SWEEP_MIB = MEM_MIB // 20
CHECKPOINTS = 10
INTERVAL_S = 15
RSYNC_AT = 5
RESIDENT_MIB = 256
RESIDENT_CHECKPOINTS = 4
BLOCK = 4096


def tool(name):
    return os.path.join(ntclab.BUILD, "bin", name)


def changed_blocks(a, b):
    """4 KiB blocks in which files a and b differ (same size)."""
    n = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if not x:
                return n
            if x != y:
                n += sum(x[i:i + BLOCK] != y[i:i + BLOCK] for i in range(0, len(x), BLOCK))


def ship(disk2, copy, since):
    """ntc-send [--since] | ntc-receive; (blocks sent, seconds)."""
    args = [tool("ntc-send"), disk2, "--json", "--quiet"] + (["--since", str(since)] if since else [])
    t = time.monotonic()
    send = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receive = subprocess.run([tool("ntc-receive"), copy, "--quiet"], stdin=send.stdout, capture_output=True,
                             text=True, timeout=900)
    send.stdout.close()
    _, err = send.communicate(timeout=60)
    seconds = time.monotonic() - t
    if send.returncode or receive.returncode:
        raise ntclab.LabError(f"shipping failed: ntc-send {send.returncode} {err.decode()}, "
                              f"ntc-receive {receive.returncode} {receive.stderr}")
    return json.loads(err)["blocks"], seconds


def rsync_onto(disk2, previous):
    """rsync --inplace of disk 2 onto a copy of its previous state: (seconds, literal bytes, bytes sent)."""
    t = time.monotonic()
    r = subprocess.run(["rsync", "--inplace", "--no-whole-file", "--stats", disk2, previous], capture_output=True,
                       text=True, timeout=1800, check=True)
    seconds = time.monotonic() - t

    def stat(name):
        return int(re.search(rf"{name}: ([\d,]+)", r.stdout).group(1).replace(",", ""))
    return seconds, stat("Literal data"), stat("Total bytes sent")


def run(tmp, resident_mib, checkpoints):
    """The guest with resident_mib held beside the sweep; the side-by-side
    comparison only without."""
    disk1 = ntcguest.build_disk1(tmp, name="ship.img", swap_mib=2048, extra=["--root-mib", "1536",
                                                                            "--data-mib", "512"])
    disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "ship-2.img"))
    copy = os.path.join(tmp, "ship-copy.img")
    rows, side = [], {}
    with ntclab.guest_for_disk("ship-bench", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB, cpus=2) as g:
        g.wait_ready()
        if resident_mib:
            g.sh(f"ntc-memhog {resident_mib} & :")
            g.expect(r"HOG READY", 300)
        g.sh(f"ntc-memsweep {SWEEP_MIB} /tmp/sweep.log >/dev/null & :")
        for n in range(1, checkpoints + 1):
            started = time.monotonic()
            rc, st = ntcguest.checkpoint(g, 900)
            if rc != 0 or st.get("result") != "0":
                g.fail(f"checkpoint {n} failed: {rc} {st}")
            row = {"n": n, "pause_ms": float(st["pause_ms"]), "write_ms": int(st["write_ms"]),
                   "hash_ms": int(st["image_hash_ms"]),
                   "written_mb": int(st["disk2_blocks_written"]) * BLOCK / 1e6}
            if n == 1 and not resident_mib:
                t = time.monotonic()
                subprocess.run(["cp", "--sparse=always", disk2, copy + ".cp"], check=True, timeout=900)
                side["cp_s"] = time.monotonic() - t
                os.unlink(copy + ".cp")
            if n == 1:
                blocks, row["ship_s"] = ship(disk2, copy, 0)
                row["sent_mb"] = blocks * BLOCK / 1e6
            else:
                row["changed_mb"] = changed_blocks(copy, disk2) * BLOCK / 1e6
                if n == RSYNC_AT and not resident_mib:
                    previous = copy + ".rsync"
                    subprocess.run(["cp", "--sparse=always", copy, previous], check=True, timeout=900)
                    side["rsync_s"], side["rsync_literal"], side["rsync_sent"] = rsync_onto(disk2, previous)
                    os.unlink(previous)
                blocks, row["ship_s"] = ship(disk2, copy, n - 1)
                row["sent_mb"] = blocks * BLOCK / 1e6
                if n == RSYNC_AT and not resident_mib:
                    side["ship_s"], side["ship_mb"] = row["ship_s"], row["sent_mb"]
            print(row, flush=True)
            rows.append(row)
            time.sleep(max(0.0, INTERVAL_S - (time.monotonic() - started)))
    size = os.path.getsize(disk2)
    for f in (disk1, disk2, copy):
        os.unlink(f)
    return rows, side, size


def table(rows):
    first, first_write = rows[0]["written_mb"], max(rows[0]["write_ms"], 1)
    head = ("| checkpoint | pause ms | written to disk 2 MB | written / first (target <= 0.2) | write ms | "
            "write / first (target <= 0.2) | of it hashing ms | "
            "changed MB | sent MB | sent / changed (target <= 1.2) | ship s |")
    lines = [head, "| " + " | ".join(["---"] * (head.count("|") - 1)) + " |"]
    for r in rows:
        changed = r.get("changed_mb")
        changed_text = "full send" if changed is None else f"{changed:.1f}"
        ratio = "" if changed is None else f"{r['sent_mb'] / changed:.2f}"
        lines.append(f"| {r['n']} | {r['pause_ms']:.0f} | {r['written_mb']:.1f} | {r['written_mb'] / first:.2f} | "
                     f"{r['write_ms']} | {r['write_ms'] / first_write:.2f} | {r['hash_ms']} | "
                     f"{changed_text} | {r['sent_mb']:.1f} | {ratio} | {r['ship_s']:.1f} |")
    return lines


def main():
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        rows, side, size = run(tmp, 0, CHECKPOINTS)
        resident_rows, _, _ = run(tmp, RESIDENT_MIB, RESIDENT_CHECKPOINTS)
    lines = table(rows)
    lines += ["", f"Checkpoint {RSYNC_AT} side by side, disk 2 of {size / 2**30:.1f} GiB:", "",
              "| way | seconds | MB sent | time / rsync (target <= 0.1) |", "| --- | --- | --- | --- |",
              f"| ntc-send --since {RSYNC_AT - 1} \\| ntc-receive | {side['ship_s']:.1f} | {side['ship_mb']:.1f} | "
              f"{side['ship_s'] / side['rsync_s']:.3f} |",
              f"| rsync --inplace --no-whole-file | {side['rsync_s']:.1f} | {side['rsync_sent'] / 1e6:.1f} "
              f"(literal data {side['rsync_literal'] / 1e6:.1f}) | 1 |",
              f"| cp --sparse=always (whole file) | {side['cp_s']:.1f} | {size / 1e6:.0f} (read) | "
              f"{side['cp_s'] / side['rsync_s']:.3f} |",
              "", f"The same guest holding {RESIDENT_MIB} MiB more that never changes (ntc-memhog):", ""]
    lines += table(resident_rows)
    bench_report.publish("ship", "checkpoints shipped to a copy",
                         f"QEMU {ntclab.accel().upper()}, {MEM_MIB} MiB guest, 2 vCPUs, disk 1's swap active; "
                         f"ntc-memsweep writing {SWEEP_MIB} MiB round and round; {CHECKPOINTS} checkpoints "
                         f"{INTERVAL_S} s apart.  Written = `disk2_blocks_written` of /proc/ntc (delta and image); "
                         "changed = 4 KiB blocks of disk 2 that differ from the copy at the previous checkpoint; "
                         "sent = blocks in the stream (history and page 0 included).  A later checkpoint "
                         "writes only the image pages that changed (image_pages_written of /proc/ntc).",
                         "\n".join(lines), t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
