"""make demo: the NTC story on this machine's terminal, with timings.

1. build a guest disk (Debian kernel, busybox, ntc.ko, an animation);
2. ntc-clone it into disk 2 and show what ntc-info says;
3. the office guest (disk 1 + disk 2) runs the animation; a checkpoint is
   taken from inside while it runs, and it does not stop;
4. ntc-info --check proves disk 2 resumable without booting it;
5. the "laptop" guest boots disk 2 alone and resumes: the animation continues
   from the frame the checkpoint caught.

Both guests run on the same machine model: QEMU with identical options (TCG
here, since this machine has no usable KVM).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import ntclab  # noqa: E402

BIN = os.path.join(ntclab.BUILD, "bin")
MEM_MIB, CPUS = 256, 2


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(cmd, **kw):
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd),
          flush=True)
    return subprocess.run(cmd, check=kw.pop("check", True), **kw)


def frames(text):
    return [int(n) for n in re.findall(r"FRAME +(\d+)", text)]


def show_frames(g, start, seconds, label):
    """Copies the animation from the guest console to the terminal for a while."""
    end = time.monotonic() + seconds
    shown = start
    while time.monotonic() < end:
        text = g.text(shown)
        for line in re.findall(r"FRAME [^\r\n]*", text):
            print(f"\r  {label} {line}", end="", flush=True)
        shown += len(text.encode())
        time.sleep(0.1)
    print()
    return shown


def main():
    krel = ntclab.guest_kernel_release()
    work = tempfile.mkdtemp(prefix="demo-", dir=ntclab.BUILD)
    disk1, disk2 = os.path.join(work, "disk1.img"), os.path.join(work, "disk2.img")
    times = {}

    say(f"1. Build the guest disk (Debian kernel {krel}, busybox, ntc.ko)")
    overlay = os.path.join(work, "overlay", "usr", "bin")
    os.makedirs(overlay)
    run(["gcc", "-static", "-O2", "-o", os.path.join(overlay, "ntc-animate"),
         os.path.join(ROOT, "scripts", "demo", "ntc-animate.c")])
    run([os.path.join(ROOT, "scripts", "build-guest-disk.sh"), disk1, "--swap-mib", "256",
         "--module", os.path.join(ROOT, "kmod", "ntc.ko"), "--overlay", os.path.join(work, "overlay")])

    say("2. host$ ntc-clone disk1.img disk2.img")
    t = time.monotonic()
    run([os.path.join(BIN, "ntc-clone"), disk1, disk2])
    times["clone"] = time.monotonic() - t
    run([os.path.join(BIN, "ntc-info"), disk2], check=False)

    say(f"3. The office guest runs the animation (QEMU {ntclab.accel().upper()}, {MEM_MIB} MiB, {CPUS} CPUs)")
    with ntclab.guest_for_disk("demo-office", disk1, disks=[disk1, disk2], mem_mib=MEM_MIB,
                               cpus=CPUS) as a:
        t = time.monotonic()
        a.wait_ready()
        times["boot"] = time.monotonic() - t
        a.sh("ntc-animate & :")
        pos = show_frames(a, a.cursor, 3, "office")
        print("guest# echo checkpoint > /proc/ntc        (the animation keeps running)")
        a.send("echo checkpoint > /proc/ntc; echo CHECKPOINT-DONE $?")
        t = time.monotonic()
        pos = show_frames(a, pos, 1.0, "office")
        a.expect(r"CHECKPOINT-DONE (\d+)", 600)
        times["checkpoint"] = time.monotonic() - t
        rc, status = a.sh("cat /proc/ntc")
        st = dict(re.findall(r"^(\w+): (.*?)\s*$", status, re.M))
        if st.get("result") != "0":
            a.fail(f"the checkpoint failed: {status}")
        print(status)
        pos = show_frames(a, pos, 2, "office")
        ck_ns = int(st["time_unix_ns"])
        caught = [int(n) for n, s, ms in re.findall(r"FRAME +(\d+) \[[^\]]*\] (\d+)\.(\d+)", a.text())
                  if int(s) * 10**9 + int(ms) * 10**6 <= ck_ns]
        last_office = max(frames(a.text()))
        print(f"office guest: the checkpoint caught frame {caught[-1] if caught else '?'}; "
              f"it ran on to frame {last_office}, then powers off")
        a.poweroff()

    say("4. host$ ntc-info --check disk2.img")
    run([os.path.join(BIN, "ntc-info"), "--check", disk2])

    say("5. laptop$ resume disk 2 (same machine model; disk 2 is now the first disk)")
    spare = os.path.join(work, "spare.img")
    with open(spare, "wb") as f:
        f.truncate(os.path.getsize(disk2))
    with ntclab.guest_for_disk("demo-laptop", disk1, disks=[disk2, spare], mem_mib=MEM_MIB,
                               cpus=CPUS) as b:
        t = time.monotonic()
        b.expect(r"FRAME +\d+", 300)
        times["resume"] = time.monotonic() - t
        show_frames(b, b.cursor - 200 if b.cursor > 200 else 0, 3, "laptop")
        first = frames(b.text())[0]
        print(f"laptop guest: resumed at frame {first} "
              f"(the office guest had shown up to {last_office})")
        b.send("")
        b.sh("kill %1 2>/dev/null; killall ntc-animate; true", 30)
        b.poweroff()

    say("Timings")
    for k in ("clone", "boot", "checkpoint", "resume"):
        print(f"  {k:12s} {times[k]:6.2f} s")
    print(f"  pause        {float(st['pause_ms']):6.1f} ms (the office guest's only stop)")
    print(f"\nThe disks are in {os.path.relpath(work, ROOT)}/")


if __name__ == "__main__":
    main()
