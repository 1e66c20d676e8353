#!/usr/bin/env python3
"""ntc-vmm resume continues a checkpointed guest (level 3).

The checkpoint here is a stock hibernation image taken inside a guest that
ntc-vmm runs (echo disk > /sys/power/state onto the disk's own swap), plus
the NTC record that ntc.ko would write beside it, written from the host: so
this tests the VMM's side of resume (reading the record, the machine size
from it, the kernel from /boot, resume=, the second disk in its old place)
independently of the module.  The stock image is compressed, so it takes
`resume --boot-kernel`; plain `resume` refuses it and changes nothing.  State that lives only in guest RAM (a tmpfs
file, a running counter) must survive.  A disk without a checkpoint is
refused with a clear message.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import nested  # noqa: E402
import ntclab  # noqa: E402

RECORD = struct.Struct("<8sIIII16sIIQQQQQQIIQIIQQQQ65s65s65s677s")
assert RECORD.size == 1024
NTC_STATE_CHECKPOINT = 2


check = ntclab.check


def write_ntc_record(disk, swap_offset, ram_bytes, cpus, release):
    """The record ntc.ko leaves in the first KiB of the image's swap page 0."""
    fields = [b"NTC-REC1", 1, 0, NTC_STATE_CHECKPOINT, 0, bytes(16), 0, 3, os.path.getsize(disk),
              int(time.time()), 1, time.time_ns(), 0, 0, 0, 0, 0, 0, cpus, ram_bytes, 0, 0, 0,
              release.encode(), b"", b"x86_64", bytes(677)]
    crc = zlib.crc32(RECORD.pack(*fields))
    fields[2] = crc
    with open(disk, "r+b") as f:
        f.seek(swap_offset + 4086)
        check(f.read(10).rstrip(b"\0") == b"S1SUSPEND", "the guest left no hibernation image")
        f.seek(swap_offset)
        f.write(RECORD.pack(*fields))


def main():
    work = tempfile.mkdtemp(prefix="nested-resume-", dir=ntclab.BUILD)
    disk, other = os.path.join(work, "disk.img"), os.path.join(work, "other.img")
    subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), disk], check=True, timeout=120)
    with open(other, "wb") as f:
        f.truncate(os.path.getsize(disk))
    swap = [p for p in ntclab.partitions(disk) if p.fstype == "swap"][0]

    t0 = time.monotonic()
    with nested.HostVM("nested-vmm-resume", work) as host:
        host.wait_ready()
        d, o = host.inside(disk), host.inside(other)
        vmm_bin = os.path.join(nested.BUILD, "bin", "ntc-vmm")

        rc, out = host.sh(f"{vmm_bin} resume {d} </dev/null 2>&1", check=False)
        check(rc == 1 and "no valid NTC checkpoint" in out, f"resume without checkpoint: {rc} {out}")
        print(f"refused as expected: {out.strip().splitlines()[0]}", flush=True)

        first = nested.NestedVmm(host, "original", ["run", d, "--disk", o, "--cpus", "2", "--mem", "512M"])
        first.start()
        first.wait_ready(300)
        marker = f"in-ram-{os.getpid()}"
        first.sh(f"echo {marker} > /tmp/marker")
        # Written aside and renamed: `echo > file` truncates first, and a read between finds it empty.
        first.sh("(i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; "
                 "sleep 0.2; done) >/dev/null 2>&1 & :")
        time.sleep(1)
        before = int(first.sh("cat /tmp/counter")[1].strip())
        first.sh("grep -q /dev/vda3 /proc/swaps")
        t1 = time.monotonic()
        first.send("echo disk > /sys/power/state")
        rc = first.wait_exit(180)
        check(rc == 0, f"hibernating guest should power off (status 0), got {rc}")
        print(f"guest hibernated in {time.monotonic() - t1:.1f}s, counter was {before}", flush=True)

        write_ntc_record(disk, swap.offset, 512 << 20, 2, ntclab.guest_kernel_release())
        # The stock kernel compresses its image, which only a kernel reads.
        rc, out = host.sh(f"{vmm_bin} resume {d} </dev/null 2>&1", check=False)
        check(rc == 1 and "compressed" in out and "--boot-kernel" in out,
              f"a compressed image should be refused with a pointer to --boot-kernel: {rc} {out}")
        check(not os.path.exists(disk + ".next"), "a refused resume should leave no second disk behind")
        resumed = nested.NestedVmm(host, "resumed", ["resume", d, "--disk", o, "--boot-kernel"])
        t2 = time.monotonic()
        resumed.start()
        # The restored shell has no new prompt; ask it something only it knows.
        deadline = time.monotonic() + 240
        while True:
            try:
                rc, out = resumed.sh("cat /tmp/marker", timeout=10, check=False)
                break
            except ntclab.LabError:
                if time.monotonic() > deadline:
                    raise
        check(out.strip().endswith(marker), f"tmpfs marker lost: {out!r}")
        print(f"resumed in {time.monotonic() - t2:.1f}s", flush=True)
        time.sleep(1)
        after = int(resumed.sh("cat /tmp/counter")[1].strip())
        check(after > before, f"counter should continue from {before}, is {after}")
        check(resumed.sh("nproc")[1].strip() == "2", "resumed machine has the record's 2 CPUs")
        check("/dev/vda3" in resumed.sh("cat /proc/cmdline")[1], "resume= points at the swap partition")
        resumed.sh("ls /dev/vdb")
        rc = resumed.poweroff(120)
        check(rc == 0, f"resumed guest poweroff: status {rc}")
        print(f"counter continued {before} -> {after}; powered off", flush=True)

        rc, out = host.sh(f"{vmm_bin} resume {d} </dev/null 2>&1", check=False)
        check(rc == 1 and "no valid NTC checkpoint" in out, f"second resume should be refused: {rc} {out}")
        host.send("poweroff -f")

    parts = [p for p in ntclab.partitions(disk) if p.fstype == "ext4"]
    problems = ntclab.e2fsck_clean(disk, [p.offset for p in parts])
    check(not problems, f"e2fsck: {problems}")
    print(f"PASS in {time.monotonic() - t0:.1f}s")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
