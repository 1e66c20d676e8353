#!/usr/bin/env python3
"""Instances of one checkpoint (issue 15): 1, 2 and 4 machines started from
one checkpoint of a 512 MiB guest, each on an overlay of its own (`ntc-vmm
resume disk2 --overlay`), against the same number started from full copies
of disk 2, the copying included.

Inside one nested-KVM host VM, with every disk in its tmpfs (so no 9p share
in the figures, and what a copy occupies is host memory there): the office
VM takes one checkpoint with a counter running and powers off.  For each
count and way, with the page cache dropped first: the seconds from the
start (the first copy, or the first ntc-vmm) until each instance's counter
moves on from the checkpoint's value, the host memory used once all run
(the drop in MemAvailable), and the disk space the instances' files take
(overlays, or copies: allocated bytes).  Prints figures; asserts nothing
about speed.
"""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import bench_report  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM = "512M"
COUNTS = (1, 2, 4)
DISK1, DISK2 = "/tmp/disk1.img", "/tmp/disk2.img"


def mem_available_mib(host):
    _, out = host.sh("grep MemAvailable /proc/meminfo")
    return int(re.search(r"(\d+) kB", out).group(1)) / 1024


def allocated_mib(host, paths):
    _, out = host.sh("du -k -c " + " ".join(paths) + " | tail -n 1")
    return int(out.split()[0]) / 1024


def wait_counters(vms, n_ck, started, timeout=600):
    """Seconds from `started` until each VM's counter prints a value past
    n_ck, all polled together."""
    pattern = re.compile(r"CNT (\d+) ")
    seen = [None] * len(vms)
    deadline = time.monotonic() + timeout
    while None in seen:
        for i, vm in enumerate(vms):
            if seen[i] is None:
                m = pattern.search(vm.text())
                if m:
                    ntclab.check(int(m.group(1)) == n_ck + 1, f"counter resumed at {m.group(1)}, not {n_ck + 1}", vm)
                    seen[i] = time.monotonic() - started
                elif vm.exit_status() is not None or time.monotonic() > deadline:
                    vm.fail("its counter never moved on")
        time.sleep(0.1)
    return seen


def start_instances(host, vmm, count, n_ck, overlays):
    """Starts `count` instances, on overlays or on copies of disk 2 (made
    one after the other first); returns the counter times, memory used,
    space taken."""
    host.sh("sync; echo 3 >/proc/sys/vm/drop_caches")
    before = mem_available_mib(host)
    started = time.monotonic()
    files, vms = [], []
    for k in range(count):
        if overlays:
            files.append(f"/tmp/inst-{k}.cow")
            args = ["resume", DISK2, "--overlay", files[-1], "--name", f"inst-{k}"]
        else:
            files.append(f"/tmp/copy-{k}.img")
            host.sh(f"cp --sparse=always {DISK2} {files[-1]}", 600)
            args = ["resume", files[-1], "--name", f"inst-{k}"]
        vms.append(nested.NestedVmm(host, f"bench-{'overlay' if overlays else 'copy'}-{count}-{k}", args,
                                    binary=vmm))
    copied = time.monotonic() - started
    for k, vm in enumerate(vms):
        vm.start(fd=3 + k)
    times = wait_counters(vms, n_ck, started)
    time.sleep(2)
    used = before - mem_available_mib(host)
    space = allocated_mib(host, files)
    for vm in vms:
        vm.send("poweroff")
    for vm in vms:
        ntclab.check(vm.wait_exit(180) == 0, "an instance's poweroff should end ntc-vmm with 0", vm)
    host.sh("rm -f " + " ".join(f"{f} {f}.next" for f in files))
    return {"times": times, "copy_s": copied, "mem_MiB": used, "space_MiB": space}


def main():
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="instances-bench-", dir=ntclab.BUILD)
    disk1 = ntcguest.build_disk1(work)
    disk2 = ntcguest.make_disk2(disk1, os.path.join(work, "disk2.img"))
    vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
    results = {}
    with nested.HostVM("instances-bench", work, mem_mib=4096) as host:
        host.wait_ready()
        host.sh(f"cp --sparse=always {host.inside(disk1)} {DISK1} && "
                f"cp --sparse=always {host.inside(disk2)} {DISK2}", 600)
        office = nested.NestedVmm(host, "bench-office", ["run", DISK1, "--disk", DISK2, "--mem", MEM, "--cpus", "1"],
                                  binary=vmm).start()
        office.wait_ready(300)
        office.sh("ntc-counter /data/counter.log 100 & :")
        office.sh("sleep 1")
        rc, st = ntcguest.checkpoint(office)
        ntclab.check(rc == 0 and st.get("result") == "0", f"checkpoint failed: {rc} {st}", office)
        n_ck = ntcguest.counter_before(office, st["time_unix_ns"])
        office.sh("killall ntc-counter; sync", check=False)
        ntclab.check(office.poweroff(120) == 0, "the office VM's poweroff should end ntc-vmm with 0", office)
        image_mib = int(st["image_bytes"]) / (1 << 20)
        _, disk2_mib = host.sh(f"du -k {DISK2}")
        for count in COUNTS:
            for overlays in (True, False):
                results[(count, overlays)] = start_instances(host, vmm, count, n_ck, overlays)
                r = results[(count, overlays)]
                print(f"{count} on {'overlays' if overlays else 'copies'}: counters at "
                      f"{', '.join(f'{t:.1f}' for t in r['times'])} s, memory {r['mem_MiB']:.0f} MiB, "
                      f"space {r['space_MiB']:.2f} MiB", flush=True)
        host.send("poweroff -f")

    rows = ["| instances | way | until each counter moves (s) | copying (s) | host memory used (MiB) "
            "| disk space of the instances' files (MiB) |", "| ---: | --- | --- | ---: | ---: | ---: |"]
    for count in COUNTS:
        for overlays in (True, False):
            r = results[(count, overlays)]
            rows.append(f"| {count} | {'--overlay' if overlays else 'full copies'} | "
                        f"{' '.join(f'{t:.1f}' for t in r['times'])} | "
                        f"{r['copy_s'] if not overlays else 0:.1f} | {r['mem_MiB']:.0f} | {r['space_MiB']:.2f} |")
    for count in COUNTS:
        o, c = results[(count, True)], results[(count, False)]
        rows.append("")
        rows.append(f"{count}: the last counter moves after {max(o['times']):.1f} s on overlays, "
                    f"{max(c['times']):.1f} s on copies ({max(o['times']) / max(c['times']):.2f}x); memory "
                    f"{o['mem_MiB']:.0f} against {c['mem_MiB']:.0f} MiB.")
    setting = (f"nested KVM inside a QEMU TCG host VM, disks in its tmpfs; guest {MEM}, 1 vCPU; checkpoint image "
               f"{image_mib:.0f} MiB, disk 2 {int(disk2_mib.split()[0]) / 1024:.0f} MiB allocated")
    bench_report.publish("instances", "one checkpoint started as several machines", setting, "\n".join(rows),
                         started)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
