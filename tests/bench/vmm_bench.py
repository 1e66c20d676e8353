#!/usr/bin/env python3
"""ntc-vmm against QEMU/KVM, side by side inside one nested-KVM host VM.

For each VMM: time from start to the guest's NTC-GUEST-READY (init done),
sequential virtio-blk write and read MB/s in the guest (busybox dd with
O_DIRECT, 1 MiB blocks, on a scratch disk /dev/vdb backed by a file in the
host VM's tmpfs; median of 3), and the VMM's resident
memory without guest RAM (smaps, mappings as large as guest RAM left out).
Same guest disk, kernel, initrd, command line, RAM, CPUs and devices
(virtio-blk over PCI, 16550 console).  Prints figures and ratios; asserts
nothing about speed (the host VM runs under TCG, so absolute figures say
little, and ratios only a little more).
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import bench_report  # noqa: E402
import nested  # noqa: E402
import ntclab  # noqa: E402

MEM_MIB = 512
CPUS = 2
SCRATCH_MIB = 256
REPEATS = 3


def rss_without_guest_ram(host, process):
    script = ("pid=$(pidof %s | cut -d' ' -f1); awk -v limit=%d "
              "'/^Size:/ {size=$2} /^Rss:/ {if (size < limit) sum += $2} END {print sum}' "
              "/proc/$pid/smaps" % (process, MEM_MIB * 1024))
    return int(host.sh(script)[1].strip().splitlines()[-1]) / 1024


def dd_rate(vm, cmd):
    # busybox dd reports no time; the guest's uptime brackets it (10 ms steps).
    out = vm.sh(f"a=$(cut -d' ' -f1 /proc/uptime); {cmd} 2>/dev/null; "
                f"b=$(cut -d' ' -f1 /proc/uptime); echo ELAPSED $a $b", timeout=300)[1]
    m = re.search(r"ELAPSED ([\d.]+) ([\d.]+)", out)
    if not m:
        raise ntclab.LabError(f"no timing in: {out}")
    return SCRATCH_MIB * 1048576 / (float(m.group(2)) - float(m.group(1))) / 1e6


def measure(host, vm, process):
    t0 = time.monotonic()
    vm.start()
    vm.expect(r"NTC-GUEST-READY", 300)
    boot = time.monotonic() - t0
    vm.expect(r"ntc# ", 30)
    vm.sh("stty -echo; PS1=''", 30)
    # Under TCG single runs scatter widely; the median of a few is steadier.
    write = statistics.median(dd_rate(vm, f"dd if=/dev/zero of=/dev/vdb bs=1M count={SCRATCH_MIB} oflag=direct")
                              for _ in range(REPEATS))
    read = statistics.median(dd_rate(vm, f"dd if=/dev/vdb of=/dev/null bs=1M count={SCRATCH_MIB} iflag=direct")
                             for _ in range(REPEATS))
    rss = rss_without_guest_ram(host, process)
    warnings = vm.sh("dmesg | grep -c 'WARNING:' || true")[1].strip().splitlines()[-1]
    print(f"{process}: guest kernel warnings at boot: {warnings}", flush=True)
    vm.send("poweroff")
    vm.wait_exit(120)
    return {"boot_s": boot, "write_MBps": write, "read_MBps": read, "rss_MiB": rss}


def main():
    work = tempfile.mkdtemp(prefix="vmm-bench-", dir=ntclab.BUILD)
    disk = os.path.join(work, "disk.img")
    subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), disk], check=True, timeout=120)
    with open(disk + ".cmdline") as f:
        cmdline = f.read().strip()

    with nested.HostVM("vmm-bench", work) as host:
        host.wait_ready()
        # The scratch disk lives in the host VM's tmpfs: the figures then
        # measure the VMMs, not the 9p share the work directory is on.
        d, s = host.inside(disk), "/tmp/scratch.img"
        host.sh(f"truncate -s {SCRATCH_MIB}M {s}")
        ntc = nested.NestedVmm(host, "bench-ntc-vmm", ["run", d, "--disk", s, "--mem", f"{MEM_MIB}M",
                                                       "--cpus", str(CPUS)])
        results = {"ntc-vmm": measure(host, ntc, "ntc-vmm")}
        qemu_args = ["-accel", "kvm", "-cpu", "host", "-m", str(MEM_MIB), "-smp", str(CPUS),
                     "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                     "-kernel", host.inside(disk + ".vmlinuz"), "-initrd", host.inside(disk + ".initrd"),
                     "-append", cmdline]
        for i, image in enumerate((d, s)):
            qemu_args += ["-drive", f"file={image},format=raw,if=none,id=d{i},cache=writeback",
                          "-device", f"virtio-blk-pci,drive=d{i}"]
        qemu = nested.NestedVmm(host, "bench-qemu", qemu_args, binary="qemu-system-x86_64",
                                console_on_stdout=True)
        results["qemu-kvm"] = measure(host, qemu, "qemu-system-x86_64")
        host.send("poweroff -f")

    a, b = results["ntc-vmm"], results["qemu-kvm"]
    rows = [f"nested KVM inside a QEMU TCG host VM; guest {MEM_MIB} MiB, {CPUS} vCPUs", "",
            "| | ntc-vmm | qemu-kvm | ntc/qemu | target |", "| --- | ---: | ---: | ---: | --- |",
            f"| boot to init (s) | {a['boot_s']:.2f} | {b['boot_s']:.2f} | {a['boot_s'] / b['boot_s']:.2f} "
            f"| time ratio <= 1.25 (no slower than 0.8x QEMU) |"]
    for key, label in (("write_MBps", "virtio-blk seq write (MB/s)"), ("read_MBps", "virtio-blk seq read (MB/s)")):
        rows.append(f"| {label} | {a[key]:.1f} | {b[key]:.1f} | {a[key] / b[key]:.2f} | >= 0.9 |")
    rows.append(f"| VMM RSS without guest RAM (MiB) | {a['rss_MiB']:.1f} | {b['rss_MiB']:.1f} "
                f"| {a['rss_MiB'] / b['rss_MiB']:.2f} | ntc-vmm < 20 MiB |")
    report = "\n".join(rows) + "\n"
    print("\n" + report)
    bench_report.write("vmm", "## vmm: ntc-vmm against QEMU/KVM\n\n" + report)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
