#!/usr/bin/env python3
"""Level 3: the Debian 12 guest (Documentation/disk-layout.md, "The Debian
guest"; the disk of guest.debian) on ntc-vmm under nested KVM.

`ntc-vmm run disk1 --disk disk2 --net tap:... --name debian-office`, with no
--kernel, --initrd or --append, boots GRUB's default entry from the disk's
/boot/grub/grub.cfg (root by UUID, as Debian installs it) and says so on
stderr; /proc/ntc names the instance.  A counter runs as a systemd
service, and a resume hook of ntc-dkms (/etc/ntc/resume.d/50-record)
appends its NTC_INSTANCE and NTC_CHECKPOINT to /run/ntc-resume-hook; the
office VM never runs it, before the checkpoint or after.  From the host
VM, an ssh session (key login, into sshd of the guest) runs a command
stream: a line every 0.2 s.  The guest takes a checkpoint; the ssh session
is still connected afterwards and its stream goes on, systemd is running
with no failed unit.  Then ntc-dkms's ntc-checkpoint.timer, enabled with
an interval in a drop-in, takes checkpoint 2 (disk 1's blocks written since
checkpoint 1) and logs its report to the journal.  The office VM powers
off; `ntc-vmm resume disk2 --disk disk3 --name debian-b` (disk 3 an
ntc-clone of disk 2) resumes checkpoint 2, taken while the timer's
service ran, with the same TAP, and a new ssh session logs in to it:
the same boot (boot_id), /proc/ntc says resumed, the counter service's
same process counting on, the hook run once by ntc-resumed.service
(started by udev on the module's resume uevent), which succeeded:
/run/ntc-resume-hook holds "debian-b 2" alone; the card has debian-b's
MAC, which ntc.ko gave it (the ssh login came through it); systemd
running with no failed unit, journald writing, the clock right; no
kernel warning.  Disk 2's root is clean after the resumed guest powers off.
A resumed guest's next checkpoint (onto a fresh clone: the full compare)
is nested.journey's; here it took five minutes of CI's time.

The disks live in the host VM's RAM: over the 9p share, the first
checkpoint's full compare of the two 4.5 GB disks took 578 s; in RAM about
a minute on 2026-12-03, three or four since (Documentation/testing.md).
"""
import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import debian_guest  # noqa: E402
import echo_exchange  # noqa: E402
import nested  # noqa: E402
import ntcguest  # noqa: E402
import ntclab  # noqa: E402

MEM = "1G"
CPUS = 2
NETNS, TAP = "ntcdebian", "ntcdeb0"
HOST_ADDR, GUEST_ADDR = "10.0.2.1", debian_guest.ADDRESS
RAM_DIR = "/tmp/ntc-disks"  # in the host VM: a tmpfs
TICK_SECONDS = 0.2
# Seconds a resumed clock may be off the host VM's: ntc.ko steps it when
# more than 1 s off, and `date +%s` truncates.
CLOCK_SLACK = 2
TIMER_DROPIN_DIR = "/etc/systemd/system/ntc-checkpoint.timer.d"
OFFICE_NAME, RESUMED_NAME = "debian-office", "debian-b"
# ntc-dkms runs the hooks in /etc/ntc/resume.d after a resume; this one
# records what it was given.  /run is in the memory image: what the office
# VM wrote there before the checkpoint, the resumed VM finds.
HOOK, HOOK_RECORD = "/etc/ntc/resume.d/50-record", "/run/ntc-resume-hook"
INSTALL_HOOK = (f"mkdir -p {os.path.dirname(HOOK)} && printf '#!/bin/sh\\necho \"$NTC_INSTANCE $NTC_CHECKPOINT\" "
                f">>{HOOK_RECORD}\\n' >{HOOK} && chmod 0755 {HOOK}")
check = ntclab.check

# The state every check below reads, on one line.
STATE = ("echo STATE boot=$(cat /proc/sys/kernel/random/boot_id) counter=$(cat /run/ntc-counter) "
         "pid=$(systemctl show -P MainPID ntc-counter) ntc=$(sed -n 's/^state: //p' /proc/ntc) "
         "root=$(findmnt -no SOURCE /)")


def parse_state(out):
    m = re.search(r"STATE (.*)", out)
    return dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}


class Ssh:
    """ssh from the host VM's network namespace into the guest, as root with
    the test's key.  Once `guest` is set (the VM ssh reached), a session that
    gets no answer fails with that VM's evidence of a hang: each session is
    bounded with timeout(1), so that the host VM's shell stays free for it."""

    def __init__(self, host, key):
        self.host = host
        self.guest = None
        self.base = (f"ip netns exec {NETNS} ssh -i {key} -o BatchMode=yes -o StrictHostKeyChecking=no "
                     f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 "
                     f"-o ServerAliveInterval=5 root@{GUEST_ADDR}")

    def bounded(self, cmd, timeout):
        """The shell words of an ssh session running cmd, killed after timeout seconds."""
        return f"timeout -k 5 {timeout} {self.base} {shlex.quote(cmd)}"

    def check_answered(self, rc, cmd, timeout):
        if rc in (124, 137) and self.guest is not None:
            self.guest.fail(f"no answer over ssh within {timeout}s to: {cmd}", hung=True)

    def sh(self, cmd, timeout=120, check=True):
        """(status, output) of cmd in the guest, as ConsoleShell.sh."""
        rc, out = self.host.sh(self.bounded(cmd, timeout), timeout + 30, check=False)
        self.check_answered(rc, cmd, timeout)
        if check and rc != 0:
            self.host.fail(f"over ssh, failed with {rc}: {cmd}\n{out[-2000:]}")
        return rc, out

    def start_stream(self, out_file):
        """The command stream across the checkpoint: a line with the guest's
        clock every TICK_SECONDS, written to out_file; SSH-END and ssh's
        status when the session ends."""
        cmd = f"'while :; do echo TICK $(date +%s.%N); sleep {TICK_SECONDS}; done'"
        self.host.sh(f"({self.base} {cmd} >{out_file} 2>&1; echo SSH-END $? >>{out_file}) & :")


def ticks(path):
    """The stream's clock readings and its whole text (none until the host
    VM's shell has started it)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    return [float(t) for t in re.findall(r"^TICK (\d+\.\d+)$", text, re.M)], text


def wait_unit_ran(ssh, unit, ran, timeout, interval):
    """Asks the guest every `interval` seconds until `ran` (a shell command
    that prints 0 until the unit has done its work) prints something else
    and the unit is no longer activating, or `timeout` passed.  Returns
    (ran's output, ActiveState, Result) of the last answer, None if none
    came, and that answer's text."""
    deadline = time.monotonic() + timeout
    while True:
        _, answer = ssh.sh(f"echo UNIT-POLL $({ran}) $(systemctl show -P ActiveState {unit}) "
                           f"$(systemctl show -P Result {unit})", check=False)
        # Its own line, apart from what the host VM's shell adds (a job's
        # end).  No line: ssh got no answer (it exits 255, silent under
        # LogLevel=ERROR), e.g. while a checkpoint's pause outlasted its
        # ServerAliveInterval probes; ask again.
        poll = re.search(r"^UNIT-POLL (\S+) (\S+) (\S+)$", answer, re.M)
        if poll and poll[1] != "0" and poll[2] != "activating" or time.monotonic() > deadline:
            return poll and poll.groups(), answer
        time.sleep(interval)


def timer_checkpoint(ssh, vm):
    """ntc-dkms's ntc-checkpoint.timer, enabled as README.Debian says with
    an interval in a drop-in, takes a checkpoint at once (the machine has
    been up longer than its OnBootSec=) and its service logs /proc/ntc's
    report to the journal.  A resume of this checkpoint finishes the
    service in the resumed machine."""
    ssh.sh(f"mkdir -p {TIMER_DROPIN_DIR} && printf '[Timer]\\nOnUnitActiveSec=\\nOnBootSec=1min\\n"
           f"OnUnitActiveSec=1h\\n' >{TIMER_DROPIN_DIR}/interval.conf && systemctl daemon-reload && "
           "systemctl enable --now ntc-checkpoint.timer")
    reports = "journalctl -u ntc-checkpoint.service -o cat --no-pager | grep -c '^result: '"
    state, answer = wait_unit_ran(ssh, "ntc-checkpoint.service", reports, 900, 10)
    _, journal = ssh.sh("journalctl -u ntc-checkpoint.service -o cat --no-pager", check=False)
    check(state and state[2] == "success" and re.search(r"^result: 0$", journal, re.M)
          and re.search(r"^sequence: 2$", journal, re.M),
          f"the timer's checkpoint: reports, ActiveState, Result: {state}, "
          f"last answer {answer[-300:]!r}, journal:\n{journal[-3000:]}", vm)
    total = re.search(r"^total_ms: (\d+)$", journal, re.M)
    print(f"office VM: ntc-checkpoint.timer took checkpoint 2 in {int(total[1]) / 1000 if total else '?'}s, "
          "its report in the journal", flush=True)


def no_hook_run(vm, when):
    """The office VM has not run the resume hook."""
    _, out = vm.sh(f"test -e {HOOK_RECORD} && cat {HOOK_RECORD} || echo NO-RECORD", check=False)
    check(out.strip() == "NO-RECORD", f"the office VM ran the resume hook {when}: {HOOK_RECORD} holds {out!r}", vm)


def resume_hook(ssh, vm):
    """In the resumed VM, udev has started ntc-resumed.service on the
    module's uevent, and it ran the hook once, with the new instance name
    and the checkpoint resumed, and succeeded."""
    state, answer = wait_unit_ran(ssh, "ntc-resumed.service", f"test -e {HOOK_RECORD} && echo 1 || echo 0", 60, 1)
    _, record = ssh.sh(f"cat {HOOK_RECORD}", check=False)
    lines = record.strip().splitlines()
    _, journal = ssh.sh("journalctl -u ntc-resumed.service -o cat --no-pager", check=False)
    check(lines == [f"{RESUMED_NAME} 2"] and state and state[2] == "success",
          f"the resume hook: want {HOOK_RECORD} to hold '{RESUMED_NAME} 2' alone and ntc-resumed.service "
          f"to succeed; record {lines}, record made, ActiveState, Result: {state}, last answer {answer[-300:]!r}; "
          f"its journal:\n{journal[-3000:]}", vm)
    print(f"resumed VM: ntc-resumed.service ran {HOOK}: '{lines[0]}'", flush=True)


def main():
    t_start = time.monotonic()
    image = debian_guest.debian_disk()
    parts = ntclab.partitions(image)
    with ntcguest.workdir() as work:
        office_then_resume(image, parts, work)
    print(f"nested Debian test: passed in {time.monotonic() - t_start:.0f}s")


def office_then_resume(image, parts, work):
    key = os.path.join(work, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True, timeout=60)
    packed = debian_guest.pack(image, work)
    disk1, disk2, disk3 = f"{RAM_DIR}/disk1.img", f"{RAM_DIR}/disk2.img", f"{RAM_DIR}/disk3.img"
    vmm = os.path.join(nested.BUILD, "bin", "ntc-vmm")
    clone = os.path.join(nested.BUILD, "bin", "ntc-clone")

    with nested.HostVM("nested-debian", work, mem_mib=6144) as host:
        host.wait_ready()
        debian_guest.unpack(host, packed, disk1)
        host.sh(f"{clone} {disk1} {disk2} >/dev/null", 900)
        echo_exchange.add_tap(host, NETNS, TAP, HOST_ADDR)
        ssh = Ssh(host, host.inside(key))
        with open(key + ".pub") as f:
            pub = f.read().strip()

        def vm(name, args):
            return nested.NestedVmm(host, name, ["netns", "exec", NETNS, vmm, *args, "--net", f"tap:{TAP}"],
                                    binary="ip")

        a = vm("debian-office", ["run", disk1, "--disk", disk2, "--mem", MEM, "--cpus", str(CPUS),
                                 "--name", OFFICE_NAME]).start()
        t_a = time.monotonic()
        debian_guest.wait_login(a, 600)
        print(f"office VM: login in {time.monotonic() - t_a:.0f}s; {a.stderr().strip()}", flush=True)
        # The disk's GRUB line has no console= (as the installer writes it):
        # the login above came through the console ntc-vmm added.
        check(re.search(r"booting /boot/vmlinuz-\S+, named by the entry '[^']+' of /boot/grub/grub.cfg, "
                        r".*console=ttyS0 added", a.stderr()),
              f"ntc-vmm should boot GRUB's default entry and add its console: {a.stderr()}", a)
        _, cmdline = a.sh("cat /proc/cmdline")
        check(re.search(r"\broot=UUID=", cmdline), f"the guest's root should be named by UUID: {cmdline}", a)
        state, failed = debian_guest.system_state(a)
        check(state == "running" and not failed, f"office VM: systemd {state}, failed: {failed}", a)
        a.sh(f"mkdir -p -m 700 /root/.ssh && echo '{pub}' >/root/.ssh/authorized_keys")
        ssh.guest = a
        a.sh(debian_guest.COUNTER)
        a.sh(INSTALL_HOOK)
        _, instance = a.sh("sed -n 's/^instance: //p' /proc/ntc")
        check(instance.strip() == OFFICE_NAME, f"office VM: /proc/ntc names the instance {instance!r}", a)

        stream = os.path.join(work, "ssh-stream.log")
        ssh.start_stream(host.inside(stream))
        deadline = time.monotonic() + 120
        while len(ticks(stream)[0]) < 5 and time.monotonic() < deadline and "SSH-END" not in ticks(stream)[1]:
            time.sleep(0.5)
        check(len(ticks(stream)[0]) >= 5, f"the ssh session's stream did not start: {ticks(stream)[1][-2000:]}", a)

        before = parse_state(a.sh(STATE)[1])
        check(before.get("root") == "/dev/vda1", f"office VM: root is {before.get('root')}, not disk 1's", a)
        no_hook_run(a, "before the checkpoint")
        t_ck = time.monotonic()
        rc, st = ntcguest.checkpoint(a, 900)
        print(f"checkpoint in {time.monotonic() - t_ck:.0f}s ({st.get('disk_copy')}, {st.get('disk_blocks_read')} "
              f"blocks read): pause {st.get('pause_ms')} ms, "
              f"image {st.get('image_pages')} pages, persistent clock - system clock "
              f"{int(st.get('clock_offset_ns', 0)) / 1e9:.3f}s", flush=True)
        check(rc == 0 and st.get("result") == "0", f"checkpoint failed: rc {rc}, {st}", a)
        # ntc-dkms loads the module from the initramfs: disk 2 is a fresh clone.
        check(st.get("disk_copy") == "since_clone",
              f"the first checkpoint onto a fresh clone compared the disks: {st.get('disk_copy_note')}", a)
        ck_unix = int(st["time_unix_ns"]) / 1e9
        time.sleep(3)
        times, text = ticks(stream)
        check("SSH-END" not in text, f"the ssh session was dropped across the checkpoint: {text[-1000:]}", a)
        after = [t for t in times if t > ck_unix]
        check(len(after) >= 5, f"the ssh stream stopped at the checkpoint: {len(after)} lines after it", a)
        gap = max(b - a_ for a_, b in zip(times, times[1:]))
        print(f"ssh stream: {len(times)} lines, largest gap {gap:.2f}s (pause {st.get('pause_ms')} ms)", flush=True)
        state, failed = debian_guest.system_state(a)
        check(state == "running" and not failed, f"after the checkpoint: systemd {state}, failed: {failed}", a)
        ntcguest.check_no_kernel_warnings(a, "the office VM's kernel warned")
        no_hook_run(a, "after its checkpoint (only a resumed machine runs it)")
        times, text = ticks(stream)
        check("SSH-END" not in text and times[-1] > after[-1],
              f"the ssh session ended or stalled after the checkpoint: {text[-1000:]}", a)
        host.sh(f"pkill -f '{GUEST_ADDR} while' || true", check=False)
        timer_checkpoint(ssh, a)
        ntcguest.check_no_kernel_warnings(a, "the office VM's kernel warned at the timer's checkpoint")
        check(a.poweroff(180) == 0, "the office VM's poweroff should end ntc-vmm with status 0", a)
        ssh.guest = None

        # Disk 3, where disk 2 was, for the resumed VM's next checkpoint.
        host.sh(f"rm {disk1} && {clone} {disk2} {disk3} >/dev/null", 900)
        b = vm("debian-resumed", ["resume", disk2, "--disk", disk3, "--name", RESUMED_NAME]).start()
        t_b = time.monotonic()
        deadline = t_b + 300
        while True:
            rc, out = ssh.sh(STATE, check=False)
            if rc == 0 or time.monotonic() > deadline or b.exit_status() is not None:
                break
            print(f"ssh at {time.monotonic() - t_b:.0f}s: status {rc}, {out.strip()[-200:]}", flush=True)
            time.sleep(2)
        check(rc == 0, f"no ssh login into the resumed VM: {out}", b)
        ssh.guest = b
        print(f"resumed VM: ssh login {time.monotonic() - t_b:.0f}s after ntc-vmm resume started", flush=True)
        now = parse_state(out)
        check(now.get("ntc") == "resumed" and now.get("boot") == before.get("boot"),
              f"the resumed VM is not the checkpointed boot: {now}, office {before}", b)
        check(now.get("pid") == before.get("pid") and int(now.get("counter", 0)) > int(before["counter"]),
              f"counter service: {now}, checkpointed {before}", b)
        resume_hook(ssh, b)
        # ntc.ko gave the card the instance's MAC; ssh came in through it.
        mac = nested.expected_mac(image, RESUMED_NAME)
        _, addresses = ssh.sh("cat /sys/class/net/e*/address")
        check(mac in addresses.split(), f"the resumed VM's card should have {RESUMED_NAME}'s MAC {mac}: {addresses}", b)
        _, step = ssh.sh("sed -n 's/^resumed_clock_step_ns: //p' /proc/ntc")
        print(f"resumed VM: the resume set the clock {int(step or 0) / 1e9:+.3f}s", flush=True)
        # The guest's clock read between two of the host VM's, in one shell
        # command: an ssh session under nested TCG takes seconds, so a host
        # reading taken after it says nothing about the guest's.
        _, clocks = host.sh(f"h0=$(date +%s); g=$({ssh.bounded('date +%s', 120)}); rc=$?; h1=$(date +%s); "
                            "echo CLOCKS $h0 $g $h1; echo SSH-STATUS $rc", 150)
        ssh.check_answered(int(re.search(r"SSH-STATUS (\d+)", clocks).group(1)), "date +%s", 120)
        m = re.search(r"CLOCKS (\d+) (\d+) (\d+)", clocks)
        check(m, f"no clock readings from the resumed VM: {clocks}", b)
        h0, guest_clock, h1 = (int(v) for v in m.groups())
        print(f"resumed VM: clock read between the host VM's {h0} and {h1}: {guest_clock}", flush=True)
        check(h0 - CLOCK_SLACK <= guest_clock <= h1 + CLOCK_SLACK,
              f"resumed clock {guest_clock}, host VM's {h0}..{h1}", b)
        state, failed = debian_guest.system_state(ssh)
        check(state == "running" and not failed, f"after the resume: systemd {state}, failed: {failed}", b)
        _, journal = ssh.sh("logger ntc-resumed-journal-check && "
                             "journalctl --since=-1min -g ntc-resumed-journal-check -o cat --no-pager",
                             check=False)
        check("ntc-resumed-journal-check" in journal, f"journald wrote nothing after the resume: {journal}", b)
        # The office VM's console shell, idle at the timer's checkpoint,
        # answers in the resumed VM.
        b.sh("true", 60)
        ntcguest.check_no_kernel_warnings(b, "the resumed kernel warned")
        check(b.poweroff(180) == 0, "the resumed VM's poweroff should end ntc-vmm with status 0", b)

        for p in parts:
            if p.fstype == "ext4":
                rc, out = host.sh(f"e2fsck -fn '{disk2}?offset={p.offset}' 2>&1", 300, check=False)
                check(rc == 0, f"e2fsck on disk 2's partition {p.number}: rc {rc}\n{out}")
        host.send("poweroff -f")


if __name__ == "__main__":
    main()
