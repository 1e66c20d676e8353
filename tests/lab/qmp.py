"""What a QEMU user does to save a VM and bring it back, over QMP, timed.

    qmp.py SOCKET save FILE [--then CMD]
                              stop, migrate to FILE (exec:cat), run the
                              shell command CMD (copying the disks), cont;
                              prints "SAVED <stop to saved, s>
                              <stop to cont, s> <bytes of FILE>"
    qmp.py SOCKET bgsave FILE a background snapshot to FILE while the VM
                              runs (QEMU's background-snapshot capability:
                              guest RAM write-protected by userfaultfd,
                              pages written before the guest changes
                              them); prints "BGSAVED <QEMU's downtime, s>
                              <whole save, s> <bytes of FILE> <start>
                              <end>" (wall clock), or "BGSAVE-UNAVAILABLE
                              <why>" when QEMU refuses it on this host
    qmp.py SOCKET restore     waits for the -incoming migration to finish,
                              then cont; prints "RESTORED <s>"

Runs where QEMU runs (inside the nested host VM); times are taken there.
The migration bandwidth cap is lifted, so that QEMU saves as fast as it can.
"""
import json
import os
import shlex
import socket
import subprocess
import sys
import time


class Qmp:
    def __init__(self, path, timeout=120):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.reader = self.sock.makefile("r")
        self.reply()  # the greeting
        self.command("qmp_capabilities")

    def reply(self):
        while True:
            line = self.reader.readline()
            if not line:
                raise RuntimeError("QEMU closed its QMP socket")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name, **arguments):
        self.sock.sendall(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        msg = self.reply()
        if "error" in msg:
            raise RuntimeError(f"QMP {name}: {msg['error'].get('desc')}")
        return msg["return"]

    def wait(self, what, done, timeout=900):
        deadline = time.monotonic() + timeout
        while True:
            state = what()
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise RuntimeError(f"QMP: gave up waiting, last state {state}")
            time.sleep(0.01)


def migrate_to_file(qmp, path, what):
    """Migrates to path and waits for the end; query-migrate's last answer."""
    qmp.command("migrate", uri="exec:cat > " + shlex.quote(path))
    info = qmp.wait(lambda: qmp.command("query-migrate"),
                    lambda s: s.get("status") in ("completed", "failed", "cancelled"))
    if info["status"] != "completed":
        raise RuntimeError(f"{what} {info['status']}: {info.get('error-desc', '')}")
    return info


def save(qmp, path, then=None):
    qmp.command("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = time.monotonic()
    qmp.command("stop")
    migrate_to_file(qmp, path, "migration")
    saved = time.monotonic() - t0
    if then:
        subprocess.run(then, shell=True, check=True)
    qmp.command("cont")
    print(f"SAVED {saved:.3f} {time.monotonic() - t0:.3f} {os.path.getsize(path)}", flush=True)


def background_save(qmp, path):
    qmp.command("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    try:
        qmp.command("migrate-set-capabilities",
                    capabilities=[{"capability": "background-snapshot", "state": True}])
    except RuntimeError as e:
        print(f"BGSAVE-UNAVAILABLE {e}", flush=True)
        return
    start, t0 = time.time(), time.monotonic()
    info = migrate_to_file(qmp, path, "background snapshot")
    print(f"BGSAVED {info['downtime'] / 1000:.3f} {time.monotonic() - t0:.3f} {os.path.getsize(path)} "
          f"{start:.6f} {time.time():.6f}", flush=True)


def restore(qmp):
    t0 = time.monotonic()
    # A VM saved while stopped stays paused after the incoming migration.
    status = qmp.wait(lambda: qmp.command("query-status"), lambda s: s["status"] != "inmigrate")
    if not status["running"]:
        qmp.command("cont")
    print(f"RESTORED {time.monotonic() - t0:.3f}", flush=True)


if __name__ == "__main__":
    q = Qmp(sys.argv[1])
    if sys.argv[2] == "save":
        save(q, sys.argv[3], sys.argv[5] if sys.argv[4:5] == ["--then"] else None)
    elif sys.argv[2] == "bgsave":
        background_save(q, sys.argv[3])
    else:
        restore(q)
