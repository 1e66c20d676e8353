#!/usr/bin/env python3
"""ntc-vmm against QEMU/KVM, side by side inside one nested-KVM host VM.

For each VMM: time from start to the guest's NTC-GUEST-READY (init done),
sequential virtio-blk write and read MB/s in the guest (busybox dd with
O_DIRECT, 1 MiB blocks, on a scratch disk /dev/vdb backed by a file in the
host VM's tmpfs; median of 3), 4 KiB random read and write IOPS on the same
disk at queue depth 1 and 32 (ntc-iops, O_DIRECT, one thread per request in
flight), the timer loop's largest gap on vCPU 0 alone and while vCPU 1
floods fdatasync on a slow disk /dev/vdc (a file on the 9p share), and the
VMM's resident memory without guest RAM (smaps, mappings as large as guest
RAM left out).  Same guest disk, kernel, initrd, command line, RAM, CPUs and
devices (virtio-blk over PCI, 16550 console).  QEMU's disks use its
default aio=threads: with aio=io_uring (QEMU 7.2 in the host VM) the guest's
depth-32 random reads never completed (2026-12-02).  Prints figures and ratios; asserts
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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import bench_report  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM_MIB = 512
CPUS = 2
SCRATCH_MIB = 256
REPEATS = 3
IOPS_SECONDS = 10
GAP_SECONDS = 20
SLOW_MIB = 64


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
    iops = {}
    for mode in ("read", "write"):
        for depth in (1, 32):
            iops[f"{mode}{depth}"] = workload_figure(vm, f"ntc-iops /dev/vdb {mode} {depth} {IOPS_SECONDS}",
                                                     r"IOPS (\d+)")
    gap_idle = workload_figure(vm, f"ntc-timergap 0 {GAP_SECONDS}", r"TIMERGAP max_ms=([\d.]+)")
    # The flood runs a little longer than the loop, so the whole loop sees it.
    vm.sh(f"ntc-fsync-flood 1 /dev/vdc {GAP_SECONDS + 5} > /tmp/flood.out 2>&1 & :")
    gap_flood = workload_figure(vm, f"ntc-timergap 0 {GAP_SECONDS}", r"TIMERGAP max_ms=([\d.]+)")
    fsyncs = workload_figure(vm, "wait; cat /tmp/flood.out", r"FSYNCS (\d+)")
    rss = rss_without_guest_ram(host, process)
    warnings = vm.sh("dmesg | grep -c 'WARNING:' || true")[1].strip().splitlines()[-1]
    print(f"{process}: guest kernel warnings at boot: {warnings}", flush=True)
    vm.poweroff(120)
    return {"boot_s": boot, "write_MBps": write, "read_MBps": read, "rss_MiB": rss, "gap_idle_ms": gap_idle,
            "gap_flood_ms": gap_flood, "flood_fsyncs": fsyncs, **{"iops_" + k: v for k, v in iops.items()}}


def workload_figure(vm, cmd, pattern):
    out = vm.sh(cmd, timeout=300)[1]
    m = re.search(pattern, out)
    if not m:
        raise ntclab.LabError(f"{cmd}: no figure in: {out}")
    return float(m.group(1))


def main():
    work = tempfile.mkdtemp(prefix="vmm-bench-", dir=ntclab.BUILD)
    disk = os.path.join(work, "disk.img")
    subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), disk,
                    "--overlay", ntcguest.build_overlay(work)], check=True, timeout=120)
    slow = os.path.join(work, "slow.img")
    with open(slow, "wb") as f:
        f.truncate(SLOW_MIB << 20)
    with open(disk + ".cmdline") as f:
        cmdline = f.read().strip()

    with nested.HostVM("vmm-bench", work) as host:
        host.wait_ready()
        # The scratch disk lives in the host VM's tmpfs: the figures then
        # measure the VMMs, not the 9p share the work directory is on.
        # The slow disk stays on the share: its flushes take the share's time.
        d, s, w = host.inside(disk), "/tmp/scratch.img", host.inside(slow)
        host.sh(f"truncate -s {SCRATCH_MIB}M {s}")
        ntc = nested.NestedVmm(host, "bench-ntc-vmm", ["run", d, "--disk", s, "--disk", w, "--mem", f"{MEM_MIB}M",
                                                       "--cpus", str(CPUS)])
        results = {"ntc-vmm": measure(host, ntc, "ntc-vmm")}
        qemu_args = ["-accel", "kvm", "-cpu", "host", "-m", str(MEM_MIB), "-smp", str(CPUS),
                     "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                     "-kernel", host.inside(disk + ".vmlinuz"), "-initrd", host.inside(disk + ".initrd"),
                     "-append", cmdline]
        for i, image in enumerate((d, s, w)):
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
    for key, label in (("iops_read1", "4 KiB random read IOPS, depth 1"),
                       ("iops_read32", "4 KiB random read IOPS, depth 32"),
                       ("iops_write1", "4 KiB random write IOPS, depth 1"),
                       ("iops_write32", "4 KiB random write IOPS, depth 32")):
        rows.append(f"| {label} | {a[key]:.0f} | {b[key]:.0f} | {a[key] / b[key]:.2f} | >= 1.0 |")
    rows.append(f"| timer loop's largest gap, idle (ms) | {a['gap_idle_ms']:.1f} | {b['gap_idle_ms']:.1f} "
                f"| {a['gap_idle_ms'] / b['gap_idle_ms']:.2f} | |")
    rows.append(f"| timer loop's largest gap, other vCPU flooding fdatasync (ms) | {a['gap_flood_ms']:.1f} "
                f"| {b['gap_flood_ms']:.1f} | {a['gap_flood_ms'] / b['gap_flood_ms']:.2f} | ntc-vmm < 50 ms |")
    rows.append(f"| fdatasyncs in the flood | {a['flood_fsyncs']:.0f} | {b['flood_fsyncs']:.0f} "
                f"| {a['flood_fsyncs'] / b['flood_fsyncs']:.2f} | |")
    rows.append(f"| VMM RSS without guest RAM (MiB) | {a['rss_MiB']:.1f} | {b['rss_MiB']:.1f} "
                f"| {a['rss_MiB'] / b['rss_MiB']:.2f} | ntc-vmm < 20 MiB |")
    report = "\n".join(rows) + "\n"
    print("\n" + report)
    bench_report.write("vmm", "## vmm: ntc-vmm against QEMU/KVM\n\n" + report)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
