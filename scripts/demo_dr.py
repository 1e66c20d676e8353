"""make demo-dr: disaster recovery with NTC, on this terminal, on ntc-vmm.

1. build the guest disk and make disk 2 with ntc-clone, as make demo does;
2. the office VM animates a counter and takes a checkpoint every half minute
   from inside while it works (a shell loop stands in for ntc-dkms's
   ntc-checkpoint.timer);
3. meanwhile on the host, scripts/ntc-ship-loop.sh ships each new
   checkpoint to the "DR site" copy (ntc-send --since | ntc-receive, the
   copy's own status saying what to send): its generation follows the
   office's, each transfer carrying only what that checkpoint wrote;
4. the office is lost; the DR site resumes its latest copy on ntc-vmm, and
   the animation continues from the frame that checkpoint caught.

Like make demo, it runs inside a QEMU TCG host VM with nested KVM where
this machine has no /dev/kvm that runs stock kernels.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import BIN, ROOT, animate, build_disk1, frames, host_run, resume_at_frame, say  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM, CPUS = "512M", "2"
CHECKPOINT_EVERY_S = 30
SHIP_EVERY_S = 10
GENERATIONS = 3
CHECKPOINT_TAKEN = re.compile(r"CHECKPOINT-TAKEN (\d+) ([^\r\n]*)")


def json_of(host, cmd):
    rc, out = host.sh(cmd, 120, check=False)
    if rc != 0:
        raise SystemExit(f"demo-dr: {cmd} failed ({rc}): {out}")
    return json.loads(out[out.index("{"):])


def main():
    with ntcguest.workdir() as work:
        built = build_disk1(work)
        say("2. Make disk 2; the office VM runs on ntc-vmm and checkpoints itself every "
            f"{CHECKPOINT_EVERY_S} s while it works")
        with nested.vmm_host("demo-dr-host", work) as host:
            host.wait_ready()
            scratch = "/tmp/ntc-demo" if isinstance(host, nested.HostVM) else host.inside(work)
            disk1, disk2, dr = f"{scratch}/disk1.img", f"{scratch}/disk2.img", f"{scratch}/dr-site/disk2.img"
            host.sh(f"mkdir -p {scratch}/dr-site && cp --sparse=always {host.inside(built)} {disk1}", 300)
            host_run(host, f"{BIN}/ntc-clone {disk1} {disk2}")
            office = nested.NestedVmm(host, "demo-dr-office",
                                      ["run", disk1, "--disk", disk2, "--mem", MEM, "--cpus", CPUS])
            office.start()
            office.wait_ready(300)
            office.send("ntc-animate &")
            print(f"guest# while sleep {CHECKPOINT_EVERY_S}; do echo checkpoint > /proc/ntc; done &", flush=True)
            # The loop is in every checkpoint's image: in the machine resumed
            # at the DR site, which has no disk 2 of its own, it stops.
            office.sh(f"(while sleep {CHECKPOINT_EVERY_S}; do grep -q '^state: resumed' /proc/ntc && break; "
                      "echo checkpoint > /proc/ntc; "
                      "echo CHECKPOINT-TAKEN $? $(grep -E '^(result|pause_ms|generation):' /proc/ntc); done) "
                      "2>/dev/null & echo $! > /tmp/checkpoint-loop")

            say(f"3. The DR site follows: scripts/ntc-ship-loop.sh every {SHIP_EVERY_S} s")
            # The host VM sees this machine's files where they are, as it sees BIN.
            loop = f"{ROOT}/scripts/ntc-ship-loop.sh --keep 2 {disk2} {dr} {SHIP_EVERY_S}"
            print(f"host$ {loop.replace(ROOT + '/', '')} &", flush=True)
            host.sh(f"NTC_BIN={BIN} {loop} > {scratch}/ship.log 2>&1 & echo $! > {scratch}/ship-loop.pid")
            shown, taken, deadline = 0, 0, time.monotonic() + 600
            status = {"generation": 0}
            while status["generation"] < GENERATIONS:
                if time.monotonic() > deadline:
                    office.fail(f"demo-dr: the DR site did not reach generation {GENERATIONS} in 10 minutes")
                animate(office, 5, "office")
                checkpoints = CHECKPOINT_TAKEN.findall(office.text())
                for status_code, report in checkpoints[taken:]:
                    print(f"  office: checkpoint (status {status_code}) {report}", flush=True)
                taken = len(checkpoints)
                _, log = host.sh(f"cat {scratch}/ship.log", check=False)
                lines = [line for line in log.splitlines() if line.startswith(("ntc-send", "ntc-receive"))]
                for line in lines[shown:]:
                    print(f"  dr-site: {line.replace(scratch + '/', '')}", flush=True)
                shown = len(lines)
                status = json_of(host, f"{BIN}/ntc-receive --status --json {dr}")

            say("4. The office is lost; the DR site resumes its latest checkpoint")
            # The last checkpoint the office takes is shipped before it goes,
            # so that the story ends on a known frame.
            office.sh("kill $(cat /tmp/checkpoint-loop); while grep -q 'state: checkpointing' /proc/ntc; "
                      "do sleep 1; done", 600)
            latest = json_of(host, f"{BIN}/ntc-info --json {disk2}")
            generation = [p["area"]["record"]["generation"] for p in latest["partitions"] if "area" in p][0]
            while status["generation"] < generation:
                time.sleep(SHIP_EVERY_S)
                status = json_of(host, f"{BIN}/ntc-receive --status --json {dr}")
            host.sh(f"kill $(cat {scratch}/ship-loop.pid)")
            caught = [n for n, ns in frames(office.text()) if ns <= status["time_unix_ns"]]
            office.send("poweroff -f")
            office.wait_exit(120)
            print(f"the DR site holds generation {status['generation']}, which caught frame {caught[-1]}",
                  flush=True)
            host_run(host, f"{BIN}/ntc-receive --status {dr}")

            print(f"dr-site$ ntc-vmm resume {dr.replace(scratch + '/', '')}", flush=True)
            resume_at_frame(host, "demo-dr-site", dr, caught[-1], "DR site")
            if isinstance(host, nested.HostVM):
                host.send("poweroff -f")


if __name__ == "__main__":
    main()
