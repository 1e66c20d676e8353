#!/usr/bin/env python3
"""ntc-vmm boots an NTC guest disk under nested KVM (level 3).

Inside a QEMU TCG host VM with kvm-amd: ntc-vmm boots disk 1 with disk 2 as a
second disk and 2 vCPUs, the guest uses MSI-X for its virtio disks, reads
and writes files on both, syncs and powers off; the VMM exits 0 and both disks are clean (e2fsck -fn).  A guest
that reboots ends the VMM with status 2.  SIGQUIT makes each vCPU and each
virtio device print its state (a hang's evidence), its RAM dump shows each
CPU's queue of remote wake-ups (read with the addresses the lab took from
the guest's kallsyms), and the guest runs on.  While it
runs, a second VMM on the same disk is refused; the user errors (missing
kernel, no kernel on the disk, RAM too large) give plain messages and status 1.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import nested  # noqa: E402
import ntclab  # noqa: E402


check = ntclab.check


def debugfs_cat(image, offset, path):
    return subprocess.run(["debugfs", "-R", f"cat {path}", f"{image}?offset={offset}"],
                          capture_output=True, text=True).stdout


def main():
    os.makedirs(ntclab.BUILD, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nested-vmm-", dir=ntclab.BUILD)
    disk1, disk2 = os.path.join(work, "disk1.img"), os.path.join(work, "disk2.img")
    builder = os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh")
    subprocess.run([builder, disk1], check=True, timeout=120)
    subprocess.run([builder, disk2], check=True, timeout=120)
    blank, no_entry = os.path.join(work, "blank.img"), os.path.join(work, "no-entry.img")
    for image in (blank, no_entry):
        with open(image, "wb") as f:
            f.truncate(64 << 20)
    subprocess.run(["sgdisk", "-o", "-n", "1:1M:+32M", no_entry], check=True, capture_output=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={1 << 20}", no_entry, "32M"], check=True)

    t0 = time.monotonic()
    with nested.HostVM("nested-vmm-boot", work) as host:
        host.wait_ready()
        print(f"host VM ready in {time.monotonic() - t0:.1f}s", flush=True)
        vmm_bin = os.path.join(nested.BUILD, "bin", "ntc-vmm")

        def refused(args, message):
            rc, out = host.sh(f"{vmm_bin} {args} </dev/null 2>&1", check=False, timeout=60)
            check(rc == 1 and message in out, f"ntc-vmm {args}: want status 1 and {message!r}, got {rc}: {out}")
            print(f"refused as expected: ntc-vmm {args}: {out.strip().splitlines()[-1]}", flush=True)

        d1, d2 = host.inside(disk1), host.inside(disk2)
        refused(f"run {host.inside(blank)}", "no partition table")
        refused(f"run {host.inside(no_entry)}", "has no kernel to boot")
        refused(f"run {d1} --kernel /nonexistent/vmlinuz", "not found")
        refused(f"run {d1} --mem 100000G", "more than this host")

        vmm = nested.NestedVmm(host, "vmm1", ["run", d1, "--disk", d2, "--cpus", "2", "--mem", "512M"])
        t1 = time.monotonic()
        vmm.start()
        vmm.wait_ready(timeout=300)
        print(f"nested guest shell in {time.monotonic() - t1:.1f}s", flush=True)

        refused(f"run {d1}", "in use")

        check(vmm.sh("nproc")[1].strip() == "2", "guest should see 2 vCPUs")
        # The virtio driver takes MSI-X when offered: one vector per queue
        # and one for configuration changes, each delivered through an irqfd.
        interrupts = vmm.sh("cat /proc/interrupts")[1]
        msix = [line for line in interrupts.splitlines() if "PCI-MSI" in line and "virtio" in line]
        check(any("virtio0-req" in line for line in msix) and any("virtio0-config" in line for line in msix),
              f"guest should use MSI-X for its virtio disks: {interrupts}")
        # What a hang report (SIGQUIT) holds: each vCPU's line and each
        # virtio device's worker's line with its rings; the guest runs on.
        vmm.request_report()
        wanted = [r"vCPU 0: \w+, RIP", r"vCPU 1: \w+, RIP",
                  r"virtio-blk ntc-disk0: status 0xf, ISR \w+, MSI-X on; queue 0: available \d+, taken \d+, "
                  r"used \d+, driver flags \w+, driver's used_event \d+, vector 1; queue 1: .*, vector 2",
                  r"virtio-blk ntc-disk1: status 0xf"]
        deadline = time.monotonic() + 60
        while any(not re.search(w, vmm.stderr()) for w in wanted) and time.monotonic() < deadline:
            time.sleep(0.5)
        missing = [w for w in wanted if not re.search(w, vmm.stderr())]
        check(not missing, f"SIGQUIT report lacks {missing}: {vmm.stderr()}")
        print("SIGQUIT report:\n" + vmm.stderr().strip(), flush=True)
        # The report's RAM dump, read with the addresses the lab took from
        # the guest while it was well: each CPU's queue of remote wake-ups.
        layout = getattr(host, "guest_kernel_layout", None)
        queues = nested.wake_queues(vmm.crash_dump, layout) if layout else []
        check(len(queues) == 2 and all(re.fullmatch(r"CPU \d: call_single_queue (empty|holds 0x[0-9a-f]+: .*)", q)
                                       for q in queues),
              f"the RAM dump's wake-up queues should read for both CPUs: layout {layout}, {queues}")
        print("wake-up queues in the RAM dump:", *queues, sep="\n  ", flush=True)
        vmm.sh("echo disk1-data > /data/written-by-guest")
        check(vmm.sh("cat /etc/hostname 2>/dev/null || hostname")[0] == 0, "read on disk 1")
        vmm.sh("mkdir -p /mnt/d2 && mount /dev/vdb2 /mnt/d2")
        vmm.sh("echo disk2-data > /mnt/d2/written-by-guest")
        check(vmm.sh("cat /mnt/d2/written-by-guest")[1].strip() == "disk2-data", "read back on disk 2")
        vmm.sh("dd if=/dev/vdb of=/dev/null bs=1M count=32 2>/dev/null")
        vmm.sh("sync; umount /mnt/d2; sync")
        rc = vmm.poweroff(120)
        check(rc == 0, f"ntc-vmm should exit 0 after poweroff, got {rc}: {vmm.stderr()}")
        print(f"powered off, ntc-vmm exit status {rc}", flush=True)

        again = nested.NestedVmm(host, "vmm2", ["run", d1, "--cpus", "1", "--mem", "256M"])
        again.start()
        again.wait_ready(timeout=300)
        again.send("reboot")
        rc = again.wait_exit(120)
        check(rc == 2, f"ntc-vmm should exit 2 after the guest reboots, got {rc}: {again.stderr()}")
        print(f"rebooted, ntc-vmm exit status {rc}", flush=True)
        host.send("poweroff -f")

    for disk in (disk1, disk2):
        parts = [p for p in ntclab.partitions(disk) if p.fstype == "ext4"]
        problems = ntclab.e2fsck_clean(disk, [p.offset for p in parts])
        check(not problems, f"e2fsck {disk}: {problems}")
    data1 = ntclab.partitions(disk1)[1].offset
    data2 = ntclab.partitions(disk2)[1].offset
    check(debugfs_cat(disk1, data1, "/written-by-guest").strip() == "disk1-data", "disk 1 file on disk")
    check(debugfs_cat(disk2, data2, "/written-by-guest").strip() == "disk2-data", "disk 2 file on disk")
    print(f"PASS in {time.monotonic() - t0:.1f}s")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
