#!/usr/bin/env python3
"""Carrying a running VM: NTC against QEMU's save and restore (issue 5).

In one nested-KVM host VM, for guests of 512 MiB and 1 GiB with half of
their RAM filled by ntc-memhog, the counter running and a TCP echo exchange
with the host going on:

* NTC: the office VM on ntc-vmm checkpoints from inside (`echo checkpoint >
  /proc/ntc`); then `ntc-vmm resume --load-first disk2.img` until the
  counter moves again (the whole image read and checked first), and the
  same from copies of disk 2 without it (the guest runs while its image
  loads, the default) and with `--boot-kernel`.
* QEMU (-accel kvm, the same kernel, disks and virtio devices): what its user
  does to carry a running VM (tests/lab/qmp.py): `stop`, `migrate` to a
  file, copy the disks (they must match the saved state), `cont`; then a new
  QEMU with `-incoming` from that file and the copied disks, `cont`, until the
  counter moves again.  Before that first VM stops, QEMU's own live save,
  a background snapshot (`migrate` with the background-snapshot
  capability: guest RAM write-protected, each page written out before the
  guest may change it), with the downtime QEMU reports for it and the
  longest TCP stall while it ran.

A third size, 2 GiB, shows how NTC's resume grows with memory.
Figures: downtime (NTC's reported pause and the TCP stall across it, against
QEMU's stop-to-cont with and without the disk copy, and its TCP stall;
and against QEMU's background snapshot),
state bytes on disk (NTC image against QEMU's file), resume time, and
ntc-clone of disk 1 against `cp --sparse=always` of it.  Everything lives in
the host VM's tmpfs, so that the figures measure the tools rather than the
9p share.  Ratios are printed and written to build/bench/travel.md; nothing
is asserted about times.  NTC_BENCH_TRAVEL_MEM="512" chooses the sizes.
"""
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
import bench_report  # noqa: E402
import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

CPUS = 2
NETNS, TAP = "ntcbench", "ntcb0"
HOST_ADDR, GUEST_ADDR = "10.0.3.1", "10.0.3.2"
PORT = 7100
SCRATCH = "/tmp/travel"     # inside the host VM: tmpfs
QMP = os.path.abspath(os.path.join(HERE, "..", "lab", "qmp.py"))


def timed(host, cmd, timeout=600):
    """Seconds a shell command takes inside the host VM."""
    _, out = host.sh(f"a=$(date +%s.%N); {cmd}; b=$(date +%s.%N); echo TIMED $a $b", timeout)
    m = re.search(r"TIMED ([\d.]+) ([\d.]+)", out)
    return float(m.group(2)) - float(m.group(1))


def clone_times(host, disk):
    """Median of 3: ntc-clone of disk against cp --sparse=always of it."""
    clone = os.path.join(nested.BUILD, "bin", "ntc-clone")
    t_clone = statistics.median(timed(host, f"rm -f {SCRATCH}/c.img; {clone} --quiet {disk} {SCRATCH}/c.img")
                                for _ in range(3))
    t_cp = statistics.median(timed(host, f"rm -f {SCRATCH}/c.img; cp --sparse=always {disk} {SCRATCH}/c.img")
                             for _ in range(3))
    host.sh(f"rm -f {SCRATCH}/c.img")
    return t_clone, t_cp


def start_workloads(vm, mem):
    """Network up, counter, half the RAM taken, echo server: the same in
    both VMMs."""
    vm.sh(f"ip addr add {GUEST_ADDR}/24 dev eth0 && ip link set eth0 up")
    vm.sh("ntc-counter /data/counter.log 50 & :")
    ntcguest.start_in_background(vm, f"ntc-memhog {mem // 2}", r"HOG READY \d+", 600)
    ntcguest.start_in_background(vm, f"ntc-echo {PORT}", r"ECHO-LISTENING")


def exchange_stall(exchange, vm, answered, pause):
    """The TCP exchange's stall across a stop of about `pause` seconds."""
    exchange.wait_messages(answered + 50, 300, vm)
    records = exchange.finish(60, vm)
    frozen = echo_exchange.freeze_stall(echo_exchange.stalls(records), answered, pause)
    ntclab.check(frozen is not None, f"no stall of the TCP exchange near the stop ({pause:.2f} s)", vm)
    vm.expect(r"ECHO-DONE \d+", 30)
    return frozen[0]


def time_until_counter(vm, timeout=600):
    """Seconds from starting vm until its counter prints again, and the value."""
    t0 = time.monotonic()
    vm.start()
    m = vm.expect(r"(NTC-GUEST-READY)|CNT (\d+) ", timeout)
    ntclab.check(m.group(1) is None, "booted fresh instead of resuming", vm)
    return time.monotonic() - t0, int(m.group(2))


def ntc_run(host, mem, disk1, disk2, tmp):
    r = {}
    vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
    net = ["--net", f"tap:{TAP}"]

    def vm(name, *args):
        return nested.NestedVmm(host, name, ["netns", "exec", NETNS, vmm, *args], binary="ip")

    a = vm(f"travel-ntc-{mem}", "run", disk1, "--disk", disk2, "--mem", f"{mem}M", "--cpus", str(CPUS), *net)
    a.start()
    a.wait_ready(300)
    start_workloads(a, mem)
    exchange = echo_exchange.Exchange(host, NETNS, tmp, f"ntc-{mem}", GUEST_ADDR, PORT).start()
    exchange.wait_messages(50, 300, a)
    rc, st = ntcguest.checkpoint(a, 900)
    answered = len(exchange.lines())
    ntclab.check(rc == 0 and st.get("result") == "0", f"checkpoint failed: {rc} {st}", a)
    r["pause_s"] = float(st["pause_ms"]) / 1000
    r["state_bytes"] = int(st["image_bytes"])
    r["stall_s"] = exchange_stall(exchange, a, answered, r["pause_s"])
    n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
    a.poweroff(300)
    # A resume uses its image up: the other ways get copies of disk 2.
    lazy_disk2, stock_disk2 = disk2 + ".lazy", disk2 + ".stock"
    host.sh(f"rm -f {disk1} && cp --sparse=always {disk2} {lazy_disk2} && cp --sparse=always {disk2} {stock_disk2}")

    for key, disk, options in (("resume_s", disk2, ["--load-first"]), ("resume_lazy_s", lazy_disk2, []),
                               ("resume_boot_kernel_s", stock_disk2, ["--boot-kernel"])):
        b = vm(f"travel-ntc-{mem}-{key}", "resume", disk, *options, *net)
        r[key], n = time_until_counter(b)
        ntclab.check(n == n_ck + 1, f"counter resumed at {n}, checkpoint value was {n_ck}", b)
        b.sh("stty -echo; PS1=''")
        b.poweroff(300)
        host.sh(f"rm -f {disk} {disk}.next")
    return r


def qemu_args(host, boot_files, mem, disks, qmp_socket):
    kernel, initrd, cmdline = boot_files
    args = ["-accel", "kvm", "-cpu", "host", "-m", str(mem), "-smp", str(CPUS),
            "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-qmp", f"unix:{qmp_socket},server=on,wait=off",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline]
    for i, image in enumerate(disks):
        args += ["-drive", f"file={image},format=raw,if=none,id=d{i},cache=writeback",
                 "-device", f"virtio-blk-pci,drive=d{i}"]
    return args + ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                   "-device", "virtio-net-pci,netdev=n0"]


def qemu_background_snapshot(host, vm, mem, tmp, sock):
    """QEMU's own way to save a running VM with a short stop: its downtime
    as QEMU reports it, and the longest TCP stall while the save ran."""
    state = f"{SCRATCH}/qemu-{mem}.bgstate"
    exchange = echo_exchange.Exchange(host, NETNS, tmp, f"qemu-{mem}-bg", GUEST_ADDR, PORT).start()
    exchange.wait_messages(50, 300, vm)
    _, out = host.sh(f"python3 {QMP} {sock} bgsave {state}", 900)
    host.sh(f"rm -f {state}")
    unavailable = re.search(r"BGSAVE-UNAVAILABLE (.*)", out)
    m = re.search(r"BGSAVED ([\d.]+) ([\d.]+) (\d+) ([\d.]+) ([\d.]+)", out)
    ntclab.check(unavailable or m, f"QEMU's background snapshot failed: {out}", vm)
    exchange.wait_messages(len(exchange.lines()) + 50, 300, vm)
    records = exchange.finish(60, vm)
    vm.expect(r"ECHO-DONE \d+", 30)
    if unavailable:
        return {"bg_unavailable": unavailable.group(1)}
    start, end = float(m.group(4)), float(m.group(5))
    during = [gap for gap, _, before in echo_exchange.stalls(records) if start - 1 <= before <= end]
    return {"bg_downtime_s": float(m.group(1)), "bg_save_s": float(m.group(2)),
            "bg_stall_s": max(during, default=0.0)}


def qemu_run(host, mem, disks, boot_files, tmp):
    r = {}
    state = f"{SCRATCH}/qemu-{mem}.state"
    saved = [d + ".saved" for d in disks]

    def vm(name, args):
        return nested.NestedVmm(host, name, ["netns", "exec", NETNS, "qemu-system-x86_64", *args],
                                binary="ip", console_on_stdout=True)

    sock = f"{SCRATCH}/qmp-{mem}"
    a = vm(f"travel-qemu-{mem}", qemu_args(host, boot_files, mem, disks, sock))
    a.start()
    a.wait_ready(300)
    start_workloads(a, mem)
    exchange = echo_exchange.Exchange(host, NETNS, tmp, f"qemu-{mem}", GUEST_ADDR, PORT).start()
    exchange.wait_messages(50, 300, a)
    # The user's save: stop, the state to a file, the disks copied while
    # they match it, cont.
    copy = " ".join(f"cp --sparse=always {d} {s};" for d, s in zip(disks, saved))
    _, out = host.sh(f"python3 {QMP} {sock} save {state} --then '{copy}'", 900)
    answered = len(exchange.lines())
    m = re.search(r"SAVED ([\d.]+) ([\d.]+) (\d+)", out)
    ntclab.check(m is not None, f"QEMU's save failed: {out}", a)
    r["downtime_s"], r["downtime_with_disks_s"], r["state_bytes"] = \
        float(m.group(1)), float(m.group(2)), int(m.group(3))
    r["stall_s"] = exchange_stall(exchange, a, answered, r["downtime_s"])
    r.update(qemu_background_snapshot(host, a, mem, tmp, sock))
    a.poweroff(300)

    sock = f"{SCRATCH}/qmp-{mem}-in"
    args = qemu_args(host, boot_files, mem, saved, sock) + ["-incoming", f"exec:cat {state}"]
    b = vm(f"travel-qemu-{mem}-restore", args)
    host.sh(f"python3 {QMP} {sock} restore >{SCRATCH}/restore.out 2>&1 & :")
    r["resume_s"], _ = time_until_counter(b)
    b.sh("stty -echo; PS1=''")
    b.poweroff(300)
    host.sh(f"rm -f {state} {' '.join(saved)}")
    return r


def run(host, mem, tmp):
    disk = ntcguest.build_disk1(tmp, name=f"travel{mem}.img", swap_mib=2 * mem)
    with open(disk + ".cmdline") as f:
        cmdline = f.read().strip()
    inside = host.inside(disk)
    d1, d2, q1, q2 = (f"{SCRATCH}/{n}-{mem}.img" for n in ("disk1", "disk2", "qemu1", "qemu2"))
    host.sh(f"cp --sparse=always {inside} {d1} && cp --sparse=always {inside} {q1}")
    boot_files = (f"{SCRATCH}/vmlinuz", f"{SCRATCH}/initrd", cmdline)
    host.sh(f"cp {inside}.vmlinuz {boot_files[0]} && cp {inside}.initrd {boot_files[1]}")
    r = {"mem": mem}
    r["clone_s"], r["cp_s"] = clone_times(host, d1)
    clone = os.path.join(nested.BUILD, "bin", "ntc-clone")
    host.sh(f"{clone} --quiet {d1} {d2} && {clone} --quiet {q1} {q2}")
    r["ntc"] = ntc_run(host, mem, d1, d2, tmp)
    print(f"{mem} MiB, NTC: {r['ntc']}", flush=True)
    r["qemu"] = qemu_run(host, mem, [q1, q2], boot_files, tmp)
    print(f"{mem} MiB, QEMU: {r['qemu']}", flush=True)
    host.sh(f"rm -f {SCRATCH}/*.img")
    os.unlink(disk)
    return r


def report(rows):
    lines = ["| RAM MiB | figure | NTC | QEMU | NTC/QEMU | target |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        n, q, mem = r["ntc"], r["qemu"], r["mem"]
        lines += [
            f"| {mem} | downtime s: NTC pause, QEMU stop to cont around the save | {n['pause_s']:.2f} | "
            f"{q['downtime_s']:.2f} | {n['pause_s'] / q['downtime_s']:.2f} | <= 0.5 (issue 5), <= 0.1 (issue 17) |",
            f"| {mem} | QEMU's downtime with the disk copy a carry needs | | {q['downtime_with_disks_s']:.2f} | "
            f"{n['pause_s'] / q['downtime_with_disks_s']:.2f} | |",
            f"| {mem} | TCP stall across it, s | {n['stall_s']:.2f} | {q['stall_s']:.2f} | "
            f"{n['stall_s'] / q['stall_s']:.2f} | |",
        ]
        if "bg_unavailable" in q:
            lines.append(f"| {mem} | QEMU background-snapshot | | unavailable: {q['bg_unavailable']} | | |")
        else:
            lines += [
                f"| {mem} | downtime s: NTC pause, QEMU background-snapshot (QEMU's own figure) | "
                f"{n['pause_s']:.2f} | {q['bg_downtime_s']:.3f} | {n['pause_s'] / max(q['bg_downtime_s'], 1e-3):.1f} | |",
                f"| {mem} | longest TCP stall: NTC across its pause, QEMU while its background snapshot ran "
                f"({q['bg_save_s']:.1f} s), s | {n['stall_s']:.2f} | {q['bg_stall_s']:.2f} | "
                f"{n['stall_s'] / max(q['bg_stall_s'], 1e-3):.1f} | |",
            ]
        lines += [
            f"| {mem} | state on disk, MB | {n['state_bytes'] / 1e6:.0f} | {q['state_bytes'] / 1e6:.0f} | "
            f"{n['state_bytes'] / q['state_bytes']:.2f} | <= 0.8 |",
            f"| {mem} | resume --load-first until the counter moves, s | {n['resume_s']:.2f} | {q['resume_s']:.2f} | "
            f"{n['resume_s'] / q['resume_s']:.2f} | |",
            f"| {mem} | the same, the image loaded behind the guest (the default), s | "
            f"{n['resume_lazy_s']:.2f} | {q['resume_s']:.2f} | {n['resume_lazy_s'] / q['resume_s']:.2f} | <= 0.1 |",
            f"| {mem} | the same with --boot-kernel (disk 2's kernel reads the image), s | "
            f"{n['resume_boot_kernel_s']:.2f} | {q['resume_s']:.2f} | {n['resume_boot_kernel_s'] / q['resume_s']:.2f} | |",
            f"| {mem} | clone of disk 1: ntc-clone against cp --sparse=always, s | {r['clone_s']:.2f} | "
            f"{r['cp_s']:.2f} (cp) | {r['clone_s'] / r['cp_s']:.2f} | |",
        ]
    small, large = min(rows, key=lambda r: r["mem"]), max(rows, key=lambda r: r["mem"])
    if large is not small:
        for key, way in (("resume_s", "resume --load-first"), ("resume_lazy_s", "resume")):
            ratio = large["ntc"][key] / small["ntc"][key]
            lines += ["", f"NTC {way} until the counter moves, {large['mem']} MiB against {small['mem']} MiB: "
                          f"{large['ntc'][key]:.2f} / {small['ntc'][key]:.2f} s = {ratio:.2f}x (target <= 1.2x)"]
    return "\n".join(lines)


def main():
    sizes = [int(x) for x in os.environ.get("NTC_BENCH_TRAVEL_MEM", "512 1024 2048").split()]
    t0 = time.monotonic()
    rows = []
    # The guest, and in tmpfs disk 2 with its image three times over (or
    # QEMU's state and disks).
    big = max(sizes)
    with ntcguest.workdir() as tmp:
        with nested.HostVM("travel-bench", tmp, mem_mib=2048 + 4 * big) as host:
            host.wait_ready()
            host.sh(f"mkdir -p {SCRATCH} && mount -t tmpfs -o size={1024 + 3 * big}m tmpfs {SCRATCH}")
            echo_exchange.add_tap(host, NETNS, TAP, HOST_ADDR)
            for mem in sizes:
                rows.append(run(host, mem, tmp))
            host.send("poweroff -f")
    table = report(rows)
    bench_report.publish("travel", "NTC against QEMU's save and restore",
                         f"Nested KVM inside a QEMU TCG host VM; {CPUS} vCPUs; half of RAM filled by ntc-memhog, "
                         "a counter and a TCP echo exchange running. QEMU: -accel kvm, same kernel, disks, "
                         "virtio-blk and virtio-net; stop, migrate to a file (bandwidth cap lifted), copy of "
                         "the disks, cont; restore with -incoming and cont. All files in the host VM's tmpfs.",
                         table, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
