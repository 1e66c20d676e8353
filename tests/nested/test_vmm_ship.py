#!/usr/bin/env python3
"""Checkpoints shipped to a disaster-recovery copy as they are taken (level 3, issue 14).

The office VM runs on ntc-vmm with a counter and takes three checkpoints a
few seconds apart.  After each, while the office goes on, disk 2 is shipped
through a pipe, `ntc-send disk2 [--since G] | ntc-receive copy --keep 2`,
with G what `ntc-receive --status` says the copy holds: the first send is
full, the next two carry only what their checkpoint wrote (the blocks
ntc.ko counted, the change history and page 0, not the disk); their images
are incremental (most pages left in the slots of the image before).  After each
the copy equals disk 2 byte for byte.  Then the office powers off, the
copy resumes on another ntc-vmm with the counter going on from checkpoint
3, and the copy the receiver kept of generation 2 (an image that lists
slots generation 1 wrote) resumes with the counter going on from
checkpoint 2.
"""
import json
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

MEM = "256M"
CPUS = "1"
CHECKPOINTS = 3
check = ntclab.check


def tool(name):
    return os.path.join(nested.BUILD, "bin", name)


def copy_generation(copy):
    r = subprocess.run([tool("ntc-receive"), "--status", "--json", copy], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"ntc-receive --status {copy}: {r.returncode} {r.stderr}")
    return json.loads(r.stdout)["generation"]


def ship(disk2, copy):
    """ntc-send | ntc-receive, from what the copy holds; the sender's summary."""
    since = copy_generation(copy)
    send_args = [tool("ntc-send"), disk2, "--json", "--quiet"] + (["--since", str(since)] if since else [])
    send = subprocess.Popen(send_args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receive = subprocess.run([tool("ntc-receive"), copy, "--keep", "2", "--json", "--quiet"], stdin=send.stdout,
                             capture_output=True, text=True, timeout=300)
    send.stdout.close()
    _, send_err = send.communicate(timeout=60)
    check(send.returncode == 0, f"ntc-send {since}: {send.returncode} {send_err.decode()}")
    check(receive.returncode == 0, f"ntc-receive: {receive.returncode} {receive.stderr}")
    summary = json.loads(send_err)
    print(f"shipped from generation {since}: {summary}", flush=True)
    return since, summary


def same_bytes(a, b):
    return subprocess.run(["cmp", "-s", a, b], timeout=300).returncode == 0


def resume_copy(host, name, disk, n_ck):
    """Resumes disk on ntc-vmm; the counter must go on from n_ck."""
    vm = nested.NestedVmm(host, name, ["resume", host.inside(disk)])
    vm.start()
    n = ntcguest.expect_counter_resumed(vm, n_ck)
    print(f"{name}: counter {n_ck} -> {n}", flush=True)
    vm.sh("killall ntc-counter; sleep 0.5", check=False)
    check(vm.poweroff(120) == 0, f"{name}'s poweroff should end ntc-vmm with 0", vm)


def main():
    t0 = time.monotonic()
    with ntcguest.workdir() as tmp:
        disk1 = ntcguest.build_disk1(tmp)
        disk2 = ntcguest.make_disk2(disk1, os.path.join(tmp, "disk2.img"))
        copy = os.path.join(tmp, "dr-copy.img")
        disk_blocks = os.path.getsize(disk2) // 4096
        with nested.HostVM("nested-vmm-ship", tmp) as host:
            host.wait_ready()
            office = nested.NestedVmm(host, "office", ["run", host.inside(disk1), "--disk", host.inside(disk2),
                                                       "--mem", MEM, "--cpus", CPUS])
            office.start()
            office.wait_ready(300)
            office.sh("ntc-counter /data/counter.log 50 & :")
            counters = {}
            for generation in range(1, CHECKPOINTS + 1):
                office.sh("sleep 2")
                rc, st = ntcguest.checkpoint(office)
                check(rc == 0 and st.get("result") == "0" and st.get("generation") == str(generation),
                      f"checkpoint {generation} failed: {rc} {st}", office)
                counters[generation] = ntcguest.counter_before(office, st["time_unix_ns"])
                since, summary = ship(disk2, copy)
                check(since == generation - 1, f"the copy was at {since} before generation {generation}")
                check(same_bytes(disk2, copy), f"the copy differs from disk 2 after generation {generation}")
                if generation > 1:
                    # An incremental image: the kept copy resumed below lists slots generation 1 wrote.
                    pages_written, pages_reused = int(st["image_pages_written"]), int(st["image_pages_reused"])
                    check(pages_reused > pages_written, f"generation {generation} wrote {pages_written} image "
                          f"pages and left {pages_reused} in place: not an incremental image")
                    # What the checkpoint wrote, its history pages and page 0: not the disk.
                    written = int(st["disk2_blocks_written"])
                    check(written < summary["blocks"] <= written + 64 and summary["blocks"] < disk_blocks // 2,
                          f"generation {generation} sent {summary['blocks']} blocks; the checkpoint wrote "
                          f"{written} of {disk_blocks}")
            kept = copy + f".gen-{CHECKPOINTS - 1}"
            check(os.path.exists(kept), f"ntc-receive --keep 2 kept no {kept}")
            office.sh("killall ntc-counter; sync", check=False)
            check(office.poweroff(120) == 0, "the office's poweroff should end ntc-vmm with 0", office)

            resume_copy(host, "dr-latest", copy, counters[CHECKPOINTS])
            resume_copy(host, "dr-kept", kept, counters[CHECKPOINTS - 1])
            host.send("poweroff -f")
        problems = ntcguest.e2fsck_disk(copy)
        check(not problems, f"e2fsck on the resumed copy: {problems}")
    print(f"PASS in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
