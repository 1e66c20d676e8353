"""ntc-clone against cp --sparse=always, e2image -ra and dd conv=sparse, side by
side in one run, on (a) a 4 GiB GPT disk whose ext4 partition holds 1 GiB of
files and (b) the same after 1 GiB more was written and deleted.  Reports wall
time and peak memory, and the ratios the issue sets targets for."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lab"))
import bench_report  # noqa: E402
import ntclab  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
PART_OFFSET = MIB
BIN = os.path.join(os.environ.get("NTC_BUILD", ntclab.BUILD), "bin")


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def make_tree(root, total, prefix):
    """Files of 1-16 MiB of incompressible data, total bytes in all."""
    os.makedirs(root, exist_ok=True)
    left, i = total, 0
    with open("/dev/urandom", "rb") as rnd:
        while left > 0:
            size = min(left, (1 + i % 16) * MIB)
            with open(os.path.join(root, f"{prefix}{i:04d}.bin"), "wb") as f:
                f.write(rnd.read(size))
            left -= size
            i += 1


def make_disks(work):
    a = os.path.join(work, "a.img")
    tree = os.path.join(work, "tree")
    make_tree(tree, GIB, "f")
    sh(f"truncate -s 4G {a}")
    sh(f"mkfs.ext4 -q -F -b 4096 -E offset={PART_OFFSET} -d {tree} {a} {4 * 1024 - 2}M")
    sh(f"sgdisk -o -n 1:1M:+{4 * 1024 - 2}M -t 1:8300 {a}")
    shutil.rmtree(tree)

    b = os.path.join(work, "b.img")
    sh(f"cp --sparse=always {a} {b}")
    extra = os.path.join(work, "extra")
    make_tree(extra, GIB, "x")
    cmds = os.path.join(work, "debugfs.cmds")
    names = sorted(os.listdir(extra))
    with open(cmds, "w") as f:
        f.write("mkdir /scratch\n")
        for n in names:
            f.write(f"write {extra}/{n} /scratch/{n}\n")
    sh(f"debugfs -w -f {cmds} '{b}?offset={PART_OFFSET}'")
    with open(cmds, "w") as f:
        for n in names:
            f.write(f"rm /scratch/{n}\n")
        f.write("rmdir /scratch\n")
    sh(f"debugfs -w -f {cmds} '{b}?offset={PART_OFFSET}'")
    shutil.rmtree(extra)
    return a, b


def evict(path):
    """Drops the file's clean pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def measure(cmd, src, dst, cold):
    """(seconds, peak RSS MiB) of one command, GNU time's figure for memory."""
    if os.path.exists(dst):
        os.unlink(dst)
    sh("sync")
    if cold:
        evict(src)
    start = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    secs = time.monotonic() - start
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr[-800:]}")
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    sh("sync")
    if os.path.exists(dst):
        os.unlink(dst)
    return secs, rss_kib / 1024


def tools(src, dst):
    return {
        "ntc-clone": [os.path.join(BIN, "ntc-clone"), "-q", src, dst],
        "ntc-clone + sync": ["sh", "-c", f"{BIN}/ntc-clone -q {src} {dst} && sync {dst}"],
        "cp --sparse=always": ["cp", "--sparse=always", src, dst],
        # cp made durable, as ntc-clone makes a block device or an existing file.
        "cp --sparse=always + sync": ["sh", "-c", f"cp --sparse=always {src} {dst} && sync {dst}"],
        "e2image -ra": ["e2image", "-ra", "-o", str(PART_OFFSET), "-O", str(PART_OFFSET), src, dst],
        "dd conv=sparse": ["dd", f"if={src}", f"of={dst}", "bs=1M", "conv=sparse", "status=none"],
        # Not a copy: how long reading SRC alone takes, the floor from a cold cache.
        "cat SRC > /dev/null": ["sh", "-c", f"cat {src} > /dev/null"],
    }


def bench(report, label, src, work, cold, rounds=5):
    """Warm: every tool starts with the source in the page cache.  Cold: with
    none of it there, so that reading the source counts too."""
    dst = os.path.join(work, "out.img")
    if not cold:
        sh(f"cat {src} > /dev/null")
    results = {}
    for name, cmd in tools(src, dst).items():
        runs = [measure(cmd, src, dst, cold) for _ in range(rounds)]
        results[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
    report.append(f"\n### ({label}), {'cold' if cold else 'warm'} page cache\n")
    report.append("| tool | wall s (best of %d) | peak RSS MiB |" % rounds)
    report.append("| --- | ---: | ---: |")
    for name, (secs, rss) in results.items():
        report.append(f"| {name} | {secs:.2f} | {rss:.1f} |")
    return results


def main():
    work = os.path.join(ntclab.BUILD, "bench-clone")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        a, b = make_disks(work)
        report = ["## ntc-clone against the usual tools",
                  "4 GiB GPT disk image, ext4 partition; (a) 1 GiB of files; "
                  "(b) the same after 1 GiB more was written and deleted."]
        rows = []
        for cold in (False, True):
            ra = bench(report, "a", a, work, cold)
            rb = bench(report, "b", b, work, cold)
            n, cp, e2 = "ntc-clone", "cp --sparse=always", "e2image -ra"
            cache = "cold" if cold else "warm"
            rows += [
                (f"(a) ntc-clone / cp time, {cache}", ra[n][0] / ra[cp][0], "<= 1.1"),
                (f"(b) cp / ntc-clone time, {cache}", rb[cp][0] / rb[n][0], ">= 1.5"),
                (f"(a) e2image / ntc-clone time, {cache}", ra[e2][0] / ra[n][0], ">= 5"),
                (f"(b) e2image / ntc-clone time, {cache}", rb[e2][0] / rb[n][0], ">= 5"),
                (f"peak memory of ntc-clone, MiB, {cache}", max(ra[n][1], rb[n][1]), "< 64"),
            ]
        report.append("\n| ratio | measured | target |\n| --- | ---: | --- |")
        for name, value, target in rows:
            report.append(f"| {name} | {value:.2f} | {target} |")
        text = "\n".join(report) + "\n"
        print(text)
        bench_report.write("clone", text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
