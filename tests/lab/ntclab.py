"""The NTC guest lab: QEMU guests driven over their serial console.

Every wait has a timeout; every failure raises LabError carrying the tail of
the console log, and the whole log is kept in the log directory.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The build tree: ctest passes its own in NTC_BUILD.
BUILD = os.environ.get("NTC_BUILD") or os.path.join(ROOT, "build")


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class LabError(Exception):
    pass


def check(cond, what, vm=None):
    """Fails a test with `what`; with the VM, its console tail comes along."""
    if not cond:
        if vm is not None:
            vm.fail(what)
        raise LabError(what)


def report(problems, passed):
    """Ends a test that gathers its problems: lists them and exits 1, or
    prints what passed."""
    if problems:
        print("\nFAILED:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(passed)


def usable_kvm():
    """True only for a /dev/kvm that runs stock kernels.

    A PVM /dev/kvm (kvm_pvm) accepts a stock kernel and then spins forever, so
    the presence of /dev/kvm alone says nothing.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return any(os.path.isdir("/sys/module/" + m) for m in ("kvm_intel", "kvm_amd"))


def accel():
    return os.environ.get("NTC_ACCEL") or ("kvm" if usable_kvm() else "tcg")


POWEROFF_MARK = "@@NTC-POWEROFF@@"
# What a lab guest's console shows on its way down, in order: busybox
# init's shutdown script (disk-layout/guest-root/etc/init.d/rcK), init's
# own messages, the kernel's last word.
SHUTDOWN_STEPS = ["rcK: sync", "rcK: swapoff", "rcK: umount", "The system is going down", "Sent SIGKILL",
                  "reboot: Power down"]


# Each task that is neither asleep nor an idle kernel thread, and init: a shutdown that hangs has
# one waiting where it should not (its wait channel says where).
TASKS_PROBE = ("for p in /proc/[0-9]*; do s=$(cut -d' ' -f3 $p/stat 2>/dev/null); "
               "{ [ \"$s\" != S ] && [ \"$s\" != I ] || [ ${p#/proc/} = 1 ]; } && "
               "echo \"${p#/proc/} $(cat $p/comm) $s $(cat $p/wchan 2>/dev/null)\"; done")


def shutdown_progress(console):
    """How far a shutdown got, read from the console after the poweroff."""
    if POWEROFF_MARK not in console:
        return "the console shell never ran the poweroff command"
    seen = [step for step in SHUTDOWN_STEPS if step in console]
    words = "the console shell ran poweroff; " + (
        f"the last step seen was '{seen[-1]}'" if seen
        else "no step of the shutdown showed (busybox poweroff syncs the disks before it signals init)")
    blocked = console.find("Show Blocked State")
    if blocked >= 0:
        words += "\n--- blocked tasks (SysRq w) ---\n" + console[blocked:blocked + 3000]
    return words


class ConsoleShell:
    """The shell protocol on a guest's serial console (prompt off, echo off,
    an end marker with the exit status after each command), over a class's
    send(), expect() and console_between()."""

    marker = 0

    def sh(self, cmd, timeout=60, check=True):
        """Runs a shell command on the console; returns (rc, output)."""
        self.marker += 1
        tag = f"{self.name}-{self.marker}"
        start = self.cursor
        # The quotes keep the typed command, if echoed, from matching its marker.
        typed = f"{cmd}; echo \"@@NTC-END\"\"-{tag}=$?@@\""
        self.send(typed)
        m = self.expect(rf"@@NTC-END-{tag}=(\d+)@@", timeout)
        body = ANSI_ESCAPE.sub("", self.console_between(start, m.start())).replace("\r", "")
        if typed in body:
            body = body.split(typed, 1)[1]
        rc = int(m.group(1))
        if check and rc != 0:
            self.fail(f"command failed with {rc}: {cmd}\n{body[-2000:]}")
        return rc, body.strip("\n")

    def poweroff(self, timeout=120):
        """Powers the machine off from its console shell; returns its exit
        status.  A shutdown still under way at half the timeout lists the
        guest's blocked tasks on its console (SysRq w), and a machine still
        up at the end fails saying how far the shutdown got: a hang there
        leaves no other trace, since the rest of the guest runs on."""
        start = len(self.text())
        # The quotes keep the typed line, if echoed, from matching the mark.
        self.send(f'echo "{POWEROFF_MARK[:8]}""{POWEROFF_MARK[8:]}"; '
                  f"(sleep {timeout // 2}; echo w >/proc/sysrq-trigger) & poweroff")

        def explain():
            words = shutdown_progress(self.text()[start:])
            tasks = self.probe(TASKS_PROBE)
            if tasks is None:
                return words + "\n(the console shell does not run a command sent now either)"
            return words + "\n--- tasks not sleeping, and init (pid name state wait-channel) ---\n" + tasks
        return self.wait_exit(timeout, explain)

    def probe(self, cmd, timeout=15):
        """What cmd prints on the console, or None if the shell does not run
        it within timeout; for a failure's evidence, so it never fails."""
        start = len(self.text())
        self.send(f'echo "@@NTC-PROBE""-BEGIN@@"; {cmd}; echo "@@NTC-PROBE""-END@@"')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()[start:]
            begin, end = text.find("@@NTC-PROBE-BEGIN@@"), text.find("@@NTC-PROBE-END@@")
            if begin >= 0 and end > begin:
                return text[begin + len("@@NTC-PROBE-BEGIN@@"):end].strip("\r\n")
            time.sleep(0.5)
        return None

    def wait_ready(self, timeout=240):
        self.expect(r"NTC-GUEST-READY", timeout)
        self.expect(r"ntc# ", 30)
        # No echo and no prompt: what a command prints is all there is.
        self.sh("stty -echo; PS1=''", 30)


class Guest(ConsoleShell):
    """One QEMU virtual machine whose COM1 is this object's stdin/stdout."""

    def __init__(self, name, disks, kernel, initrd, append, mem_mib=512, cpus=2,
                 log_dir=None, extra_args=(), cpu_model="max", tcg_options=""):
        """tcg_options (",name=value...") are added to -accel tcg."""
        self.name = name
        self.log_dir = log_dir or os.path.join(BUILD, "lab-logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.log_path = os.path.join(self.log_dir, name + ".console.log")
        self.args = ["qemu-system-x86_64", "-accel", accel() + (tcg_options if accel() == "tcg" else ""),
                     "-cpu", cpu_model,
                     "-m", str(mem_mib), "-smp", str(cpus),
                     "-display", "none", "-monitor", "none", "-serial", "stdio",
                     "-no-reboot", "-nodefaults",
                     "-kernel", kernel, "-initrd", initrd, "-append", append]
        # Device order is fixed: disk N is always at the same PCI address, so
        # a resumed kernel finds its disks where it left them.
        for i, disk in enumerate(disks):
            self.args += ["-drive", f"file={disk},format=raw,if=none,id=d{i},cache=writeback",
                          "-device", f"virtio-blk-pci,drive=d{i},addr={0x4 + i:#x}"]
        self.args += list(extra_args)
        self.proc = None
        self.out = bytearray()
        self.cursor = 0
        self.lock = threading.Condition()
        self.marker = 0

    # -- process ---------------------------------------------------------------
    def start(self):
        self.logf = open(self.log_path, "wb")
        self.logf.write((" ".join(self.args) + "\n").encode())
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            with self.lock:
                self.out += chunk
                self.logf.write(chunk)
                self.logf.flush()
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout, explain=None):
        """The exit status; fails after timeout, with explain()'s words if given."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"did not exit within {timeout}s" + (f": {explain()}" if explain else ""))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        self.reader.join(5)
        self.logf.close()

    # -- console ---------------------------------------------------------------
    def text(self, start=0):
        with self.lock:
            return self.out[start:].decode("utf-8", "replace")

    def fail(self, why, hung=False):
        """Raises LabError with the console tail; `hung` asks a VMM that
        can for its evidence of a hang (nested.NestedVmm), QEMU has none."""
        tail = self.text()[-4000:]
        raise LabError(f"{self.name}: {why}\n--- console tail ({self.log_path}) ---\n{tail}")

    def expect(self, pattern, timeout):
        """Waits for pattern after the cursor; moves the cursor past it."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = rx.search(self.out, self.cursor)
                if m:
                    self.cursor = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not self.alive() and self.proc.stdout.closed is False and self.reader.is_alive() is False:
                    break
                self.lock.wait(min(left, 0.5))
        self.fail(f"timed out after {timeout}s waiting for {pattern!r}"
                  if self.alive() else f"exited ({self.proc.poll()}) while waiting for {pattern!r}")

    def console_between(self, start, end):
        with self.lock:
            return self.out[start:end].decode("utf-8", "replace")

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def guest_for_disk(name, disk_image, disks=None, mem_mib=512, cpus=2, append_extra="",
                   **kw):
    """A guest that boots the kernel and initramfs the builder put beside disk_image."""
    with open(disk_image + ".cmdline") as f:
        append = f.read().strip()
    if append_extra:
        append += " " + append_extra
    return Guest(name, disks or [disk_image], disk_image + ".vmlinuz", disk_image + ".initrd",
                 append, mem_mib=mem_mib, cpus=cpus, **kw)


def e2fsck_clean(disk_image, part_offsets):
    """Runs e2fsck -fn on each ext4 partition of a disk image; returns problems."""
    problems = []
    for off in part_offsets:
        r = subprocess.run(["e2fsck", "-fn", f"{disk_image}?offset={off}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"offset {off}: rc {r.returncode}\n{r.stdout}{r.stderr}")
    return problems


def guest_kernel_release():
    """The kernel the guest builder uses by default: the newest installed."""
    out = subprocess.run("ls /usr/lib/modules | sort -V | tail -n1", shell=True,
                         capture_output=True, text=True, check=True).stdout
    return out.strip()


class Partition:
    def __init__(self, number, offset, size, fstype):
        self.number, self.offset, self.size, self.fstype = number, offset, size, fstype


def partitions(disk_image):
    """The partitions of a disk image (sfdisk), with blkid's filesystem type."""
    import json
    table = json.loads(subprocess.run(["sfdisk", "--json", disk_image], capture_output=True,
                                      text=True, check=True).stdout)["partitiontable"]
    sector = table.get("sectorsize", 512)
    parts = []
    for i, p in enumerate(table["partitions"], 1):
        off = p["start"] * sector
        r = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", "-O", str(off), disk_image],
                           capture_output=True, text=True)
        parts.append(Partition(i, off, p["size"] * sector, r.stdout.strip()))
    return parts
