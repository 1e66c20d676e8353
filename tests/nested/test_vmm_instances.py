#!/usr/bin/env python3
"""One checkpoint, three machines (level 3, issue 15), on ntc-vmm.

The office VM runs as `--name office` with a network card; its address is
set, a counter runs, and a listener for ntc.ko's uevents stands in for the
resume hooks (ntc-dkms's hook runner is tested on the Debian guest,
nested.debian_vmm): on the "resumed" event it records the instance name,
the checkpoint and 32 bytes of /dev/urandom.  The office takes a checkpoint
onto disk 2 and powers off; disk 2's hash is taken.

Three instances are then resumed from disk 2 at the same time (their images
loaded while the three run), each with `--overlay` of its own, `--name
inst-N` and a TAP in a network namespace of its own.  In each: the counter
goes on from the checkpoint's value; eth0 has the instance's own MAC
(derived from the name) and reaches the host side of its TAP; the hook saw
the instance's name and checkpoint, and its 32 random bytes differ between
all three; the kernel log says the RNG was reseeded for a VM fork; the wall
clock is within a second of the host's and the uptime did not leap at the
resume; a file each writes is not seen by the others.  Afterwards disk 2's
hash is unchanged and it still holds the checkpoint; instance 0's overlay,
made a plain disk with ntc-clone, resumes no further but boots, with
instance 0's file and not the others'.
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM = "256M"
CPUS = "1"
INSTANCES = 3
HOST_ADDR, GUEST_ADDR = "10.0.2.1", "10.0.2.2"
check = ntclab.check

# The stand-in for the resume hooks: busybox's uevent applet runs it for
# every uevent, with the event's variables in its environment.
HOOK = ("uevent sh -c '[ \"$NTC_EVENT\" = resumed ] && echo \"HOOK instance=$NTC_INSTANCE "
        "checkpoint=$NTC_CHECKPOINT random=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d \" \\n\")\" "
        ">/tmp/ntc-hook' >/dev/null 2>&1 & :")


def netns(i):
    return f"ntcinst{i}"


def wait_for(vm, cmd, pattern, what, seconds=20):
    """Runs cmd once a second until its output matches pattern."""
    for _ in range(seconds):
        _, out = vm.sh(cmd, check=False)
        m = re.search(pattern, out)
        if m:
            return m
        vm.sh("sleep 1")
    vm.fail(f"{what}: {out!r}")


def main():
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
        clone = os.path.join(nested.BUILD, "bin", "ntc-clone")
        with nested.HostVM("nested-vmm-instances", tmp, mem_mib=2560) as host:
            host.wait_ready()
            for i in ["office"] + list(range(INSTANCES)):
                echo_exchange.add_tap(host, netns(i), f"ntcinst{i}t", HOST_ADDR)

            def vm(name, ns, args):
                return nested.NestedVmm(host, name, ["netns", "exec", netns(ns), vmm, *args,
                                                     "--net", f"tap:ntcinst{ns}t"], binary="ip")

            d1, d2 = host.inside(disk1), host.inside(disk2)
            a = vm("inst-office", "office", ["run", d1, "--disk", d2, "--mem", MEM, "--cpus", CPUS,
                                             "--name", "office"]).start()
            a.wait_ready(300)
            office_mac = nested.expected_mac(disk1, "office")
            check(office_mac in a.sh("cat /sys/class/net/eth0/address")[1], f"office MAC should be {office_mac}", a)
            a.sh(f"ip addr add {GUEST_ADDR}/24 dev eth0 && ip link set eth0 up")
            a.sh(HOOK)
            a.sh("ntc-counter /data/counter.log 50 & :")
            a.sh("sleep 1")
            rc, st = ntcguest.checkpoint(a)
            check(rc == 0 and st.get("result") == "0", f"checkpoint failed: {rc} {st}", a)
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            # By exit status: the counter's console lines can come between a command's output.
            rc, hook = a.sh("test -e /tmp/ntc-hook && cat /tmp/ntc-hook", check=False)
            check(rc != 0, f"the resume hook ran in the office VM, which was not resumed: {hook!r}", a)
            a.sh("killall ntc-counter; sync", check=False)
            check(a.poweroff(120) == 0, "the office VM's poweroff should end ntc-vmm with 0", a)
            check(ntcguest.Area(disk2).valid_checkpoint(), "disk 2 holds no checkpoint")
            disk2_hash = ntcguest.sha256(disk2)

            cows = [os.path.join(tmp, f"inst-{i}.cow") for i in range(INSTANCES)]
            instances = [vm(f"inst-{i}", i, ["resume", d2, "--overlay", host.inside(cows[i]), "--name", f"inst-{i}"])
                         for i in range(INSTANCES)]
            t_start = time.monotonic()
            # Each console's input FIFO on a descriptor of its own in the host VM's shell.
            for i, b in enumerate(instances):
                b.start(fd=4 + i)
            for i, b in enumerate(instances):
                n = ntcguest.expect_counter_resumed(b, n_ck)
                print(f"inst-{i}: counter {n_ck} -> {n}, {time.monotonic() - t_start:.0f}s after the three "
                      f"resumes started", flush=True)
                b.sh("stty -echo; PS1=''")

            randoms = []
            for i, b in enumerate(instances):
                mac = nested.expected_mac(disk1, f"inst-{i}")
                # The counter writes to the console too: its lines come between.
                _, addr = b.sh("echo MAC $(cat /sys/class/net/eth0/address)")
                check(f"MAC {mac}" in addr, f"inst-{i}: eth0's MAC: {addr!r}, its own is {mac}", b)
                # The host's reply comes to the MAC the guest's ARP request gave.
                rc, ping = b.sh(f"ping -c 1 -W 10 {HOST_ADDR}", 60, check=False)
                check(rc == 0, f"inst-{i} cannot reach its host with its new MAC: {ping}", b)
                m = wait_for(b, "cat /tmp/ntc-hook", r"HOOK instance=(\S*) checkpoint=(\d+) random=([0-9a-f]{64})",
                             f"inst-{i}: the resume hook did not run")
                check(m.group(1) == f"inst-{i}" and m.group(2) == st["sequence"],
                      f"inst-{i}: the hook ran as {m.group(1)!r} for checkpoint {m.group(2)}", b)
                randoms.append(m.group(3))
                wait_for(b, "dmesg | grep -i 'virtual machine fork'", "crng reseeded due to virtual machine fork",
                         f"inst-{i}: no RNG reseed for the VM fork")
                offset = ntcguest.check_wall_clock(host, b)
                print(f"inst-{i}: MAC {mac}, reaches its host, hook ran, RNG reseeded, clock {offset:+.3f}s off",
                      flush=True)
                b.sh(f"echo inst-{i} >/data/only-inst-{i} && sync")
            check(len(set(randoms)) == INSTANCES, f"/dev/urandom gave the same bytes in two instances: {randoms}")
            for i, b in enumerate(instances):
                _, seen = b.sh("ls /data")
                others = [f"only-inst-{j}" for j in range(INSTANCES) if j != i and f"only-inst-{j}" in seen]
                check(f"only-inst-{i}" in seen and not others, f"inst-{i} sees {seen.split()}", b)
            for b in instances:
                b.sh("killall ntc-counter", check=False)
                b.send("poweroff")
            for i, b in enumerate(instances):
                check(b.wait_exit(120) == 0, f"inst-{i}'s poweroff should end ntc-vmm with 0", b)
            check(ntcguest.sha256(disk2) == disk2_hash, "disk 2 changed under its instances")
            check(ntcguest.Area(disk2).valid_checkpoint(), "disk 2 lost its checkpoint to its instances")
            print("disk 2 unchanged, its checkpoint still there", flush=True)

            flat = os.path.join(tmp, "inst-0.img")
            host.sh(f"{clone} {host.inside(cows[0])} {host.inside(flat)} >/dev/null", 300)
            rc, out = host.sh(f"{vmm} resume {host.inside(flat)} </dev/null 2>&1", 60, check=False)
            check(rc == 1 and "checkpoint" in out, f"the instance's disk should resume no further: {rc} {out}")
            c = vm("inst-0-plain", 0, ["run", host.inside(flat), "--mem", MEM, "--cpus", CPUS]).start()
            c.wait_ready(300)
            _, seen = c.sh("ls /data")
            check("only-inst-0" in seen and "only-inst-1" not in seen,
                  f"the plain disk of inst-0 holds {seen.split()}", c)
            check(c.poweroff(120) == 0, "the plain disk's poweroff should end ntc-vmm with 0", c)
            host.send("poweroff -f")
        used = [os.stat(c).st_blocks * 512 >> 10 for c in cows]
        print(f"the instances' overlays hold {used} KiB, disk 2 {os.path.getsize(disk2) >> 20} MiB", flush=True)
    print(f"PASS in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
