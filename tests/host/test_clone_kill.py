"""SIGKILL during ntc-clone and ntc-clone --update: the target never looks
like a finished clone that it is not, and running the command again finishes
it.

The source is a real guest disk (scripts/build-guest-disk.sh) with a few
hundred MiB of random data in its root filesystem, so that a copy has a
middle to be killed in.  Each run is killed when its own I/O (/proc/PID/io:
bytes read plus bytes written) reaches a share of what an uninterrupted run
of the same copy needed, measured first: the kill points spread over the copy
on a slow machine and a fast one alike.  A run that ends before its kill
point counts as finished and must then be a correct clone.

After each kill the target is judged by everything that could take it for a
clone: the signature at the end of its swap partition's page 0 (what ntc.ko
and swapon look at), ntc-info's text, ntc-info --json (through
ntcguest.Area) and ntc-info --check.  If any of them calls it a finished
clone, `ntc-clone --verify-only` and e2fsck must agree.  Then `ntc-clone
--update` (or, for a fresh clone killed before it wrote anything an update
could recognise, `ntc-clone --force`) must finish it into a verified clone.
Run alone: python3 tests/host/test_clone_kill.py (about 30 s).
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
import ntclab  # noqa: E402
import ntcguest  # noqa: E402

BIN = os.path.join(os.environ.get("NTC_BUILD", ntclab.BUILD), "bin")
CLONE = os.path.join(BIN, "ntc-clone")
INFO = os.path.join(BIN, "ntc-info")
MIB = 1 << 20
PAGE = 4096
RANDOM_MIB = 300
# Shares of an uninterrupted run's I/O at which the run is killed; "end" is
# all of it but the last page (the snapshot-area marker, written last).
POINTS = (0.05, 0.20, 0.40, 0.60, 0.80, 0.95, "end")
FINISHED_SIGS = (b"NTCAREA001", b"S1SUSPEND\0")


class Failure(Exception):
    pass


def run(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def proc_io(pid):
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(":") for line in f)
    return int(fields["rchar"]) + int(fields["wchar"])


def exited(pid):
    """True once pid has exited; it stays a zombie (not reaped) so that its
    /proc/PID/io can still be read and a kill cannot hit another process."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


def clone_run(args, kill_at=None):
    """Runs ntc-clone; with kill_at, SIGKILLs it once its I/O reaches kill_at
    bytes.  Returns (exit status, I/O bytes at exit or kill, seconds, stderr)."""
    start = time.monotonic()
    p = subprocess.Popen([CLONE, "-q"] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    io = 0
    while not exited(p.pid):
        io = proc_io(p.pid)
        if kill_at is not None and io >= kill_at:
            os.kill(p.pid, signal.SIGKILL)
            break
        if time.monotonic() - start > 300:
            os.kill(p.pid, signal.SIGKILL)
            raise Failure(f"ntc-clone {' '.join(args)} still running after 300 s")
        time.sleep(0.0002)
    else:
        io = proc_io(p.pid)
    seconds = time.monotonic() - start
    p.wait(timeout=300)
    return p.returncode, io, seconds, p.stderr.read().decode(errors="replace")


def swap_partition(disk):
    swaps = [p for p in ntclab.partitions(disk) if p.fstype == "swap"]
    assert len(swaps) == 1, f"{disk}: expected one swap partition"
    return swaps[0]


class Verdict:
    """What a (perhaps half-written) target looks like to each reader."""

    def __init__(self, dst, swap):
        self.claims = []        # the readers that take it for a finished clone
        self.seen = []          # what each reader said, for the report
        self.unfinished_clone = False   # ntc-info: an interrupted ntc-clone's area
        if not os.path.exists(dst):
            self.seen.append("no file")
            return
        sig = b""
        if os.path.getsize(dst) >= swap.offset + PAGE:
            with open(dst, "rb") as f:
                f.seek(swap.offset + PAGE - 10)
                sig = f.read(10)
        self.seen.append(f"sig {sig.rstrip(bytes(1)).decode(errors='replace') or '-'}")
        if sig in FINISHED_SIGS:
            self.claims.append(f"page 0 of the swap partition ends in {sig!r}")

        # The swap partition's line; its content column follows the name
        # (ntc-swap, from build-guest-disk.sh) and the used column.
        r = run(INFO, dst, check=False)
        line = next((l for l in r.stdout.splitlines() if l.strip().startswith(f"{swap.number} ")), "")
        content = line.split("ntc-swap", 1)[-1].split(None, 1)[-1].strip() if "ntc-swap" in line else ""
        self.seen.append(f"ntc-info {r.returncode} \"{content or r.stderr.strip()[:60]}\"")
        if "NTC snapshot area" in content or "NTC checkpoint" in content:
            self.claims.append(f"ntc-info calls partition {swap.number} \"{content}\"")

        rc = run(INFO, "--check", dst, check=False).returncode
        self.seen.append(f"--check {rc}")
        if rc == 0:
            self.claims.append("ntc-info --check reports a sound checkpoint")

        try:
            area = ntcguest.Area(dst)
            self.seen.append(f"json {area.kind}{' +record' if area.record_ok else ''}")
            if area.kind in ("ntc-area", "ntc-checkpoint") and area.record_ok:
                self.claims.append(f"ntc-info --json: {area!r}")
        except (ntclab.LabError, json.JSONDecodeError) as e:
            self.seen.append("json no area" if "found 0" in str(e) else "json unreadable")
        if r.returncode != 1:
            report = json.loads(run(INFO, "--json", dst, check=False).stdout)
            self.unfinished_clone = any(p.get("unfinished_clone") for p in report["partitions"])
            if self.unfinished_clone:
                self.seen.append("unfinished clone")

    def looks_finished(self):
        return bool(self.claims)

    def summary(self):
        return ", ".join(self.seen)


def verify(src, dst):
    """Problems that make dst not a clone of src: ntc-clone --verify-only and
    e2fsck on each ext partition."""
    r = run(CLONE, "--verify-only", src, dst, check=False)
    problems = [] if r.returncode == 0 else [f"--verify-only exit {r.returncode}: " +
                                             " | ".join((r.stdout + r.stderr).strip().splitlines()[:4])]
    ext = [p.offset for p in ntclab.partitions(src) if p.fstype == "ext4"]
    for problem in ntclab.e2fsck_clean(dst, ext):
        first, *rest = problem.splitlines()
        said = [line.strip() for line in rest if line.strip() and not line.startswith(("Pass ", "e2fsck "))]
        problems.append(f"e2fsck -fn {first}: {' | '.join(said)[:200]}")
    return problems


def file_md5(disk, offset, path):
    """MD5 of a file inside an ext filesystem of a disk image, read by debugfs."""
    p = subprocess.Popen(["debugfs", "-R", f"cat {path}", f"{disk}?offset={offset}"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    h = hashlib.md5()
    for block in iter(lambda: p.stdout.read(MIB), b""):
        h.update(block)
    p.wait()
    return h.hexdigest()


def build_source(tmp):
    """A guest disk whose root holds RANDOM_MIB of random data."""
    overlay = os.path.join(tmp, "overlay")
    os.makedirs(os.path.join(overlay, "var", "big"))
    with open(os.path.join(overlay, "var", "big", "random.bin"), "wb") as f:
        for _ in range(RANDOM_MIB):
            f.write(os.urandom(MIB))
    built, src = os.path.join(tmp, "built.img"), os.path.join(tmp, "disk1.img")
    subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), built,
                    "--swap-mib", "64", "--root-mib", str(RANDOM_MIB + 160), "--overlay", overlay],
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    os.unlink(os.path.join(overlay, "var", "big", "random.bin"))
    # mkfs.ext4 leaves unwritten extents, which SEEK_DATA counts as data once
    # something has read them into the page cache: a copy made by cp holds
    # only data and holes, so every run of ntc-clone does the same I/O.
    subprocess.run(["cp", "--sparse=always", built, src], check=True)
    os.unlink(built)
    return src


def change_source(tmp, src):
    """Changes blocks all over the source, as a guest that ran would: 1 MiB
    rewritten at eight places of the random file (in place, raw), a new
    file in the root and one in the data filesystem (new inodes, bitmaps,
    directory blocks, data)."""
    root, data = [p for p in ntclab.partitions(src) if p.fstype == "ext4"]
    blocks = [int(b) for b in run("debugfs", "-R", "blocks /var/big/random.bin",
                                  f"{src}?offset={root.offset}").stdout.split()]
    with open(src, "r+b") as f:
        for i in range(8):
            first = blocks[(2 * i + 1) * len(blocks) // 16]
            for k in range(MIB // PAGE):
                f.seek(root.offset + (first + k) * PAGE)
                f.write(os.urandom(PAGE))
    small = os.path.join(tmp, "new.bin")
    with open(small, "wb") as f:
        f.write(os.urandom(3 * MIB))
    run("debugfs", "-w", "-R", f"write {small} /var/big/new.bin", f"{src}?offset={root.offset}")
    run("debugfs", "-w", "-R", f"write {small} /new.bin", f"{src}?offset={data.offset}")
    for p in (root, data):
        problems = ntclab.e2fsck_clean(src, [p.offset])
        assert not problems, f"the changed source is not clean: {problems}"


def kill_series(mode, src, dst, total, prepare, swap, log):
    """Kills `ntc-clone` (mode fresh) or `ntc-clone --update` at each of
    POINTS, judges the target, then finishes it with a second run."""
    failures, interrupted = [], 0
    for point in POINTS:
        prepare()
        kill_at = total - PAGE if point == "end" else int(total * point)
        args = (["--update"] if mode == "update" else []) + [src, dst]
        rc, io, secs, err = clone_run(args, kill_at)
        label = f"{mode:6} kill at {'end' if point == 'end' else f'{point:.0%}':>4}"
        where = f"io {io / MIB:6.1f}/{total / MIB:.1f} MiB, {secs:5.3f} s"
        if rc not in (0, -signal.SIGKILL):
            failures.append(f"{label}: ntc-clone failed by itself (exit {rc}): {err.strip()}")
            log(f"{label} ({where}): FAILED, exit {rc}")
            continue
        outcome = "finished" if rc == 0 else "killed"
        v = Verdict(dst, swap)
        status = "not finished"
        interrupted += not v.looks_finished()
        if v.looks_finished() or rc == 0:
            problems = verify(src, dst)
            if rc == 0 and not v.looks_finished():
                failures.append(f"{label}: ntc-clone ended, but the target does not look like a clone: "
                                f"{v.summary()}")
                status = "FINISHED RUN, NO MARKER"
            elif problems:
                failures.append(f"{label}: the target looks like a finished clone ("
                                f"{'; '.join(v.claims)}) but it is not one: {'; '.join(problems)}")
                status = "LOOKS FINISHED, IS NOT"
            else:
                status = "finished, verified"

        # The recovery: --update finishes what ntc-clone began.  Only a fresh
        # clone killed before its partition table and its unfinished-clone
        # page were written is not recognisable as a clone: --force then.
        recognisable = mode == "update" or v.unfinished_clone or v.looks_finished()
        again = "--update" if recognisable else "--force"
        r = run(CLONE, "-q", again, src, dst, check=False)
        if r.returncode != 0:
            failures.append(f"{label}: the second run ({again}) failed: {r.stderr.strip()}")
            recovery = f"{again} FAILED"
        else:
            problems = verify(src, dst)
            after = Verdict(dst, swap)
            if problems or not after.looks_finished():
                failures.append(f"{label}: after {again}, not a finished clone: "
                                f"{'; '.join(problems) or after.summary()}")
                recovery = f"{again} NOT A CLONE"
            else:
                recovery = f"{again} verified"
        log(f"{label} ({where}): {outcome:8} -> {v.summary()} => {status}; then {recovery}")
    if interrupted < 3:
        failures.append(f"{mode}: only {interrupted} of {len(POINTS)} runs were stopped before their end: "
                        f"the copy is too quick to test here (raise RANDOM_MIB)")
    return failures


def main():
    t0 = time.monotonic()

    def log(text):
        print(text, flush=True)

    with tempfile.TemporaryDirectory(dir=ntclab.BUILD) as tmp:
        src = build_source(tmp)
        swap = swap_partition(src)
        root = next(p for p in ntclab.partitions(src) if p.fstype == "ext4")
        old = os.path.join(tmp, "old.img")
        dst = os.path.join(tmp, "target.img")
        log(f"source {os.path.getsize(src) // MIB} MiB with {RANDOM_MIB} MiB of random data, "
            f"built in {time.monotonic() - t0:.1f} s")

        # The uninterrupted runs: how much I/O each copy needs, and the earlier
        # clone that --update refreshes.
        rc, fresh_total, secs, err = clone_run([src, old])
        assert rc == 0, f"ntc-clone failed: {err}"
        assert not verify(src, old), verify(src, old)
        log(f"fresh  uninterrupted: io {fresh_total / MIB:.1f} MiB in {secs:.3f} s")

        def fresh_target():
            if os.path.exists(dst):
                os.unlink(dst)

        failures = kill_series("fresh", src, dst, fresh_total, fresh_target, swap, log)
        random_md5 = file_md5(src, root.offset, "/var/big/random.bin")
        if file_md5(dst, root.offset, "/var/big/random.bin") != random_md5:
            failures.append("fresh: after the last recovery, /var/big/random.bin differs (debugfs)")

        change_source(tmp, src)
        assert verify(src, old), "the changed source still verifies against the old clone"

        def old_clone():
            subprocess.run(["cp", "--sparse=always", old, dst], check=True)

        old_clone()
        rc, update_total, secs, err = clone_run(["--update", src, dst])
        assert rc == 0, f"ntc-clone --update failed: {err}"
        assert not verify(src, dst), verify(src, dst)
        log(f"update uninterrupted: io {update_total / MIB:.1f} MiB in {secs:.3f} s")

        failures += kill_series("update", src, dst, update_total, old_clone, swap, log)
        for path in ("/var/big/random.bin", "/var/big/new.bin"):
            if file_md5(dst, root.offset, path) != file_md5(src, root.offset, path):
                failures.append(f"update: after the last recovery, {path} differs (debugfs)")

    log(f"total {time.monotonic() - t0:.1f} s")
    ntclab.report(failures, "clone killed part-way never looks finished: passed")


if __name__ == "__main__":
    main()
