#!/usr/bin/env python3
"""make stress: checkpoints in a row and resumes of one saved disk 2, in the
nested lab (issue: the running VM survives every checkpoint, every resume
works).  Not part of make test: at the defaults it runs for most of an hour.

One office VM on ntc-vmm (2 vCPUs, disk 1's swap active, a memory hog that
keeps part of its memory swapped out, an fsync'ed writer on the data
partition, a TCP echo exchange with the host VM) takes --checkpoints
checkpoints in a row; after each, the guest must run on (the counter moves,
the exchange is answered, no kernel warning) and ntc-info --check must
accept disk 2.  Then the disk 2 saved after the first checkpoint is resumed
--resumes times, each time from a fresh copy: the counter must continue at
its checkpoint value + 1 and the guest must power off cleanly.  Last,
unless --no-power-cuts, guest.checkpoint_kill's power cuts on the same VMM:
its process killed at each of eight points of a checkpoint.

With --vmm qemu the same runs on QEMU -accel kvm in the same host VM (the
baseline that tells a defect of the lab from one of ntc-vmm); resumes there
boot disk 2's kernel with resume=, as a PC would.  Prints what succeeded of
each, exits 1 on any failure.  Every failure keeps the console, ntc-vmm's
messages, and after a triple fault the kernel messages found in the guest's
RAM and the host kernel's last KVM events.
"""
import argparse
import os
import shutil
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))

import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM = 384
CPUS = 2
HOG_MIB = 160
NETNS, TAP = "ntcstress", "ntcs0"
HOST_ADDR, GUEST_ADDR = "10.0.3.1", "10.0.3.2"
PORT = 7100

check = ntclab.check
start_in_background = ntcguest.start_in_background


RAM_DIR = "/tmp/ntc-disks"  # in the host VM: a tmpfs


class Office:
    """How one VMM runs the office VM and a resumed copy of disk 2.  The
    guests' disks live in the host VM's RAM (RAM_DIR), not on the 9p share:
    see Documentation/testing.md, "Known failure modes"."""

    def __init__(self, kind, host, tmp, disk1):
        self.kind, self.host, self.tmp = kind, host, tmp
        self.boot = [disk1 + ".vmlinuz", disk1 + ".initrd", open(disk1 + ".cmdline").read().strip()]
        host.sh(f"mkdir -p {RAM_DIR} && cp --sparse=always {host.inside(disk1)} {RAM_DIR}/disk1.img", 600)
        self.disk1 = f"{RAM_DIR}/disk1.img"

    def _vm(self, name, args):
        if self.kind == "ntc-vmm":
            vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
            return nested.NestedVmm(self.host, name, ["netns", "exec", NETNS, vmm, *args], binary="ip")
        return nested.NestedVmm(self.host, name, ["netns", "exec", NETNS, "qemu-system-x86_64", *args],
                                binary="ip", console_on_stdout=True)

    def _qemu(self, disks, cmdline):
        kernel, initrd, _ = self.boot
        args = ["-accel", "kvm", "-cpu", "host", "-m", str(MEM), "-smp", str(CPUS), "-nodefaults",
                "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                "-kernel", self.host.inside(kernel), "-initrd", self.host.inside(initrd), "-append", cmdline]
        for i, d in enumerate(disks):
            args += ["-drive", f"file={d},format=raw,if=none,id=d{i},cache=writeback",
                     "-device", f"virtio-blk-pci,drive=d{i}"]
        return args + ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                       "-device", "virtio-net-pci,netdev=n0"]

    def office(self, disk2, disk1=None, name="stress-office"):
        disk1 = disk1 or self.disk1
        if self.kind == "ntc-vmm":
            return self._vm(name, ["run", disk1, "--disk", disk2, "--mem", f"{MEM}M", "--cpus", str(CPUS),
                                   "--net", f"tap:{TAP}"])
        return self._vm(name, self._qemu([disk1, disk2], self.boot[2]))

    def power_cut(self):
        """SIGKILL of the running VM's VMM, found by its TAP (QEMU's command
        line does not name its console log)."""
        self.host.sh(f"pkill -9 -f {TAP}; sleep 1", check=False)

    def resumed(self, name, disk, blank):
        if self.kind == "ntc-vmm":
            return self._vm(name, ["resume", disk, "--disk", blank,
                                   "--net", f"tap:{TAP}"])
        # disk 2 first, as the laptop sees it; its initramfs resumes from resume=
        return self._vm(name, self._qemu([disk, blank], self.boot[2]))


def failure_text(e):
    """A lab failure's own report; for a fault of this script, its traceback."""
    return str(e) if isinstance(e, ntclab.LabError) else traceback.format_exc()


def power_off(vm, what):
    check(vm.poweroff(180) == 0, f"{what}: its poweroff should end the VMM with status 0", vm)


def counter_moves(vm):
    _, a = vm.sh("tail -n 1 /data/counter.log")
    vm.sh("sleep 1")
    _, b = vm.sh("tail -n 1 /data/counter.log")
    return a != b


def info_check(host, disk):
    """ntc-info --check's status on a disk in the host VM."""
    tool = os.path.join(nested.BUILD, "bin", "ntc-info")
    return host.sh(f"{tool} --check {disk} >/dev/null 2>&1", 300, check=False)[0]


def checkpoints(office, n):
    """Takes n checkpoints onto a fresh clone; returns (succeeded, n_ck of the
    first, failure text).  Disk 2 as the first checkpoint left it is saved."""
    host = office.host
    disk2, saved = f"{RAM_DIR}/disk2.img", f"{RAM_DIR}/disk2.saved"
    host.sh(f"{os.path.join(nested.BUILD, 'bin', 'ntc-clone')} {office.disk1} {disk2} >/dev/null", 600)
    vm = office.office(disk2).start()
    done, n_ck = 0, None
    try:
        vm.wait_ready(300)
        vm.sh(f"ip addr add {GUEST_ADDR}/24 dev eth0 && ip link set eth0 up")
        swap = vm.sh("swapon --show=NAME --noheadings 2>/dev/null || cat /proc/swaps")[1]
        check("/dev/vda3" in swap, f"disk 1's swap is not active: {swap}", vm)
        ntcguest.start_state_workloads(vm)
        start_in_background(vm, f"ntc-memhog {HOG_MIB}", r"HOG READY", 600)
        vm.sh("(while :; do dd if=/dev/urandom of=/data/churn bs=4096 count=64 conv=fsync 2>/dev/null; "
              "sleep 0.5; done) >/dev/null 2>&1 & :")
        start_in_background(vm, f"ntc-echo {PORT}", r"ECHO-LISTENING")
        exchange = echo_exchange.Exchange(office.host, NETNS, office.tmp, "stress", GUEST_ADDR, PORT).start()
        exchange.wait_messages(20, 300, vm)
        for i in range(1, n + 1):
            rc, st = ntcguest.checkpoint(vm, 900)
            check(rc == 0 and st.get("result") == "0", f"checkpoint {i}: rc {rc}, {st}", vm)
            answered = len(exchange.lines())
            exchange.wait_messages(answered + 10, 120, vm)
            check(counter_moves(vm), f"after checkpoint {i} the counter stands still", vm)
            ntcguest.check_no_kernel_warnings(vm, f"after checkpoint {i} the kernel warned")
            check(info_check(host, disk2) == 0, f"ntc-info --check refuses disk 2 after checkpoint {i}", vm)
            if i == 1:
                n_ck = ntcguest.counter_before(vm, st["time_unix_ns"])
                host.sh(f"cp --sparse=always {disk2} {saved}", 600)
            done = i
            print(f"{office.kind}: checkpoint {i}/{n} ok, pause {st['pause_ms']} ms, "
                  f"{st['image_pages']} pages", flush=True)
        exchange.finish(60, vm)
        vm.sh("killall ntc-echo", check=False)
        power_off(vm, "the office VM")
        return done, n_ck, None
    except Exception as e:
        print(f"{office.kind}: checkpoint {done + 1}/{n} FAILED", flush=True)
        if host.alive():  # the office VM must not hold the TAP and disks for the resumes
            office.power_cut()
        return done, n_ck, failure_text(e)


def trials(office, items, trial):
    """Runs trial(label, item) for each (label, item), each on a VM of its
    own; a failure is kept and the next one tried while the host VM lives.
    A trial returns what to print after "ok".  Returns (passed, failures)."""
    done, failures = 0, []
    for label, item in items:
        try:
            detail = trial(label, item)
            done += 1
            print(f"{office.kind}: {label} ok{detail}", flush=True)
        except Exception as e:
            failures.append(failure_text(e))
            print(f"{office.kind}: {label} FAILED", flush=True)
            if not office.host.alive():
                break
            office.power_cut()  # the trial's VM must not hold the TAP and disks for the next
    return done, failures


def resumes(office, n_ck, n):
    """Resumes copies of the saved disk 2 n times; returns (succeeded, failures)."""
    saved, copy, blank = f"{RAM_DIR}/disk2.saved", f"{RAM_DIR}/resume.img", f"{RAM_DIR}/blank.img"

    def resume(label, i):
        office.host.sh(f"cp --sparse=always {saved} {copy} && rm -f {blank} && "
                       f"truncate -s $(stat -c %s {saved}) {blank}", 600)
        vm = office.resumed(f"stress-resume-{i}", copy, blank).start()
        t0 = time.monotonic()
        ntcguest.expect_counter_resumed(vm, n_ck)
        vm.sh("stty -echo; PS1=''")
        check(counter_moves(vm), f"{label}: the counter stands still", vm)
        ntcguest.check_no_kernel_warnings(vm, f"{label}: the kernel warned")
        power_off(vm, label)
        return f" in {time.monotonic() - t0:.1f}s"

    return trials(office, [(f"resume {i}/{n}", i) for i in range(1, n + 1)], resume)


def power_cuts(office, base, tmp):
    """guest.checkpoint_kill's power cuts on this VMM: checkpoint 1, then
    checkpoint 2 stopped at each point of POWER_CUT_POINTS (ntc.ko's
    stall_at=, keep_previous=) and its VMM killed there.  Disk 2 must hold the expected
    checkpoint or none and disk 1 recover by its journal (checked on this
    side, on copies); a sound disk 2 must resume from that checkpoint.
    Returns (points passed, failures)."""
    host = office.host
    disk1, disk2, blank = f"{RAM_DIR}/cut-disk1.img", f"{RAM_DIR}/cut-disk2.img", f"{RAM_DIR}/blank.img"
    clone = os.path.join(nested.BUILD, "bin", "ntc-clone")
    host.sh(f"rm -f {RAM_DIR}/*", 60)  # the earlier phases' disks: the host VM's RAM is needed

    def cut(label, at):
        host.sh(f"cp --sparse=always {host.inside(base)} {disk1} && rm -f {disk2} && "
                f"{clone} {disk1} {disk2} >/dev/null", 600)
        vm = office.office(disk2, disk1, f"cut-{at.label}").start()
        vm.wait_ready(300)
        vm.sh("ntc-counter /data/counter.log 50 & :")
        vm.sh("sleep 1")
        rc, st = ntcguest.checkpoint(vm, 900)
        check(rc == 0 and st.get("result") == "0", f"{label}: checkpoint 1: rc {rc}, {st}", vm)
        n_ck1 = ntcguest.counter_before(vm, st["time_unix_ns"])
        ntcguest.start_cut_checkpoint(vm, at)
        office.power_cut()
        vm.wait_exit(60)
        copies = [os.path.join(tmp, f"cut-{n}.img") for n in (1, 2)]
        host.sh(f"cp --sparse=always {disk1} {host.inside(copies[0])} && "
                f"cp --sparse=always {disk2} {host.inside(copies[1])}", 600)
        held = ntcguest.judge_power_cut(at, *copies, tmp)
        for c in copies:
            os.unlink(c)
        if held:
            host.sh(f"rm -f {blank} && truncate -s $(stat -c %s {disk2}) {blank}", 60)
            vm = office.resumed(f"cut-{at.label}-resume", disk2, blank).start()
            ntcguest.expect_resumed_after_cut(vm, at.label, held, n_ck1)
            power_off(vm, f"{label}: the resumed guest")
        return ""

    return trials(office, [(f"power cut at {at.label}", at) for at in ntcguest.POWER_CUT_POINTS], cut)


def run(kind, n_checkpoints, n_resumes, with_power_cuts):
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp, swap_mib=512)
        # RAM for the guest's and the disks' (RAM_DIR)
        with nested.HostVM(f"stress-{kind}", tmp, mem_mib=4096) as host:
            host.wait_ready()
            echo_exchange.add_tap(host, NETNS, TAP, HOST_ADDR)
            office = Office(kind, host, tmp, disk1)
            ck, n_ck, failures = 0, None, []
            if n_checkpoints:
                ck, n_ck, failure = checkpoints(office, n_checkpoints)
                failures += [failure] if failure else []
            rs = cuts = 0
            if n_ck is not None and host.alive():
                rs, more = resumes(office, n_ck, n_resumes)
                failures += more
            if with_power_cuts and host.alive():
                cuts, more = power_cuts(office, disk1, tmp)
                failures += more
            if host.alive():
                host.send("poweroff -f")
        if failures:
            keep_logs(tmp, kind)
    return ck, rs, cuts, failures


def keep_logs(tmp, kind):
    """The whole consoles and VMM messages of a failed run, kept past its
    scratch directory: the failure report shows only their tails."""
    dest = os.path.join(ntclab.BUILD, "lab-logs", f"stress-{kind}")
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(tmp):
        if name.endswith((".console.log", ".stderr")):
            shutil.copy(os.path.join(tmp, name), dest)
    print(f"{kind}: full consoles and VMM messages kept in {dest}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=30)
    parser.add_argument("--resumes", type=int, default=20)
    parser.add_argument("--vmm", choices=("ntc-vmm", "qemu", "both"), default="both")
    parser.add_argument("--power-cuts", action=argparse.BooleanOptionalAction, default=True,
                        help="kill the VMM at each point of a checkpoint (8 runs)")
    args = parser.parse_args()
    n_cuts = len(ntcguest.POWER_CUT_POINTS) if args.power_cuts else 0
    kinds = ["ntc-vmm", "qemu"] if args.vmm == "both" else [args.vmm]
    results, ok = [], True
    for kind in kinds:
        t0 = time.monotonic()
        try:
            ck, rs, cuts, failures = run(kind, args.checkpoints, args.resumes, args.power_cuts)
        except Exception:  # the lab itself failed: report it as this VMM's failure
            ck, rs, cuts, failures = 0, 0, 0, [traceback.format_exc()]
        for f in failures:
            print(f"--- {kind} failure ---\n{f}", flush=True)
        ok &= not failures and ck == args.checkpoints and rs == args.resumes and cuts == n_cuts
        results.append((kind, ck, rs, cuts, time.monotonic() - t0))
    print()
    print("| VMM | checkpoints | resumes | power cuts | minutes |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, ck, rs, cuts, seconds in results:
        print(f"| {kind} | {ck}/{args.checkpoints} | {rs}/{args.resumes} | {cuts}/{n_cuts} | {seconds / 60:.1f} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
