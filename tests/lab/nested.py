"""A QEMU TCG "host VM" with nested KVM, for running ntc-vmm where this
machine's own /dev/kvm cannot (it is PVM, or absent).

The host VM boots the Debian kernel with a tiny initramfs that loads kvm-amd
(QEMU's -cpu max offers AMD SVM with nested paging under TCG), mounts this
machine's / read-only over virtio-9p, and chroots into it with tmpfs where it
must write.  A work directory is shared read-write at the same path, so
build/bin/ntc-vmm, its shared libraries and the disk images are simply there.
It is driven over its serial console like any ntclab.Guest.
"""
import os
import subprocess
import tempfile

import ntclab

HOST_INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || exec sh
for d in tmp run var/tmp root; do mount -t tmpfs tmpfs /host/$d; done
work=$(sed -n 's/.*ntc.work=\([^ ]*\).*/\1/p' /proc/cmdline)
# The project (its build/bin) must stay visible where the tmpfs mounts above
# would hide it, as when it is checked out under /tmp.
proj=$(sed -n 's/.*ntc.proj=\([^ ]*\).*/\1/p' /proc/cmdline)
case "$proj" in /tmp/*|/run/*|/var/tmp/*|/root/*)
	mkdir -p "/host$proj"
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose proj "/host$proj" || exec sh ;;
esac
mount -t tmpfs tmpfs /host/mnt
mkdir -p /host/mnt/work
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /host/mnt/work || exec sh
if [ -c /dev/kvm ]; then echo "NTC-HOST-KVM yes"; else echo "NTC-HOST-KVM no"; fi
echo "NTC-HOST-READY"
exec chroot /host /bin/sh -c 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev; mount -t devpts devpts /dev/pts; cd /; export HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin; exec setsid -c /bin/sh -i </dev/ttyS0 >/dev/ttyS0 2>&1'
"""

HOST_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "kvm-amd"]
KVM_TRACE_EVENTS = ("kvm_exit", "kvm_inj_exception", "kvm_inj_virq", "kvm_page_fault", "kvm_apic_ipi",
                    "kvm_apic_accept_irq", "kvm_vcpu_wakeup")
MOUNT_POINT = "/mnt/work"
# The tree holding the project and its build (ntc-vmm, ntc-clone, ntc-info).
PROJECT = os.path.commonpath([ntclab.ROOT, os.path.abspath(os.environ.get("NTC_BUILD") or ntclab.BUILD)])
# ctest passes the build tree; ntc-vmm is taken from there.
BUILD = os.environ.get("NTC_BUILD") or ntclab.BUILD


def _build_initramfs(krel, out):
    """A busybox initramfs with the host VM's modules; rebuilt when missing."""
    import shutil
    busybox = shutil.which("busybox")
    with tempfile.TemporaryDirectory() as d:
        for sub in ("bin", "dev", "proc", "sys", "etc", "lib/modules"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        shutil.copy(busybox, os.path.join(d, "bin/busybox"))
        for applet in ("sh", "mount", "insmod", "cat", "sed", "mkdir", "chroot", "setsid", "echo"):
            os.symlink("busybox", os.path.join(d, "bin", applet))
        with open(os.path.join(d, "init"), "w") as f:
            f.write(HOST_INIT)
        os.chmod(os.path.join(d, "init"), 0o755)
        order, seen = [], set()
        for m in HOST_MODULES:
            deps = subprocess.run(["modprobe", "-S", krel, "--show-depends", m],
                                  capture_output=True, text=True, check=True).stdout
            for line in deps.splitlines():
                parts = line.split()
                if len(parts) < 2 or parts[0] != "insmod" or parts[1] in seen:
                    continue
                seen.add(parts[1])
                rel = parts[1].split(f"/modules/{krel}/", 1)[1]
                dest = os.path.join(d, "lib/modules", rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy(f"/usr/lib/modules/{krel}/{rel}", dest)
                order.append(rel)
        with open(os.path.join(d, "etc/modules-order"), "w") as f:
            f.write("\n".join(order) + "\n")
        tmp = out + ".tmp"
        subprocess.run(f"cd {d} && find . | cpio -o -H newc --quiet | gzip -1 > {tmp}",
                       shell=True, check=True)
        os.replace(tmp, out)


class HostVM(ntclab.Guest):
    """A TCG guest with nested KVM; `workdir` appears inside it as MOUNT_POINT."""

    def __init__(self, name, workdir, mem_mib=2048, cpus=None, log_dir=None):
        # One CPU: with two, TCG's SVM emulation lets a cross-CPU interrupt
        # into KVM's GIF=0 window after VMRUN and the host's kernel dies
        # (Documentation/testing.md, "Known failure modes", 1).  The nested
        # guests keep their two vCPUs.
        cpus = cpus or int(os.environ.get("NTC_HOST_CPUS", "1"))
        import hashlib
        krel = ntclab.guest_kernel_release()
        # Named by its recipe, so a changed init script never meets a stale image.
        recipe = hashlib.sha256((HOST_INIT + " ".join(HOST_MODULES)).encode()).hexdigest()[:12]
        initrd = os.path.join(ntclab.BUILD, f"nested-host-initrd-{krel}-{recipe}.img")
        if not os.path.exists(initrd):
            _build_initramfs(krel, initrd)
        self.workdir = os.path.abspath(workdir)
        extra = ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
                 "-virtfs", f"local,path={self.workdir},mount_tag=work,security_model=none",
                 "-virtfs", f"local,path={PROJECT},mount_tag=proj,security_model=none,readonly=on,multidevs=remap"]
        # NTC_HOST_LOGLEVEL=5 shows the host kernel's backtraces on its console
        # (Documentation/testing.md, "Known failure modes").
        loglevel = os.environ.get("NTC_HOST_LOGLEVEL", "3")
        # Full preemption in the host VM's kernel: with Debian's voluntary
        # preemption its KVM_RUN sometimes kept the host's one CPU for
        # minutes while the nested guest's other vCPU, which the first one
        # waited for, never ran (Documentation/testing.md, "Known failure
        # modes" 16).  NTC_HOST_KERNEL_ARGS replaces it, for experiments.
        host_args = os.environ.get("NTC_HOST_KERNEL_ARGS", "preempt=full")
        append = (f"console=ttyS0 loglevel={loglevel} softlockup_all_cpu_backtrace=1 panic=-1 "
                  f"ntc.work={self.workdir} ntc.proj={PROJECT} {host_args}")
        os.environ.setdefault("NTC_ACCEL", "tcg")
        # A small translation cache: TCG keeps the code it translated for a
        # nested guest until the cache is full, and every later write to a
        # page that held it walks that page's blocks; with the default 1 GiB
        # cache, the host's clearing of a dead guest's pages for the next
        # one took minutes (Documentation/testing.md, "Known failure modes" 11).
        # QEMU's own view of the host VM's CPU, asked without the host VM's
        # help: in a nested hang the host VM's kernel may not run at all.
        self.qmp_socket = os.path.join(self.workdir, f"{name}.qmp")
        extra += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        super().__init__(name, [], f"/boot/vmlinuz-{krel}", initrd, append,
                         mem_mib=mem_mib, cpus=cpus, log_dir=log_dir, extra_args=extra,
                         cpu_model=os.environ.get("NTC_HOST_CPU_MODEL", "max"),
                         tcg_options=os.environ.get("NTC_HOST_TCG_OPTIONS", ",tb-size=64"))

    def inside(self, path):
        """The path, inside the host VM, of a file under the work directory."""
        rel = os.path.relpath(os.path.abspath(path), self.workdir)
        return os.path.join(MOUNT_POINT, rel)

    def wait_ready(self, timeout=300):
        m = self.expect(r"NTC-HOST-KVM (yes|no)", timeout)
        if m.group(1) != b"yes":
            self.fail("kvm-amd did not give the host VM a /dev/kvm")
        self.expect(r"NTC-HOST-READY", 60)
        self.sh("stty -echo; PS1=''", 60)
        self.trace_kvm()

    def trace_kvm(self):
        """Keeps the host kernel's record of the guests' last VM exits and
        injected exceptions: after a triple fault, the only account of
        where a nested guest was (Documentation/testing.md)."""
        events = " ".join(f"events/kvm/{e}/enable" for e in KVM_TRACE_EVENTS)
        self.sh(f"mount -t tracefs nodev /sys/kernel/tracing && cd /sys/kernel/tracing && "
                f"echo 4096 >buffer_size_kb && for e in {events}; do echo 1 >$e; done; cd /", 60)

    def cpu_view(self):
        """The host VM's CPU as its QEMU sees it, twice a second apart:
        registers (while a VM exists, EFER's SVME bit 0x1000 is clear only
        in the nested guest) and local APIC (its one-shot timer's count,
        pending and in-service vectors).  Asked over QMP, not through the
        host VM's console: a keystroke there is an interrupt that can
        itself end a stall."""
        import time

        import qmp
        try:
            monitor = qmp.Qmp(self.qmp_socket, timeout=10)
            views = []
            for _ in range(2):
                registers, lapic = (monitor.command("human-monitor-command", **{"command-line": c})
                                    for c in ("info registers", "info lapic"))
                # The general and control registers; not the FPU's and vectors'.
                views.append(registers.split("FCW=")[0] + lapic.strip())
                time.sleep(1)
            return "\n--- one second later ---\n".join(views)
        except (OSError, RuntimeError) as e:
            return f"(QEMU's monitor did not answer: {e})"

    def threads(self, log):
        """Each thread of the VMM writing `log`: its state, where it waits, its
        kernel stack.  A vCPU that never answers SIGQUIT is stuck outside the
        guest (a lock in the VMM, or the host kernel): this says where."""
        script = (f"for p in $(pgrep -f -- {log}); do for t in /proc/$p/task/*; do "
                  "echo \"== $(cat $t/comm) $(cut -d' ' -f3 $t/stat) $(cat $t/wchan)\"; cat $t/stack; done; done")
        rc, out = self.sh(script, 120, check=False)
        return out if rc == 0 else f"(no threads: {out.strip()[-200:]})"

    def kvm_trace_tail(self, lines=60):
        """The last KVM events the host kernel recorded, or why not."""
        rc, out = self.sh(f"tail -n {lines} /sys/kernel/tracing/trace", 120, check=False)
        return out if rc == 0 else f"(no KVM trace: {out.strip()[-200:]})"


class LocalHost(ntclab.Guest):
    """This machine itself, as a host for NestedVmm, when its /dev/kvm runs
    stock kernels (ntclab.usable_kvm()): a persistent shell in place of the
    host VM's console, the work directory at its own path."""

    def __init__(self, name, workdir, log_dir=None):
        super().__init__(name, [], "", "", "", log_dir=log_dir)
        self.args = ["bash", "--norc", "--noprofile"]
        self.workdir = os.path.abspath(workdir)

    def inside(self, path):
        return os.path.abspath(path)

    def wait_ready(self, timeout=30):
        self.sh("true", timeout)


def vmm_host(name, workdir):
    """Where ntc-vmm can run here: this machine with a usable /dev/kvm, or
    else a QEMU TCG host VM with nested KVM."""
    return LocalHost(name, workdir) if ntclab.usable_kvm() else HostVM(name, workdir)


# What a dying kernel says.  Its printk ring holds each message as plain
# text: a run of printable bytes with spaces in it (symbol names have none)
# and no format directives (those are the kernel's own format strings).
_KERNEL_TROUBLE = rb"(?:BUG|WARNING|Oops|[Pp]anic|RIP: |general protection|Call Trace|ntc: |PM: |double fault|" \
                  rb"stack segment|invalid opcode|page fault|rcu: |watchdog: |Kernel |SLUB|Corrupted|Freezing|Restarting|" \
                  rb"INFO: |blocked for more than|hung_task|clocksource|timekeeping|APIC|smpboot|CPU[0-9]+ |task:)"


def kernel_messages(ram_file, limit=80):
    """Lines of the guest kernel's log that look like trouble, read from a RAM
    dump.  The ring's order is lost; the text is enough to name the fault."""
    import re
    with open(ram_file, "rb") as f:
        data = f.read()
    found = []
    for m in re.finditer(rb"[\x20-\x7e]{16,300}", data):
        line = m.group(0)
        if b" " in line.strip() and b"%" not in line and re.search(_KERNEL_TROUBLE, line) and line not in found:
            found.append(line)
    return [l.decode() for l in found[-limit:]]


# An interrupt entry's register dump at its first instruction, in kernel mode.
_ENTRY_FIRST_INSN = r"RIP: 0010:(asm_(?:sysvec_\w+|common_interrupt|spurious_interrupt))\+0x0/"


def interrupt_taken_twice(text):
    """The interrupt entry that a guest's oops shows entered again on its own
    first instruction with interrupts off, or None.  Only an interrupt
    delivered a second time, ignoring IF, gets there: QEMU's TCG does that to
    an interrupt that KVM injects with VMRUN (testing.md, "Known failure
    modes" 24), and from user mode the second entry runs on the user's GS
    base and dies.  (An NMI may stop a CPU there too; its frames say NMI.)"""
    import re
    lines = (text or "").splitlines()
    for i, line in enumerate(lines):
        entry = re.search(_ENTRY_FIRST_INSN, line)
        if not entry or not any(re.search(rf" {entry[1]}\+0x[1-9a-f]", l) for l in lines[max(0, i - 3):i]):
            continue
        for following in lines[i + 1:i + 4]:
            flags = re.search(r"RSP: \S+ EFLAGS: ([0-9a-f]+)", following)
            if flags:
                if not int(flags[1], 16) & 0x200:
                    return entry[1]
                break
    return None


# Where each CPU's queue of remote wake-ups and function calls lies, asked
# of a guest while it is well: with it, a RAM dump of a hung guest shows a
# CPU whose queue waits for an IPI that never came (testing.md, "Known
# failure modes" 16).  Debian's System.map is a stub, so kallsyms it is;
# per-CPU symbols there are offsets, each CPU's copy at __per_cpu_offset.
LAYOUT_PROBE = ("grep -wE 'call_single_queue|this_cpu_off|__per_cpu_offset|page_offset_base|_text' /proc/kallsyms; "
                "grep 'Kernel code' /proc/iomem; echo cpus $(nproc --all)")


def kernel_layout(text):
    """The addresses wake_queues() needs, from LAYOUT_PROBE's output; None
    when any is missing."""
    import re
    layout = {m[2]: int(m[1], 16) for m in re.finditer(r"^([0-9a-f]{8,16}) \w (\w+)$", text or "", re.M)}
    code = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code$", text or "", re.M)
    cpus = re.search(r"^cpus (\d+)$", text or "", re.M)
    wanted = {"call_single_queue", "this_cpu_off", "__per_cpu_offset", "page_offset_base", "_text"}
    if not code or not cpus or not wanted <= set(layout):
        return None
    layout["kernel_code_phys"], layout["cpus"] = int(code[1], 16), int(cpus[1])
    return layout


def wake_queues(ram_file, layout):
    """Each CPU's call_single_queue in a RAM dump (guest physical addresses
    are file offsets): in a hung guest, an entry left there is a wake-up or
    call whose IPI the CPU never took."""
    import struct

    def kernel_phys(virt):
        return virt - layout["_text"] + layout["kernel_code_phys"]

    with open(ram_file, "rb") as f:
        def u64(phys):
            if phys < 0:
                return None
            f.seek(phys)
            data = f.read(8)
            return struct.unpack("<Q", data)[0] if len(data) == 8 else None
        direct_map = u64(kernel_phys(layout["page_offset_base"]))
        # The top byte of a kernel address, with 4-level paging or 5.
        if direct_map is None or direct_map >> 56 != 0xff:
            return [f"page_offset_base reads {direct_map}: not a direct map address, the layout does not fit"]
        lines = []
        for cpu in range(layout["cpus"]):
            offset = u64(kernel_phys(layout["__per_cpu_offset"]) + 8 * cpu)
            # Each CPU's this_cpu_off holds its own offset: the check that
            # the arithmetic lands in that CPU's area.
            if offset is None or u64(layout["this_cpu_off"] + offset - direct_map) != offset:
                lines.append(f"CPU {cpu}: its per-CPU area is not where the layout puts it")
                continue
            first = u64(layout["call_single_queue"] + offset - direct_map)
            lines.append(f"CPU {cpu}: call_single_queue " + (
                "outside the dump" if first is None else "empty" if first == 0
                else f"holds 0x{first:x}: work queued for this CPU that it has not run yet (in a hung guest, "
                     "a wake-up whose IPI never came)"))
        return lines


def expected_mac(disk, instance_name=""):
    """ntc-vmm's MAC rule (Documentation/vmm.md): 02:4e:54 + FNV-1a of the
    disk's PTUUID, with "/NAME" after it for an instance named with --name."""
    import subprocess
    ptuuid = subprocess.run(["blkid", "-p", "-s", "PTUUID", "-o", "value", disk], capture_output=True,
                            text=True, check=True).stdout.strip()
    h = 2166136261
    for c in (ptuuid + (f"/{instance_name}" if instance_name else "")).encode():
        h = ((h ^ c) * 16777619) & 0xffffffff
    return "02:4e:54:%02x:%02x:%02x" % (h >> 16 & 0xff, h >> 8 & 0xff, h & 0xff)


class NestedVmm(ntclab.ConsoleShell):
    """An ntc-vmm running inside a HostVM.

    Its console goes to a log file in the work directory, read directly from
    this side; its console input is a FIFO inside the host VM, written through
    the host VM's shell.  Its own messages (stderr) and exit status also land
    in the work directory.
    """

    def __init__(self, host, name, args, binary=None, console_on_stdout=False):
        """`args` follow the binary (ntc-vmm by default).  With
        console_on_stdout the program's stdout is the console (QEMU's
        -serial stdio) and no --console-log is added."""
        self.host, self.name, self.args = host, name, args
        self.binary = binary or os.path.join(BUILD, "bin", "ntc-vmm")
        self.console_on_stdout = console_on_stdout
        self.log = os.path.join(host.workdir, name + ".console.log")
        self.err = os.path.join(host.workdir, name + ".stderr")
        self.rc_file = os.path.join(host.workdir, name + ".rc")
        # Guest RAM after a triple fault: its kernel log is plain text there.
        self.crash_dump = os.path.join(host.workdir, name + ".ram") \
            if os.path.basename(self.binary) == "ntc-vmm" or any(a.endswith("/ntc-vmm") for a in args) else None
        self.cursor = 0
        self.marker = 0
        self.fd = None

    def start(self, fd=3):
        import shlex
        for f in (self.log, self.err, self.rc_file, self.crash_dump):
            if f and os.path.exists(f):
                os.unlink(f)
        if self.args[:1] == ["run"]:
            self.host.guest_kernel_layout = None  # a new boot, a new KASLR layout
        fifo = f"/tmp/{self.name}.in"
        log = self.host.inside(self.log)
        console = [] if self.console_on_stdout else ["--console-log", log]
        if self.crash_dump:
            console += ["--crash-dump", self.host.inside(self.crash_dump)]
        cmd = " ".join(shlex.quote(a) for a in [self.binary] + self.args + console)
        out = f">{log} 2>{self.host.inside(self.err)}" if self.console_on_stdout \
            else f">{self.host.inside(self.err)} 2>&1"
        self.fd = fd
        self.host.sh(f"rm -f {fifo}; mkfifo {fifo}; exec {fd}<>{fifo}; "
                     f"({cmd} <{fifo} {out}; "
                     f"echo $? >{self.host.inside(self.rc_file)}) {fd}>&- & :")
        return self

    def text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            with open(self.err) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def exit_status(self):
        try:
            with open(self.rc_file) as f:
                text = f.read().strip()
            return int(text) if text else None
        except FileNotFoundError:
            return None

    def wait_ready(self, timeout=240):
        """The lab guest's shell is ready; its kernel's layout is kept on
        the host for the reports of this guest and of those resumed from
        its checkpoints (the same kernel, at the same addresses)."""
        super().wait_ready(timeout)
        layout = kernel_layout(self.sh(LAYOUT_PROBE, 60, check=False)[1])
        if layout:
            self.host.guest_kernel_layout = dict(layout, **{"from": self.name})

    def request_report(self, timeout=120):
        """Asks a hung ntc-vmm for its vCPUs' state and guest RAM (SIGQUIT)
        and waits for them: a hang leaves no other evidence."""
        import time
        if not self.crash_dump or self.exit_status() is not None or not self.host.alive():
            return
        try:
            self.host.sh(f"pkill -QUIT -f -- {self.host.inside(self.log)} || true", 60, check=False)
        except ntclab.LabError:
            return  # the host VM's shell does not answer: its console tail tells why
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and "guest RAM written to" not in self.stderr():
            time.sleep(0.5)

    def fail(self, why, hung=False):
        evidence = ""
        if hung and isinstance(self.host, HostVM) and self.host.alive():
            # First QEMU's view, before anything is typed to the host VM;
            # then the threads, before SIGQUIT makes every vCPU leave KVM_RUN.
            evidence += "--- the host VM's CPU, from its QEMU ---\n" + self.host.cpu_view() + "\n"
            evidence += "--- the VMM's threads in the host VM ---\n" + self.host.threads(self.host.inside(self.log)) + "\n"
        if hung:
            self.request_report()
        # The guest kernel's own words first: a long report is cut in the
        # middle by CI, and they name the fault.
        messages = ""
        if self.crash_dump and os.path.exists(self.crash_dump):
            messages = f"--- kernel messages found in the guest's RAM ({self.crash_dump}) ---\n"
            messages += "\n".join(kernel_messages(self.crash_dump)) + "\n"
            layout = getattr(self.host, "guest_kernel_layout", None)
            if layout:
                messages += (f"--- each CPU's queue of remote wake-ups in that RAM (addresses from "
                             f"{layout['from']}'s kernel) ---\n" + "\n".join(wake_queues(self.crash_dump, layout)) + "\n")
        if (hung or self.exit_status() == 2) and hasattr(self.host, "kvm_trace_tail") and self.host.alive():
            evidence += "--- the host kernel's last KVM events ---\n" + self.host.kvm_trace_tail() + "\n"
        if hung and isinstance(self.host, HostVM):
            evidence += "--- host VM console tail (its kernel's own complaints) ---\n" + self.host.text()[-3000:] + "\n"
        entry = interrupt_taken_twice(self.text()) or interrupt_taken_twice(messages)
        if entry:
            why += (f"\n--- the guest took {entry} again on its first instruction, with interrupts off: "
                    "an interrupt delivered twice by QEMU's TCG emulation of SVM, the lab's defect "
                    "(Documentation/testing.md, \"Known failure modes\" 24) ---")
        raise ntclab.LabError(f"{self.name}: {why}\n--- stderr ---\n{self.stderr()}\n{messages}"
                              f"--- console tail ({self.log}) ---\n{self.text()[-4000:]}\n{evidence}")

    def expect(self, pattern, timeout):
        import re
        import time
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(self.text(), self.cursor)
            if m:
                self.cursor = m.end()
                return m
            if self.exit_status() is not None:
                self.fail(f"exited ({self.exit_status()}) while waiting for {pattern!r}")
            self.check_host()
            time.sleep(0.2)
        self.fail(f"timed out after {timeout}s waiting for {pattern!r}", hung=True)

    def check_host(self):
        """Fails at once, with the host VM's console, when the host VM itself
        is gone (its kernel died: QEMU runs it with -no-reboot)."""
        proc = getattr(self.host, "proc", None)
        if proc is not None and proc.poll() is not None:
            tail = self.host.text()[-3000:] if hasattr(self.host, "text") else ""
            self.fail(f"the host VM exited ({proc.returncode}): its kernel died under this guest\n"
                      f"--- host VM console tail ---\n{tail}")

    def send(self, line):
        import shlex
        self.host.sh(f"printf '%s\\n' {shlex.quote(line)} >&{self.fd}")

    def console_between(self, start, end):
        return self.text()[start:end]

    def wait_exit(self, timeout, explain=None):
        """The exit status; fails after timeout, with explain()'s words if given."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.exit_status()
            if rc is not None:
                return rc
            self.check_host()
            time.sleep(0.2)
        self.fail(f"did not exit within {timeout}s" + (f": {explain()}" if explain else ""), hung=True)
