#!/usr/bin/env python3
"""The whole journey on ntc-vmm, network up (level 3, issue 5).

Inside the nested-KVM host VM, a network namespace holds a TAP device with
the host side of a private link (10.0.2.1/24 <-> 10.0.2.2/24).  The office VM
runs on ntc-vmm with disk 1, disk 2 (ntc-clone of disk 1) and a virtio-net
card on that TAP.  Issue 3's workloads run in it (counter, SysV IPC holder,
fsync'ed file) plus a TCP echo server, with a client in the namespace
exchanging numbered messages continuously (tests/lab/echo_exchange.py).  `echo checkpoint > /proc/ntc`
succeeds while the exchange goes on: the connection is never reset, no
message is lost or reordered, and the stall of the exchange across the
freeze is close to the reported pause.  Other stalls come from the
checkpoint's disk pre-copy, when the whole guest (the counter too) can stand
still for seconds on this nested setup; the largest of all must stay within
twice the pause.  The office VM runs on, writes a file, powers off.

Travel 1: disk 3 = ntc-clone of disk 2; `ntc-vmm resume disk2 --disk disk3`
continues from the checkpoint (counter, IPC, file, later write absent), with
the card at its PCI address and MAC, the wall clock right; a new TCP
exchange works.  Its clock is then set an hour back, as on a machine
without NTP, and it takes a second checkpoint (onto disk 3) and powers off.

Travel 2: `ntc-vmm resume disk3` continues from the second checkpoint, its
wall clock the host's again: the resumed kernel takes the time from the
machine it runs on (Documentation/kmod.md), not the office's clock.
Disks 2 and 3 are e2fsck-clean at the end.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))

MEM = "256M"
CPUS = "2"
NETNS = "ntcjourney"
TAP = "ntcj0"
HOST_ADDR, GUEST_ADDR = "10.0.2.1", "10.0.2.2"
PORT = 7000
CLOCK_BACK_S = 3600

import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402


check = ntclab.check


def configure_guest_network(vm, mac):
    _, out = vm.sh("cat /sys/class/net/eth0/address; readlink -f /sys/class/net/eth0/device")
    check(mac in out, f"eth0's MAC should be {mac}: {out}", vm)
    # Slot 3: after the two disks, in the original and in the resumed machine.
    check("/0000:00:03.0/" in out, f"eth0 should be at PCI 00:03.0: {out}", vm)
    return out


def travel(vm, label, n_ck):
    """Starts a resuming VM and waits until its counter continues from the
    checkpoint value n_ck; returns the seconds that took."""
    t0 = time.monotonic()
    vm.start()
    n = ntcguest.expect_counter_resumed(vm, n_ck)
    seconds = time.monotonic() - t0
    print(f"{label}: resumed in {seconds:.1f}s, counter {n_ck} -> {n}", flush=True)
    vm.sh("stty -echo; PS1=''")
    return seconds


def main():
    t0 = time.monotonic()
    figures = {}
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        disk3 = os.path.join(tmp, "disk3.img")
        mac = nested.expected_mac(disk1)
        with nested.HostVM("nested-journey", tmp) as host:
            host.wait_ready()
            print(f"host VM ready after {time.monotonic() - t0:.0f}s", flush=True)
            echo_exchange.add_tap(host, NETNS, TAP, HOST_ADDR)
            vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
            net = ["--net", f"tap:{TAP}"]

            def vm(name, *args):
                # ntc-vmm inside the namespace, where the TAP is.
                return nested.NestedVmm(host, name, ["netns", "exec", NETNS, vmm, *args], binary="ip")

            # -- the office VM ------------------------------------------------
            d1, d2, d3 = host.inside(disk1), host.inside(disk2), host.inside(disk3)
            a = vm("journey-a", "run", d1, "--disk", d2, "--mem", MEM, "--cpus", CPUS, *net).start()
            a.wait_ready(300)
            print(f"office VM up after {time.monotonic() - t0:.0f}s", flush=True)
            configure_guest_network(a, mac)
            a.sh(f"ip addr add {GUEST_ADDR}/24 dev eth0 && ip link set eth0 up")
            state = ntcguest.start_state_workloads(a)
            ntcguest.start_in_background(a, f"ntc-echo {PORT}", r"ECHO-LISTENING")
            exchange = echo_exchange.Exchange(host, NETNS, tmp, "travel0", GUEST_ADDR, PORT).start()
            exchange.wait_messages(50, 300, a)

            rc, st = ntcguest.checkpoint(a)
            answered = len(exchange.lines())
            print("checkpoint 1:", st, flush=True)
            check(rc == 0 and st.get("result") == "0", f"checkpoint failed: rc {rc}, {st}", a)
            ntcguest.check_no_reclaim_while_frozen(a, st)
            pause = float(st["pause_ms"]) / 1000
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            exchange.wait_messages(answered + 100, 300, a)
            records = exchange.finish(60, a)
            gaps = echo_exchange.stalls(records)
            largest, at, _ = max(gaps)
            frozen = echo_exchange.freeze_stall(gaps, answered, pause)
            check(frozen is not None, f"no stall of the exchange as long as half the pause {pause:.3f}s", a)
            figures.update(pause_s=pause, freeze_stall_s=frozen[0], largest_stall_s=largest, messages=len(records))
            print(f"pause {pause:.3f}s; TCP exchange: {len(records)} messages, none lost or reordered; "
                  f"stall across the freeze {frozen[0]:.3f}s (before message {frozen[1]}), largest stall "
                  f"{largest:.3f}s (before message {at}); counter at checkpoint {n_ck}", flush=True)
            check(abs(frozen[0] - pause) <= max(0.5, 0.5 * pause),
                  f"stall across the freeze {frozen[0]:.3f}s is not close to the pause {pause:.3f}s", a)
            check(largest <= pause + max(0.5, pause),
                  f"largest stall {largest:.3f}s (before message {at}) is more than twice the pause {pause:.3f}s", a)
            a.expect(r"ECHO-DONE \d+", 30)
            ntcguest.check_no_kernel_warnings(a, "the office VM's kernel warned")
            ntcguest.write_after_checkpoint(a)
            check(a.poweroff(120) == 0, "office VM's poweroff should end ntc-vmm with 0", a)
            check(ntcguest.Area(disk2).valid_checkpoint(), "disk 2 holds no checkpoint")

            # -- travel 1: disk 2 resumes, with disk 3 where disk 2 was ------
            ntcguest.make_disk2(disk2, disk3)
            # Another machine than the office VM (no card) is refused first,
            # and disk 2 stays resumable.
            rc, out = host.sh(f"ip netns exec {NETNS} {vmm} resume {d2} --disk {d3} </dev/null 2>&1", check=False)
            check(rc == 1 and "another machine" in out and "network card" in out,
                  f"a resume without the office VM's card should be refused: {rc} {out}")
            check(ntcguest.Area(disk2).valid_checkpoint(), "a refused resume changed disk 2")
            b = vm("journey-b", "resume", d2, "--disk", d3, *net)
            figures["resume1_s"] = travel(b, "travel 1", n_ck)
            problems = ntcguest.check_resumed_state(b, state)
            check(not problems, "resumed state:\n" + "\n".join(problems), b)
            figures["clock_offset_s"] = ntcguest.check_wall_clock(host, b)
            configure_guest_network(b, mac)
            ntcguest.start_in_background(b, f"ntc-echo {PORT + 1}", r"ECHO-LISTENING")
            again = echo_exchange.Exchange(host, NETNS, tmp, "travel1", GUEST_ADDR, PORT + 1).start()
            again.wait_messages(20, 300, b)
            check(len(again.finish(60, b)) >= 20, "no TCP exchange after the resume", b)
            b.expect(r"ECHO-DONE \d+", 30)

            b.sh(f"date -s @$(( $(date +%s) - {CLOCK_BACK_S} )) >/dev/null")
            rc, st2 = ntcguest.checkpoint(b)
            print("checkpoint 2:", st2, flush=True)
            check(rc == 0 and st2.get("result") == "0", f"checkpoint in the resumed guest failed: {rc} {st2}", b)
            n_ck2 = ntcguest.counter_before(b, st2["time_unix_ns"])
            b.sh("sleep 2")
            check(b.poweroff(120) == 0, "resumed guest's poweroff should end ntc-vmm with 0", b)
            check(ntcguest.Area(disk3).valid_checkpoint(), "disk 3 holds no checkpoint")

            # -- travel 2: disk 3 resumes the second checkpoint ---------------
            c = vm("journey-c", "resume", d3, *net)
            figures["resume2_s"] = travel(c, "travel 2", n_ck2)
            ntcguest.check_wall_clock(host, c)
            step = int(ntcguest.status(c)["resumed_clock_step_ns"]) / 1e9
            check(abs(step - CLOCK_BACK_S) < 10,
                  f"the resume should have set the clock {CLOCK_BACK_S}s forward, not {step:.3f}s", c)
            _, ipc = c.sh("ntc-ipc check")
            check(state["ipc"] in ipc, f"IPC after the second travel: {ipc}", c)
            # The workloads stay: after a checkpoint, a background job that
            # ends takes the console shell and its session with it
            # (Documentation/kmod.md, "Busybox ash on the console").
            check(c.poweroff(120) == 0, "guest resumed from disk 3 should power off with 0", c)
            host.send("poweroff -f")

        for disk in (disk2, disk3):
            problems = ntcguest.e2fsck_disk(disk)
            check(not problems, f"e2fsck on {os.path.basename(disk)}: {problems}")
    print("figures:", " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in figures.items()))
    print(f"PASS in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
