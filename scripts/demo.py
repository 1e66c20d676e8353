"""make demo: the NTC story on this terminal, with timings, on ntc-vmm.

1. build the guest disk (Debian kernel, busybox, ntc.ko, an animation) and
   make disk 2 with ntc-clone;
2. the office VM (ntc-vmm, disk 1 + disk 2) animates a counter; a checkpoint
   is taken from inside while it runs, and the animation does not stop;
3. ntc-info --check proves disk 2 resumable without booting it;
4. the "laptop" (ntc-vmm resume disk2.img) resumes: the animation continues
   from the frame the checkpoint caught.

ntc-vmm needs a /dev/kvm that runs stock kernels; where there is none (or it
is PVM), the same story runs inside a QEMU TCG host VM with nested KVM.
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("lab", "guest"):
    sys.path.insert(0, os.path.join(ROOT, "tests", sub))
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

BIN = os.path.join(ntclab.BUILD, "bin")
MEM, CPUS = "512M", "2"
FRAME = re.compile(r"FRAME +(\d+) \[[^\]]*\] (\d+)\.(\d+)")


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(cmd, check=True):
    shown = [os.path.basename(c) if c.startswith(BIN) else os.path.relpath(c, ROOT)
             if c.startswith(ROOT) else c for c in cmd]
    print("$ " + " ".join(shown), flush=True)
    return subprocess.run(cmd, check=check)


def animate(vm, seconds, label, until=None):
    """Shows the guest's animation for a while (or until `until` is found)."""
    end = time.monotonic() + seconds
    seen = len(vm.text())
    while time.monotonic() < end:
        text = vm.text()
        for m in FRAME.finditer(text, seen):
            print(f"\r  {label}: {m.group(0)[:40]}", end="", flush=True)
        seen = len(text)
        if until and re.search(until, text[vm.cursor:]):
            break
        time.sleep(0.1)
    print(flush=True)


def frames(text):
    return [(int(n), int(s) * 10**9 + int(ms) * 10**6) for n, s, ms in FRAME.findall(text)]


def build_disk1(work):
    say("1. Build the guest disk (Debian kernel, busybox, ntc.ko, the animation)")
    animation = os.path.join(work, "demo-overlay", "usr", "bin")
    os.makedirs(animation, exist_ok=True)
    run(["gcc", "-static", "-O2", "-o", os.path.join(animation, "ntc-animate"),
         os.path.join(ROOT, "scripts", "demo", "ntc-animate.c")])
    return ntcguest.build_disk1(work, extra=("--overlay", os.path.dirname(os.path.dirname(animation))))


def host_run(host, cmd, timeout=300):
    """Runs a host command where the VMs run, showing it and what it prints."""
    print(f"host$ {cmd.replace(BIN + '/', '')}", flush=True)
    rc, out = host.sh(cmd, timeout, check=False)
    print(out, flush=True)
    return rc


def resume_at_frame(host, name, disk, caught, label):
    """Resumes disk on ntc-vmm and shows its animation, which must go on from
    frame `caught`; the seconds until its first frame."""
    vm = nested.NestedVmm(host, name, ["resume", disk])
    t = time.monotonic()
    vm.start()
    vm.expect(r"FRAME +\d+", 300)
    seconds = time.monotonic() - t
    animate(vm, 4, label)
    first = frames(vm.text())[0][0]
    print(f"the {label} resumed at frame {first}: its checkpoint caught frame {caught}", flush=True)
    # The frame being drawn when the snapshot was taken may show on
    # either side of it; anything else is not a resume.
    if not caught <= first <= caught + 2:
        vm.fail(f"demo: the {label} resumed at frame {first}, but its checkpoint caught frame {caught}")
    vm.send("killall ntc-animate; poweroff")
    vm.wait_exit(120)
    return seconds


def main():
    times = {}
    with ntcguest.workdir() as work:
        built = build_disk1(work)
        where = "this machine's /dev/kvm" if ntclab.usable_kvm() else \
            "a QEMU TCG host VM with nested KVM (this machine has no /dev/kvm that runs stock kernels)"
        say(f"2. Make disk 2; the office VM runs on ntc-vmm, on {where}")
        with nested.vmm_host("demo-host", work) as host:
            host.wait_ready()
            # In the host VM the disks live in its RAM: its share of this
            # machine's files is far slower than a real disk.
            scratch = "/tmp/ntc-demo" if isinstance(host, nested.HostVM) else host.inside(work)
            disk1, disk2 = f"{scratch}/disk1.img", f"{scratch}/disk2.img"
            host.sh(f"mkdir -p {scratch} && cp --sparse=always {host.inside(built)} {disk1}", 300)
            t = time.monotonic()
            host_run(host, f"{BIN}/ntc-clone {disk1} {disk2}")
            times["ntc-clone"] = time.monotonic() - t
            office = nested.NestedVmm(host, "demo-office",
                                      ["run", disk1, "--disk", disk2, "--mem", MEM, "--cpus", CPUS])
            t = time.monotonic()
            office.start()
            office.wait_ready(300)
            times["office boot"] = time.monotonic() - t
            office.send("ntc-animate &")
            animate(office, 4, "office")
            print("guest# echo checkpoint > /proc/ntc      (the animation keeps running)", flush=True)
            t = time.monotonic()
            office.send("echo checkpoint > /proc/ntc; echo CHECKPOINT-DONE=$?")
            animate(office, 600, "office", until=r"CHECKPOINT-DONE=\d+")
            m = office.expect(r"CHECKPOINT-DONE=(\d+)", 60)
            times["checkpoint"] = time.monotonic() - t
            if m.group(1) != "0":
                office.fail("the checkpoint failed; see the console log")
            st = ntcguest.status(office)
            animate(office, 3, "office")
            caught = [n for n, ns in frames(office.text()) if ns <= int(st["time_unix_ns"])]
            if not caught:
                office.fail("demo: no frame of the animation was drawn before the checkpoint")
            shown = max(n for n, _ in frames(office.text()))
            print(f"checkpoint #{st['sequence']}: pause {st['pause_ms']} ms, "
                  f"image {st.get('image_pages', '?')} pages; it caught frame {caught[-1]}, "
                  f"the office VM went on to frame {shown}", flush=True)
            office.send("poweroff")
            office.wait_exit(120)

            say("3. ntc-info --check: disk 2 can be resumed (nothing booted)")
            if host_run(host, f"{BIN}/ntc-info --check {disk2}") != 0:
                raise SystemExit("demo: ntc-info --check rejected disk 2")

            say("4. laptop$ ntc-vmm resume disk2.img")
            times["resume"] = resume_at_frame(host, "demo-laptop", disk2, caught[-1], "laptop")
            if isinstance(host, nested.HostVM):
                host.send("poweroff -f")

    say("Timings")
    for k, v in times.items():
        print(f"  {k:12s} {v:7.2f} s")
    print(f"  {'pause':12s} {float(st['pause_ms']) / 1000:7.2f} s  (the only time the office VM stood still)")


if __name__ == "__main__":
    main()
