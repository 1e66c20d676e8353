"""Level 2 smoke test: the built guest disk boots under QEMU to a shell,
runs commands, writes to its data partition, powers off, and leaves clean
filesystems."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lab"))
import ntclab  # noqa: E402


def main():
    with tempfile.TemporaryDirectory(dir=ntclab.BUILD) as tmp:
        disk = os.path.join(tmp, "smoke.img")
        subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-guest-disk.sh"), disk,
                        "--swap-mib", "64"], check=True)
        with ntclab.guest_for_disk("smoke", disk) as g:
            g.wait_ready()
            _, out = g.sh("uname -r")
            assert out.strip() == ntclab.guest_kernel_release(), out
            _, mounts = g.sh("cat /proc/mounts")
            assert "/dev/vda1 / ext4" in mounts, mounts
            assert "/dev/vda2 /data ext4" in mounts, mounts
            _, swaps = g.sh("cat /proc/swaps")
            assert "/dev/vda3" in swaps, swaps
            g.sh("echo smoke-ok > /data/smoke.txt && sync")
            rc, _ = g.sh("false", check=False)
            assert rc == 1
            g.poweroff()
        problems = ntclab.e2fsck_clean(disk, [p.offset for p in ntclab.partitions(disk) if p.fstype == 'ext4'])
        assert not problems, problems
        r = subprocess.run(["debugfs", "-R", "cat /smoke.txt", f"{disk}?offset={ntclab.partitions(disk)[1].offset}"],
                           capture_output=True, text=True, check=True)
        assert r.stdout.strip() == "smoke-ok", r.stdout
    print("guest smoke test: passed")


if __name__ == "__main__":
    main()
