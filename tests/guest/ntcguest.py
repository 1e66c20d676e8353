"""Shared pieces of the ntc.ko guest tests (test_checkpoint*.py).

Builds ntc.ko and the static workload programs, makes disk 1 with them and
disk 2 from it, drives checkpoints over the console and reads back what a
checkpoint left in disk 2's snapshot area.
"""
import collections
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lab"))
import ntclab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KMOD = os.path.join(ntclab.ROOT, "kmod")
WORKLOADS = ("ntc-counter", "ntc-ipc", "ntc-memhog", "ntc-memsweep", "ntc-echo", "ntc-timergap", "ntc-fsync-flood",
             "ntc-iops")

STATE_EMPTY, STATE_WRITING, STATE_CHECKPOINT = 0, 1, 2


def workdir():
    """A scratch directory under build/; kept for inspection if NTC_KEEP_TMP is set."""
    import tempfile
    if os.environ.get("NTC_KEEP_TMP"):
        path = tempfile.mkdtemp(dir=ntclab.BUILD, prefix="ntc-keep-")
        print("keeping", path)

        class Keep:
            def __enter__(self):
                return path

            def __exit__(self, *exc):
                return False
        return Keep()
    return tempfile.TemporaryDirectory(dir=ntclab.BUILD)


def keep_copy(disk):
    """With NTC_KEEP_TMP, a copy of disk 2 as the checkpoint left it (B consumes it)."""
    if os.environ.get("NTC_KEEP_TMP"):
        subprocess.run(["cp", "--sparse=always", disk, disk + ".orig"], check=True)


def build_module():
    krel = ntclab.guest_kernel_release()
    subprocess.run(["make", "-s", "-C", KMOD, f"KREL={krel}"], check=True, timeout=600)
    return os.path.join(KMOD, "ntc.ko")


def build_overlay(tmp):
    """An overlay with the workload programs in /usr/bin, compiled static."""
    overlay = os.path.join(tmp, "overlay")
    bindir = os.path.join(overlay, "usr", "bin")
    os.makedirs(bindir, exist_ok=True)
    for name in WORKLOADS:
        subprocess.run(["gcc", "-static", "-O2", "-Wall", "-pthread", "-o", os.path.join(bindir, name),
                        os.path.join(HERE, "workloads", name + ".c")], check=True, timeout=120)
    return overlay


def build_disk1(tmp, name="disk1.img", swap_mib=256, module=True, extra=()):
    disk = os.path.join(tmp, name)
    args = [os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), disk,
            "--swap-mib", str(swap_mib), "--overlay", build_overlay(tmp)]
    if module:
        args += ["--module", build_module()]
    subprocess.run(args + list(extra), check=True, timeout=300)
    return disk


def make_disk2(disk1, disk2):
    """Disk 2 from disk 1 with ntc-clone (make host builds build/bin/ntc-clone)."""
    clone = os.path.join(ntclab.BUILD, "bin", "ntc-clone")
    if not os.access(clone, os.X_OK):
        raise ntclab.LabError(f"{clone} is missing: run 'make host' first")
    subprocess.run([clone, disk1, disk2], check=True, timeout=300)
    return disk2


class Area:
    """What disk 2's snapshot area holds, as ntc-info reads it (--json):
    the tests and the host tool share one parser of the format."""

    def __init__(self, disk):
        tool = os.path.join(ntclab.BUILD, "bin", "ntc-info")
        r = subprocess.run([tool, "--json", disk], capture_output=True, text=True, timeout=120)
        if r.returncode == 1:
            raise ntclab.LabError(f"ntc-info {disk}: {r.stderr}")
        areas = [p for p in json.loads(r.stdout)["partitions"] if "area" in p]
        if len(areas) != 1:
            raise ntclab.LabError(f"{disk}: expected one swap partition, found {len(areas)}")
        self.number = areas[0]["number"]
        area = areas[0]["area"]
        self.kind = area["kind"]            # swap, ntc-area, ntc-checkpoint, hibernation-image
        self.problem = area.get("problem", "")
        record = area.get("record")
        self.record_ok = record is not None
        record = record or {}
        self.state = record.get("state")
        self.sequence = record.get("sequence", 0)
        self.image_pages = record.get("image_pages", 0)
        self.generation = record.get("generation", 0)
        self.history_since = record.get("history_since", 0)
        self.cpus = record.get("cpus", 0)
        self.origin = [o["partno"] for o in record.get("origin", [])]   # clone origin's partitions

    def valid_checkpoint(self):
        return self.kind == "ntc-checkpoint" and self.record_ok and self.state == STATE_CHECKPOINT

    def __repr__(self):
        return (f"Area(kind={self.kind}, state={self.state}, record_ok={self.record_ok}, "
                f"sequence={self.sequence}, image_pages={self.image_pages}, generation={self.generation}, "
                f"history_since={self.history_since}, origin={self.origin}, problem={self.problem!r})")


def ntc_info_check(disk):
    """ntc-info --check's exit status on disk.  Holdings that do not check
    (or do not cover the image) leave a checkpoint sound, so ntc-info
    accepts them; but ntc.ko wrote them, so here they fail the test."""
    tool = os.path.join(ntclab.BUILD, "bin", "ntc-info")
    r = subprocess.run([tool, "--check", "--json", disk], capture_output=True, text=True, timeout=300)
    if r.returncode == 0:
        for p in json.loads(r.stdout)["partitions"]:
            problem = p.get("area", {}).get("check", {}).get("holdings_problem")
            if problem:
                raise ntclab.LabError(f"ntc.ko wrote holdings that ntc-info --check finds wrong: {problem}")
    return r.returncode


class CutPoint(collections.namedtuple("CutPoint", "point keep expected reload fill_mib", defaults=(False, 0))):
    """Where a power cut is tried (ntc.ko's stall_at=), whether checkpoint 2
    keeps checkpoint 1 resumable meanwhile (keep_previous=), the checkpoint
    disk 2 must hold afterwards (0: none), whether ntc.ko is loaded again
    between the two (so that only checkpoint 1's holdings on disk 2 say
    which slots it uses), and how many MiB of random data the guest holds
    in a tmpfs from before checkpoint 1 (test_checkpoint_kill.py: enough,
    and the area cannot hold the two checkpoints side by side)."""

    @property
    def label(self):
        where = self.point if self.keep else f"{self.point}-in-place"
        if self.reload:
            where += "-after-reload"
        return f"{where}-given-up" if self.fill_mib else where


# Kept: checkpoint 1 until the header of checkpoint 2 is down, then 2 (its
# journal put in place by the resumed kernel if the cut came before).  In
# place: none from the invalidation on.
POWER_CUT_POINTS = [CutPoint("start", True, 1), CutPoint("reclaimed", True, 1),
                    CutPoint("precopied", True, 1), CutPoint("frozen", True, 1),
                    CutPoint("writing", True, 1), CutPoint("written", True, 1),
                    CutPoint("applying", True, 2), CutPoint("committed", True, 2),
                    CutPoint("written", True, 1, reload=True), CutPoint("applying", True, 2, reload=True),
                    CutPoint("invalidated", False, 0), CutPoint("writing", False, 0)]


def start_cut_checkpoint(g, cut, timeout=600):
    """Starts checkpoint 2 set to stop at cut's point and waits until it has."""
    if cut.reload:
        g.sh("rmmod ntc && insmod /lib/modules/ntc/ntc.ko")
    g.sh(f"echo {int(cut.keep)} > /sys/module/ntc/parameters/keep_previous")
    g.sh(f"echo {cut.point} > /sys/module/ntc/parameters/stall_at")
    g.send("echo checkpoint > /proc/ntc")
    g.expect(rf"ntc: stalled at {cut.point}\b", timeout)


def write_marker(g, checkpoint):
    """A file whose content says which checkpoint follows it (same length
    every time), made durable."""
    g.sh(f"echo ck{checkpoint}-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' ') > /data/marker && sync")
    _, out = g.sh("cat /data/marker")
    return re.search(r"ck\d-[0-9a-f]{12}", out).group(0)


def expect_marker_on_disk(g, marker, what):
    """The marker file as disk 1 holds it, past the page cache: a resumed
    guest whose disk does not match its memory reads another."""
    _, out = g.sh("sync && echo 3 > /proc/sys/vm/drop_caches && cat /data/marker")
    ntclab.check(marker in out, f"{what}: /data/marker on disk is not {marker}: {out!r}", g)


def differ_outside_area(disk, copy):
    """The partitions of disk but its snapshot area that differ from copy's,
    byte for byte."""
    differ = []
    area = Area(disk).number
    with open(disk, "rb") as a, open(copy, "rb") as b:
        for p in ntclab.partitions(disk):
            if p.number == area:
                continue
            a.seek(p.offset)
            b.seek(p.offset)
            left = p.size
            while left:
                n = min(left, 1 << 22)
                if a.read(n) != b.read(n):
                    differ.append(f"partition {p.number}")
                    break
                left -= n
    return differ


def recovers_by_journal(disk, tmp):
    """Each ext4 filesystem of disk 1, copied out (e2fsck cannot reopen an
    image at an offset after replaying its journal): e2fsck -p replays the
    journal, then e2fsck -fn finds it clean.  Returns the problems."""
    problems = []
    for p in ntclab.partitions(disk):
        if p.fstype != "ext4":
            continue
        part = os.path.join(tmp, "partition.img")
        subprocess.run(["dd", f"if={disk}", f"of={part}", "bs=1M", f"skip={p.offset}", f"count={p.size}",
                        "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"], check=True, timeout=300)
        for args, ok in ((["-p"], (0, 1)), (["-fn"], (0,))):  # -p: 1 = the journal was replayed
            r = subprocess.run(["e2fsck", *args, part], capture_output=True, text=True)
            if r.returncode not in ok:
                problems.append(f"e2fsck {args[0]} at {p.offset}: rc {r.returncode}\n{r.stdout}{r.stderr}")
        os.unlink(part)
    return problems


def judge_power_cut(cut, disk1, disk2, tmp):
    """After a power cut of checkpoint 2 (a CutPoint): disk 2 holds a sound
    checkpoint or none, never a resumable-looking damaged one, and the one
    expected; disk 1 recovers by its journal.  Returns the checkpoint disk 2
    holds (0: none)."""
    area = Area(disk2)
    sound = ntc_info_check(disk2) == 0
    held = area.generation if area.valid_checkpoint() else 0  # sequences start again at a reload
    print(f"cut at {cut.label}: disk 2 holds {'checkpoint %d' % held if held else 'no checkpoint'} "
          f"({area.kind}), ntc-info --check {'accepts' if sound else 'refuses'} it", flush=True)
    ntclab.check(not held or sound, f"cut at {cut.label}: disk 2 looks resumable but is damaged: {area}")
    ntclab.check(held == cut.expected,
                 f"cut at {cut.label}: disk 2 holds checkpoint {held}, expected {cut.expected or 'none'}")
    problems = recovers_by_journal(disk1, tmp)
    ntclab.check(not problems, f"cut at {cut.label}: disk 1 does not recover by its journal: {problems}")
    return held


def expect_resumed_after_cut(vm, label, held, n_ck1):
    """A guest started from the disk 2 a power cut left: it resumes, and its
    counter goes on from checkpoint 1 (held 1: n_ck1 is counter_before()'s
    value, judged as expect_counter_resumed() does) or from later (held 2,
    whose own value is not known: the guest died before it could read its
    counter file)."""
    if held == 1:
        n = expect_counter_resumed(vm, n_ck1)
    else:
        m = vm.expect(r"(NTC-GUEST-READY)|CNT (\d+) ", 300)
        ntclab.check(m.group(1) is None, f"cut at {label}: disk 2 booted fresh instead of resuming", vm)
        n = int(m.group(2))
        ntclab.check(n > n_ck1 + 1, f"cut at {label}: counter resumed at {n}, not after checkpoint 1's {n_ck1}", vm)
    print(f"cut at {label}: checkpoint {held} resumed, counter at {n}", flush=True)


def power_cut_table(results):
    """(label, held, seconds) rows as Markdown."""
    rows = ["| cut at | disk 2 holds | seconds |", "| --- | --- | ---: |"]
    rows += [f"| {label} | {'checkpoint %d' % held if held else 'none'} | {seconds:.0f} |"
             for label, held, seconds in results]
    return "\n".join(rows)


def status(g):
    """/proc/ntc as a dict."""
    _, out = g.sh("cat /proc/ntc", 60)
    return dict(re.findall(r"^(\w+): (.*?)\s*$", out, re.M))


def check_resumed_from(g, sequence):
    """/proc/ntc of a guest that must have resumed checkpoint `sequence`."""
    st = status(g)
    ntclab.check(st.get("state") == "resumed" and st.get("resumed_from") == str(sequence),
                 f"{g.name} did not resume checkpoint {sequence}: {st}", g)
    return st


def check_hog_intact(g, what, timeout=300):
    """Asks ntc-memhog to read every page back (SIGUSR1); fails saying what
    its pages are (what) when one is wrong.  Returns its report."""
    g.sh("kill -USR1 $(pidof ntc-memhog)")
    m = g.expect(r"HOG (OK|BAD) (\d+)\r?\n", timeout)
    report = m.group(0).decode().strip() if isinstance(m.group(0), bytes) else m.group(0).strip()
    ntclab.check(m.group(1) in (b"OK", "OK"), f"{what} are wrong: {report}", g)
    return report


def set_target(g, area):
    """Names the snapshot area the next checkpoint goes to (ntc.ko's target=)."""
    g.sh(f"echo {area} > /sys/module/ntc/parameters/target")


def checkpoint(g, timeout=600):
    """echo checkpoint > /proc/ntc; returns (rc, /proc/ntc)."""
    rc, _ = g.sh("echo checkpoint > /proc/ntc", timeout, check=False)
    return rc, status(g)


def check_no_reclaim_while_frozen(g, st):
    """With memory to spare, the snapshot's preallocation only allocates the
    copy pages: reclaim inside the freeze lengthens the pause and squeezes
    the kernel threads that still run, with the OOM killer off
    (Documentation/kmod.md, step 4)."""
    ntclab.check(st.get("frozen_reclaimed_pages") == "0",
                 f"{st.get('frozen_reclaimed_pages')} pages were reclaimed while user space was frozen", g)


def check_copy_pages_before_freeze(g, st):
    """With memory to spare, the snapshot's copy pages are allocated before
    the freeze, not inside it (Documentation/kmod.md, step 5): allocating
    them there was half of a 1 GiB guest's pause."""
    early, frozen = int(st["copy_pages_early"]), int(st["copy_pages_frozen"])
    image = int(st["image_pages"])
    ntclab.check(early >= image and frozen <= image // 20,
                 f"copy pages: {early} allocated before the freeze, {frozen} inside it, "
                 f"for an image of {image} pages", g)


def check_cpus_back(g, st, taken_early, online="0-1"):
    """The non-boot CPUs were taken down before the freeze (taken_early of
    them; 0 when a task may run only on them, and the hibernation core took
    them down inside the freeze) and the CPUs online before it are online
    again (Documentation/kmod.md, step 5)."""
    ntclab.check(st.get("cpus_taken_early") == str(taken_early),
                 f"{st.get('cpus_taken_early')} CPUs taken down before the freeze, not {taken_early}", g)
    _, now = g.sh("cat /sys/devices/system/cpu/online")
    ntclab.check(now.strip() == online, f"CPUs online after the checkpoint: {now.strip()}, not {online}", g)


def check_snapshot_freed_after_thaw(g, st, restored):
    """A kernel restored from the image leaves the snapshot's pages to the
    module's swsusp_free() after the thaw, not the hibernation core's before
    its devices resume (Documentation/kmod.md, "In a restored kernel"); the
    kernel that took the checkpoint never calls the core's on success."""
    want = "1" if restored else "0"
    ntclab.check(st.get("core_free_deferred") == want,
                 f"the hibernation core's swsusp_free() was deferred {st.get('core_free_deferred')} times, "
                 f"not {want}", g)


def swap_used_kib(g):
    """KiB of swap in use on g, /proc/meminfo's SwapTotal - SwapFree."""
    _, out = g.sh("cat /proc/meminfo")
    total = int(re.search(r"SwapTotal:\s+(\d+)", out).group(1))
    free = int(re.search(r"SwapFree:\s+(\d+)", out).group(1))
    return total - free


def check_pause_as_logged(g, st):
    """The reported pause covers the span of the freeze in the kernel's log:
    the log's lines come after the pause's start and before its end, so the
    pause is at least that long (20 ms for rounding), and not far longer
    (0.25 s; 28 ms more in one run under nested KVM).  Only where the log's
    clock runs through the atomic copy: kvm-clock (ntc-vmm, KVM), not the
    TSC under QEMU TCG, which the kernel sets back to where it was before
    the copy.  CLOCK_MONOTONIC stops for the copy too, and a pause timed by
    it once left the copy out (0.13 s short at 512 MiB)."""
    _, log = g.sh("dmesg | grep -e 'Freezing user space processes$' -e 'Restarting tasks ... done' | tail -n 2")
    stamps = [float(m) for m in re.findall(r"^\[ *([\d.]+)\]", log, re.M)]
    ntclab.check(len(stamps) == 2 and "Restarting" in log.splitlines()[-1],
                 f"the kernel's log should show the freeze and the thaw: {log!r}", g)
    logged, pause = stamps[1] - stamps[0], float(st["pause_ms"]) / 1000
    ntclab.check(logged - 0.02 <= pause <= logged + 0.25,
                 f"the pause {pause:.3f}s is not the {logged:.3f}s the kernel's log shows between freeze and thaw", g)
    return logged


def blank_like(disk, path):
    """A sparse all-zero disk of the same size, to keep B's machine like A's."""
    with open(path, "wb") as f:
        f.truncate(os.path.getsize(disk))
    return path


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage_image_data(disk):
    """Flips one byte of a data page of the image on disk: the first swap
    map page lists the stream in order (header, PFN pages, data pages), and
    its last entry is a data page for any image of up to 1 GiB."""
    for p in ntclab.partitions(disk):
        with open(disk, "r+b") as f:
            f.seek(p.offset + 4086)
            if f.read(9) != b"S1SUSPEND":
                continue
            f.seek(p.offset + 4064)  # struct swsusp_header.image
            first_map = struct.unpack("<Q", f.read(8))[0]
            f.seek(p.offset + first_map * 4096 + 8 * 510)
            slot = struct.unpack("<Q", f.read(8))[0]
            ntclab.check(slot != 0, f"{disk}: the image is too short to damage a data page")
            f.seek(p.offset + slot * 4096 + 123)
            byte = f.read(1)[0]
            f.seek(p.offset + slot * 4096 + 123)
            f.write(bytes([byte ^ 0xff]))
            return
    raise ntclab.LabError(f"{disk}: no hibernation image to damage")


def e2fsck_disk(disk):
    return ntclab.e2fsck_clean(disk, [p.offset for p in ntclab.partitions(disk)
                                      if p.fstype == "ext4"])


def start_in_background(g, cmd, pattern, timeout=60):
    """Starts cmd in the background on g and waits until it prints pattern
    (which may come before or after the shell's own end marker)."""
    start = g.cursor
    g.sh(f"{cmd} & :")
    g.cursor = start
    return g.expect(pattern, timeout)


def start_state_workloads(g, ipc_timeout=60):
    """Starts the workloads whose state a resume must bring back: the
    counter (console and /data/counter.log), a process holding SysV IPC
    objects, and an fsync'ed file /data/filec.  Returns what the resumed
    guest must show (see check_resumed_state)."""
    g.sh("ntc-counter /data/counter.log 50 & :")
    start_in_background(g, "ntc-ipc hold", r"IPCHOLD semid=\d+", ipc_timeout)
    _, ipc = g.sh("ntc-ipc check")
    g.sh("dd if=/dev/urandom of=/data/filec bs=4096 count=256 conv=fsync 2>/dev/null")
    _, md5 = g.sh("md5sum /data/filec")
    return {"ipc": re.search(r"IPCCHECK .*", ipc).group(0), "filec": re.search(r"[0-9a-f]{32}", md5).group(0)}


class CounterValue(int):
    """A value of ntc-counter, with the time it read for it (`stamp`, as its
    line has it)."""

    def __new__(cls, n, stamp):
        value = super().__new__(cls, n)
        value.stamp = stamp
        return value


def counter_before(g, time_unix_ns):
    """The last value the counter wrote to /data/counter.log with a time
    before an instant (a CounterValue)."""
    _, out = g.sh(f"awk '$3 < {int(time_unix_ns) / 1e9:.6f} {{n=$2; t=$3}} END {{print \"CKN\", n, t}}' "
                  "/data/counter.log")
    n, stamp = re.search(r"CKN (\d+) (\S+)", out).groups()
    return CounterValue(int(n), stamp)


def expect_counter_resumed(vm, n_ck, timeout=300):
    """Waits for a guest started from a checkpoint: it must resume, not boot
    fresh, and its counter must go on at the checkpoint's value + 1, or
    write the checkpoint's value itself with the same time as before.  The
    latter when the snapshot froze the counter between reading the clock
    and writing its line: the line has a time before the snapshot, but was
    written after it, so the image has the counter about to write it
    (Documentation/testing.md, Known failure modes 15)."""
    # the line's end too: a console read can end inside the time stamp
    m = vm.expect(r"(NTC-GUEST-READY)|CNT (\d+) (\S+)[\r\n]", timeout)
    ntclab.check(m.group(1) is None, "booted fresh instead of resuming", vm)
    n, stamp = int(m.group(2)), m.group(3)
    stamp = stamp.decode() if isinstance(stamp, bytes) else stamp  # QEMU guests' consoles are bytes
    caught_before_write = n == n_ck and stamp == getattr(n_ck, "stamp", None)
    ntclab.check(n == n_ck + 1 or caught_before_write,
                 f"counter resumed at {n} ({stamp}), checkpoint value was {n_ck} "
                 f"({getattr(n_ck, 'stamp', '?')})", vm)
    if caught_before_write:
        # Then the resumed file must not have had the line already.
        _, out = vm.sh(f"echo LINES $(grep -c '^CNT {n} ' /data/counter.log)")
        ntclab.check("LINES 1" in out, f"the resumed counter wrote {n} again: {out!r}", vm)
        print(f"the checkpoint caught the counter between its clock read and its write of {n}", flush=True)
    return n


def uptime(vm):
    """The guest's /proc/uptime in seconds (CLOCK_BOOTTIME)."""
    _, out = vm.sh("echo UPTIME $(cut -d' ' -f1 /proc/uptime)")
    return float(re.search(r"UPTIME ([\d.]+)", out).group(1))


def check_wall_clock(host, vm):
    """The resumed guest's wall clock agrees with its host's within a second:
    the host's reading falls between two of the guest's, give or take one
    second.  The guest's readings are its counter's latest ticks, which carry
    CLOCK_REALTIME in nanoseconds (busybox date has no %N).  Returns the
    offset seen.  Its uptime must be less than a day: a kernel that read a
    wall clock 40 years ahead at its resume added those years to its uptime
    as time asleep (vmm.md, "CPUs, interrupts, timers"), even once ntc.ko
    set the wall clock right again."""
    seconds = uptime(vm)
    ntclab.check(seconds < 86400, f"the resumed guest's uptime is {seconds:.0f} s: its clock leapt at the resume", vm)
    _, before = vm.sh("tail -n 1 /data/counter.log")
    _, now = host.sh("date +%s.%N")
    vm.sh("sleep 0.2")
    _, after = vm.sh("tail -n 1 /data/counter.log")
    g0, h, g1 = (float(re.findall(r"\d+\.\d+", t)[-1]) for t in (before, now, after))
    ntclab.check(g0 - 1 <= h <= g1 + 1,
                 f"the resumed guest's clock is off: guest {g0:.3f}..{g1:.3f}, host {h:.3f}", vm)
    return h - (g0 + g1) / 2


def write_after_checkpoint(g):
    """A write the checkpoint must not carry (check_resumed_state looks for it)."""
    g.sh("echo written-after-checkpoint > /data/after.txt && sync")


# A kernel bug (WARN, BUG, oops, lockdep) or a CPU that could not run:
# an RCU stall, a soft lockup ("BUG: soft lockup"), a hung task.
KERNEL_WARNING = (r"WARNING:|BUG:|Oops|Call Trace:|Unbalanced|possible circular locking|"
                  r"detected stalls|blocked for more than")


def kernel_warnings(g):
    """The guest kernel's reports of a kernel bug or a stall (KERNEL_WARNING),
    from the first checkpoint's freeze on, each with the lines after it up to
    its end of trace, as a list of lines.  The boot before it is left out:
    nested SVM on QEMU TCG does not intercept XSETBV, so
    every kernel under nested KVM (QEMU's as well as ntc-vmm's) warns about
    XSAVE sizes at boot.  The guest filters its own log: printed whole on
    the serial console, it cost seconds of one vCPU per call under nested
    KVM and brought the very stalls it looks for (Documentation/testing.md,
    "Known failure modes")."""
    mark = "Freezing user space processes"
    # Tagged: the console also carries what background programs print.
    # Each report whole, up to its end-of-trace line: its first line alone
    # says what, not where (a report runs to some 40 lines).
    report = (f"$0 ~ /{KERNEL_WARNING}/ && n == 0 {{ n = 60 }} "
              f"n > 0 {{ print \"KERNEL-LOG: \" $0; n--; if (/---\\[ end trace/) n = 0 }}")
    _, out = g.sh(f"echo CHECKPOINTS-LOGGED $(dmesg | grep -c '{mark}'); "
                  f"dmesg | sed -n '/{mark}/,$p' | awk '{report}'")
    logged = re.search(r"^CHECKPOINTS-LOGGED (\d+)$", out, re.M)
    if not logged or logged.group(1) == "0":
        raise ntclab.LabError(f"{g.name}: the kernel log shows no checkpoint: {out[-500:]}")
    return re.findall(r"^KERNEL-LOG: (.*)$", out, re.M)


def check_no_kernel_warnings(g, what):
    """Fails the test with the whole reports if g's kernel_warnings() found any."""
    warnings = kernel_warnings(g)
    ntclab.check(not warnings, f"{what}:\n" + "\n".join(warnings), g)


def check_resumed_state(g, state):
    """On a resumed guest: the IPC objects and /data/filec as start_state_workloads
    saw them, no /data/after.txt, /data/counter.log without a jump, and no
    kernel warning.  Returns a list of problems."""
    warnings = kernel_warnings(g)
    problems = ["kernel log:\n" + "\n".join(warnings)] if warnings else []
    _, ipc = g.sh("ntc-ipc check")
    ipc = re.search(r"IPCCHECK .*", ipc).group(0)
    if ipc != state["ipc"] or "shm=ok" not in ipc:
        problems.append(f"IPC differs: {state['ipc']} / {ipc}")
    _, md5 = g.sh("md5sum /data/filec")
    if state["filec"] not in md5:
        problems.append(f"/data/filec differs: {state['filec']} / {md5}")
    if g.sh("test -e /data/after.txt", check=False)[0] == 0:
        problems.append("a write made after the checkpoint is on the resumed disk")
    _, out = g.sh("awk '{if (NR>1 && $2!=p+1) print \"DISCONT\", p, $2; p=$2} END {print \"LAST\", p}' "
                  "/data/counter.log")
    if "DISCONT" in out:
        problems.append(f"counter file not continuous: {out[-500:]}")
    return problems
