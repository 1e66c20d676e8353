#!/usr/bin/env python3
"""The whole NTC path on ntc-vmm (level 3): checkpoint with ntc.ko, resume.

Inside the nested-KVM host VM, ntc-vmm runs disk 1 with disk 2 (made by
ntc-clone); a counter runs, `echo checkpoint > /proc/ntc` writes the
checkpoint onto disk 2 while the guest goes on, and the guest powers off.
`ntc-vmm resume disk2` then takes RAM and CPUs from the checkpoint record,
loads the image into guest RAM itself, with a new sparse second disk, and
the counter continues from its checkpoint value, with no kernel warning,
the resumed kernel reseeds its random-number generator for the new VM
generation ID, and a uevent tells user space that it was resumed, from which
checkpoint, as which instance (`--name`).  The guest runs before its image
is all in RAM, and the image is loaded and checked behind it.
Disk 2 is clean afterwards and no longer holds a checkpoint.  A copy of it
with one byte of the image flipped is refused by `resume --load-first`
before the guest runs, and stops a plain resume once it is all read, with the copy unchanged both
times.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "guest"))
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM = "512M"
CPUS = "2"


check = ntclab.check


def check_damaged_image_refused(host, disk2, tmp):
    """A copy of disk 2 with one byte of its image flipped: resume refuses it
    before the guest runs with --load-first; loaded while the guest runs, ntc-vmm stops
    once the stream's CRC disagrees, having held back every write.  Either
    way the copy is left as it was, checkpoint and all."""
    damaged = os.path.join(tmp, "damaged.img")
    subprocess.run(["cp", "--sparse=always", disk2, damaged], check=True, timeout=120)
    ntcguest.damage_image_data(damaged)
    digest = ntcguest.sha256(damaged)
    for name, options, says in (("damaged", ["--load-first"], "is damaged"), ("damaged-lazy", [], "disk 2 was not written")):
        v = nested.NestedVmm(host, name, ["resume", host.inside(damaged), *options])
        v.start()
        check(v.wait_exit(120) == 1, f"resume {options} of a damaged image should end with status 1", v)
        check("image CRC mismatch" in v.stderr() and says in v.stderr(),
              f"resume {options} of a damaged image should say so", v)
        check(ntcguest.sha256(damaged) == digest, f"resume {options} changed the damaged disk")
        check(not os.path.exists(damaged + ".loading"), f"resume {options} left its loading overlay")
        if os.path.exists(damaged + ".next"):
            os.unlink(damaged + ".next")
        print(f"a damaged image: resume {options} ended with 1, the disk unchanged", flush=True)
    os.unlink(damaged)


def main():
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        with nested.HostVM("nested-vmm-checkpoint", tmp) as host:
            host.wait_ready()
            d1, d2 = host.inside(disk1), host.inside(disk2)
            a = nested.NestedVmm(host, "ckpt-a", ["run", d1, "--disk", d2, "--mem", MEM, "--cpus", CPUS,
                                                  "--name", "office"])
            a.start()
            a.wait_ready(300)
            # The VM generation ID device (vm_generation.h) has its driver.
            _, bound = a.sh("ls /sys/bus/acpi/drivers/vmgenid/", check=False)
            check("VMGENCTR:00" in bound, f"the vmgenid driver should bind to VMGENCTR:00: {bound!r}", a)
            check("instance: office" in a.sh("cat /proc/ntc")[1], "ntc.ko should report the instance name", a)
            # A listener for the module's uevents, which the resume must wake.
            a.sh("uevent sh -c '[ \"$NTC_EVENT\" = resumed ] && env > /tmp/ntc-resumed' >/dev/null 2>&1 & :")
            a.sh("ntc-counter /data/counter.log 50 & :")
            a.sh("sleep 1")
            rc, st = ntcguest.checkpoint(a)
            print("checkpoint:", st, flush=True)
            check(rc == 0 and st.get("result") == "0", f"checkpoint failed: {rc} {st}", a)
            logged = ntcguest.check_pause_as_logged(a, st)
            print(f"pause {st['pause_ms']} ms, {logged:.3f} s between freeze and thaw in the kernel's log", flush=True)
            n_ck = ntcguest.counter_before(a, st["time_unix_ns"])
            a.sh("sleep 2")
            a.sh("killall ntc-counter; sync", check=False)
            check(a.poweroff(120) == 0, "guest A's poweroff should end ntc-vmm with 0", a)
            check(ntcguest.Area(disk2).valid_checkpoint(), "disk 2 holds no checkpoint")
            check_damaged_image_refused(host, disk2, tmp)

            b = nested.NestedVmm(host, "ckpt-b", ["resume", d2, "--name", "instance-b"])
            t1 = time.monotonic()
            b.start()
            n_b = ntcguest.expect_counter_resumed(b, n_ck)
            print(f"resumed under ntc-vmm in {time.monotonic() - t1:.1f}s; counter {n_ck} -> {n_b}", flush=True)
            check(os.path.exists(disk2 + ".next"), "resume should create disk2.img.next as the second disk")
            # The guest ran before its image was in RAM: the pages came on
            # first touch and from the loader, and the stream's CRC matched.
            check("resuming while it loads" in b.stderr(), "the resume should not wait for the whole image", b)
            deadline = time.monotonic() + 60
            while "image loaded in" not in b.stderr() and time.monotonic() < deadline:
                time.sleep(0.5)
            loaded = [line for line in b.stderr().splitlines() if "image loaded in" in line]
            check(loaded, "the image loader never finished", b)
            print(loaded[0], flush=True)
            ntcguest.check_no_kernel_warnings(b, "the resumed kernel logged")
            # A new VM generation ID, announced through GPE 0: the resumed
            # kernel reseeds its random-number generator (the notification
            # is handled by a kernel worker, hence a few tries).
            for _ in range(10):
                _, log = b.sh("dmesg | grep -i -e 'virtual machine fork' -e gpe -e vmgenid", check=False)
                if "crng reseeded due to virtual machine fork" in log:
                    break
                b.sh("sleep 1")
            check("crng reseeded due to virtual machine fork" in log,
                  f"the resumed kernel should reseed its RNG for the new VM generation ID: {log!r}", b)
            print("resumed kernel reseeded its RNG for the new VM generation ID", flush=True)
            # User space learns of the resume, as which checkpoint and instance, from a uevent.
            for _ in range(10):
                _, env = b.sh("cat /tmp/ntc-resumed 2>/dev/null", check=False)
                if "NTC_INSTANCE" in env:
                    break
                b.sh("sleep 1")
            check("NTC_INSTANCE=instance-b" in env and f"NTC_CHECKPOINT={st['sequence']}" in env
                  and "SUBSYSTEM=module" in env, f"the resume's uevent: {env!r}", b)
            check("instance: instance-b" in b.sh("cat /proc/ntc")[1], "/proc/ntc should name the new instance", b)
            print("resume announced by a uevent with the instance name", flush=True)
            b.sh("killall ntc-counter; sleep 0.5", check=False)
            check(b.poweroff(120) == 0, "resumed guest's poweroff should end ntc-vmm with 0", b)
            area = ntcguest.Area(disk2)
            check(area.kind == "swap", f"a resumed checkpoint's area should be swap again, not {area}")
            check(not os.path.exists(disk2 + ".loading"),
                  "the overlay that took the writes while the image loaded should be gone")
            host.send("poweroff -f")
        problems = ntcguest.e2fsck_disk(disk2)
        check(not problems, f"e2fsck on disk 2: {problems}")
    print(f"PASS in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
