"""debian/udev/ntc-snapshot-disk, the test behind the udev rule and the
initramfs script that keep the office VM off disk 2: on a stand-in /sys and
/dev, a disk is a snapshot disk exactly when one of its partitions has NTC's
record and an area's signature (no checkpoint, a checkpoint, an unfinished
clone), and only that partition is the area.  The signatures are read from
disk-layout/ntc_format.h, so a format change that the helper misses fails
here.  Run by /bin/sh, as udev and the initramfs run it.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HELPER = os.path.join(ROOT, "debian", "udev", "ntc-snapshot-disk")
PAGE = 4096


def format_string(name):
    with open(os.path.join(ROOT, "disk-layout", "ntc_format.h")) as f:
        m = re.search(rf'#define {name} "([^"]*)"', f.read())
    assert m, f"{name} not in ntc_format.h"
    return m.group(1).encode()


RECORD = format_string("NTC_RECORD_MAGIC")
AREA = format_string("NTC_AREA_SIG")
HIBERNATE = format_string("NTC_HIBERNATE_SIG")


def page0(record, signature):
    page = bytearray(PAGE)
    if record:
        page[:len(RECORD)] = RECORD
    sig = signature.ljust(10, b"\0")
    page[PAGE - 10:] = sig
    return bytes(page)


def probe(tmp, disks, name):
    """disks: {"vda": [page0 of partition 1, ...]}; runs the helper on name."""
    sys_dir, dev_dir = os.path.join(tmp, "sys"), os.path.join(tmp, "dev")
    for disk, parts in disks.items():
        for number, page in enumerate(parts, 1):
            part = f"{disk}{number}"
            os.makedirs(os.path.join(sys_dir, "block", disk, part), exist_ok=True)
            with open(os.path.join(sys_dir, "block", disk, part, "partition"), "w") as f:
                f.write(f"{number}\n")
            os.makedirs(dev_dir, exist_ok=True)
            with open(os.path.join(dev_dir, part), "wb") as f:
                f.write(page)
    out = subprocess.run(["sh", HELPER, name], env=dict(os.environ, SYSFS=sys_dir, DEV=dev_dir),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    return set(out.stdout.split())


def main():
    fs = bytes(PAGE)  # what the helper reads at an ext4 partition's start
    swap = page0(False, b"SWAPSPACE2")
    disk1 = [fs, swap]
    cases = [
        ("no checkpoint yet", page0(True, AREA), True),
        ("a checkpoint", page0(True, HIBERNATE), True),
        ("an unfinished ntc-clone", page0(True, b""), True),
        ("a resumed disk 2 (swap again, record kept)", page0(True, b"SWAPSPACE2"), False),
        ("a stock hibernation image", page0(False, HIBERNATE), False),
        ("the record with a foreign signature", page0(True, b"SWAP-SPACE"), False),
    ]
    failures = []
    for what, area_page, is_snapshot_disk in cases:
        with tempfile.TemporaryDirectory() as tmp:
            disks = {"vda": disk1, "vdb": [fs, area_page]}
            got = {name: probe(tmp, disks, name) for name in ("vda1", "vda2", "vdb1", "vdb2", "vdc1")}
        want_disk = {"NTC_SNAPSHOT_DISK=1"} if is_snapshot_disk else set()
        want = {"vda1": set(), "vda2": set(), "vdb1": want_disk,
                "vdb2": want_disk | ({"NTC_SNAPSHOT_AREA=1"} if is_snapshot_disk else set()),
                "vdc1": set()}
        if got != want:
            failures.append(f"{what}: got {got}, want {want}")
        else:
            print(f"ok: {what}")
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
