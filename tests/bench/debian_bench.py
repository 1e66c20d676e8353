#!/usr/bin/env python3
"""The Debian 12 guest (1 GiB RAM, 2 vCPUs; Documentation/disk-layout.md,
"The Debian guest") on ntc-vmm against QEMU/KVM, in one nested-KVM host VM,
as the travel benchmark does for the small guest.

* Boot: from starting the VMM until `systemctl is-system-running --wait`
  says running (multi-user.target reached, every unit started).  ntc-vmm
  boots GRUB's default entry from the disk; QEMU the same kernel, initrd and
  command line given with -kernel, -initrd, -append.
* NTC: a counter on the serial console, `echo checkpoint > /proc/ntc` (a
  first checkpoint onto a fresh clone: its pause, image size and whole
  time), then `ntc-vmm resume disk2.img` until the counter prints again.
* QEMU: stop, migrate to a file, copy of the disks, cont (tests/lab/qmp.py);
  then a new QEMU with -incoming from that file until the counter prints
  again.

Both with a virtio-net card on a TAP (systemd-networkd waits for its link)
and a second disk (NTC's disk 2; for QEMU a small blank one, as the figures
do not depend on it).  Disks and state files in the host VM's tmpfs.
Prints figures and ratios and writes build/bench/debian.md; asserts nothing
about times.
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
import bench_report  # noqa: E402
import debian_guest  # noqa: E402
import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM_MIB = 1024
CPUS = 2
NETNS, TAP, HOST_ADDR = "ntcdebbench", "ntcdb0", "10.0.2.1"
SCRATCH = "/tmp/debian-bench"  # inside the host VM: tmpfs
QMP = os.path.abspath(os.path.join(HERE, "..", "lab", "qmp.py"))
# A counter on the serial console, started from the console shell.
CONSOLE_COUNTER = "(n=0; while :; do n=$((n+1)); echo \"CNT $n \"; sleep 0.2; done) & :"


def boot(vm):
    """Seconds from starting vm until systemd says the system is running."""
    t0 = time.monotonic()
    vm.start()
    debian_guest.wait_login(vm, 600)
    _, state = vm.sh("systemctl is-system-running --wait", 300, check=False)
    seconds = time.monotonic() - t0
    ntclab.check(state.strip() == "running", f"systemd is {state.strip()}", vm)
    return seconds


def until_counter(vm, timeout=600):
    """Seconds from starting vm until the console counter prints again."""
    t0 = time.monotonic()
    vm.start()
    m = vm.expect(rf"CNT (\d+) |(?P<fresh>{debian_guest.PROMPT})", timeout)
    ntclab.check(m.group("fresh") is None, "booted fresh instead of resuming", vm)
    return time.monotonic() - t0


def power_off(vm):
    vm.sh("stty -echo; PS1=''", 60, check=False)
    ntclab.check(vm.poweroff(300) == 0, "poweroff should end the VMM with status 0", vm)


def ntc_run(host, disk1, disk2):
    r = {}
    vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")

    def vm(name, *args):
        return nested.NestedVmm(host, name, ["netns", "exec", NETNS, vmm, *args, "--net", f"tap:{TAP}"],
                                binary="ip")

    a = vm("debian-bench-ntc", "run", disk1, "--disk", disk2, "--mem", f"{MEM_MIB}M", "--cpus", str(CPUS))
    r["boot_s"] = boot(a)
    a.sh(CONSOLE_COUNTER)
    a.sh("sleep 2")
    t0 = time.monotonic()
    rc, st = ntcguest.checkpoint(a, 900)
    r["checkpoint_s"] = time.monotonic() - t0
    ntclab.check(rc == 0 and st.get("result") == "0", f"checkpoint failed: {rc} {st}", a)
    r["pause_s"] = float(st["pause_ms"]) / 1000
    r["state_bytes"] = int(st["image_bytes"])
    power_off(a)
    b = vm("debian-bench-ntc-resume", "resume", disk2)
    r["resume_s"] = until_counter(b)
    power_off(b)
    return r


def qemu_run(host, disk1, blank, boot_files):
    r = {}
    kernel, initrd, cmdline = boot_files
    state = f"{SCRATCH}/qemu.state"
    disks = [disk1, blank]
    saved = [d + ".saved" for d in disks]

    def vm(name, images, sock, extra=()):
        args = ["-accel", "kvm", "-cpu", "host", "-m", str(MEM_MIB), "-smp", str(CPUS), "-nodefaults",
                "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                "-qmp", f"unix:{sock},server=on,wait=off",
                "-kernel", kernel, "-initrd", initrd, "-append", cmdline]
        for i, image in enumerate(images):
            args += ["-drive", f"file={image},format=raw,if=none,id=d{i},cache=writeback",
                     "-device", f"virtio-blk-pci,drive=d{i}"]
        args += ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0"]
        return nested.NestedVmm(host, name, ["netns", "exec", NETNS, "qemu-system-x86_64", *args, *extra],
                                binary="ip", console_on_stdout=True)

    a = vm("debian-bench-qemu", disks, f"{SCRATCH}/qmp")
    r["boot_s"] = boot(a)
    a.sh(CONSOLE_COUNTER)
    a.sh("sleep 2")
    copy = " ".join(f"cp --sparse=always {d} {s};" for d, s in zip(disks, saved))
    _, out = host.sh(f"python3 {QMP} {SCRATCH}/qmp save {state} --then '{copy}'", 900)
    m = re.search(r"SAVED ([\d.]+) ([\d.]+) (\d+)", out)
    ntclab.check(m is not None, f"QEMU's save failed: {out}", a)
    r["pause_s"], r["pause_with_disks_s"], r["state_bytes"] = float(m.group(1)), float(m.group(2)), int(m.group(3))
    power_off(a)
    host.sh(f"rm -f {disk1} {blank}")
    b = vm("debian-bench-qemu-restore", saved, f"{SCRATCH}/qmp-in", ["-incoming", f"exec:cat {state}"])
    host.sh(f"python3 {QMP} {SCRATCH}/qmp-in restore >{SCRATCH}/restore.out 2>&1 & :")
    r["resume_s"] = until_counter(b)
    power_off(b)
    return r


def report(n, q):
    rows = [("boot until systemd is running, s", n["boot_s"], q["boot_s"], "<= 1.25"),
            ("downtime, s: NTC pause, QEMU stop to cont around the save", n["pause_s"], q["pause_s"], ""),
            ("QEMU's downtime with the disk copy a carry needs, s", None, q["pause_with_disks_s"], ""),
            ("state on disk, MB", n["state_bytes"] / 1e6, q["state_bytes"] / 1e6, ""),
            ("resume until the counter prints again, s", n["resume_s"], q["resume_s"], "<= 1.5")]
    lines = ["| figure | NTC | QEMU | NTC/QEMU | target |", "| --- | ---: | ---: | ---: | --- |"]
    for name, ntc, qemu, target in rows:
        if ntc is None:
            lines.append(f"| {name} | | {qemu:.2f} | {n['pause_s'] / qemu:.2f} | {target} |")
        else:
            lines.append(f"| {name} | {ntc:.2f} | {qemu:.2f} | {ntc / qemu:.2f} | {target} |")
    lines.append(f"| NTC's whole first checkpoint onto a fresh clone (full compare of the disks), s | "
                 f"{n['checkpoint_s']:.1f} | | | |")
    return "\n".join(lines)


def main():
    t0 = time.monotonic()
    image = debian_guest.debian_disk()
    with open(image + ".cmdline") as f:
        cmdline = f.read().strip()
    with ntcguest.workdir() as tmp:
        packed = debian_guest.pack(image, tmp)
        with nested.HostVM("debian-bench", tmp, mem_mib=7168) as host:
            host.wait_ready()
            host.sh(f"mkdir -p {SCRATCH} && mount -t tmpfs -o size=4g tmpfs {SCRATCH}")
            disk1, disk2, blank = f"{SCRATCH}/disk1.img", f"{SCRATCH}/disk2.img", f"{SCRATCH}/blank.img"
            debian_guest.unpack(host, packed, disk1)
            boot_files = (f"{SCRATCH}/vmlinuz", f"{SCRATCH}/initrd", cmdline)
            # The build tree is at its own path in the host VM.
            host.sh(f"cp {image}.vmlinuz {boot_files[0]} && cp {image}.initrd {boot_files[1]} && "
                    f"truncate -s 64M {blank}")
            echo_exchange.add_tap(host, NETNS, TAP, HOST_ADDR)
            clone = os.path.join(nested.BUILD, "bin", "ntc-clone")
            host.sh(f"{clone} --quiet {disk1} {disk2}", 900)
            n = ntc_run(host, disk1, disk2)
            print(f"NTC: {n}", flush=True)
            host.sh(f"rm -f {disk2}")
            q = qemu_run(host, disk1, blank, boot_files)
            print(f"QEMU: {q}", flush=True)
            host.send("poweroff -f")
    table = report(n, q)
    bench_report.publish("debian", "the Debian guest on ntc-vmm against QEMU/KVM",
                         f"Nested KVM inside a QEMU TCG host VM; the Debian 12 guest, {MEM_MIB} MiB, {CPUS} vCPUs, "
                         "a virtio-net card, a counter on the console. ntc-vmm boots GRUB's entry from the disk, "
                         "QEMU (-accel kvm) the same kernel and command line. QEMU: stop, migrate to a file, copy "
                         "of the disks, cont; restore with -incoming. All files in the host VM's tmpfs.",
                         table, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
