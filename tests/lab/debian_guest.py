"""The Debian guest (Documentation/disk-layout.md, "The Debian guest"): its
disk, built once per recipe and kept under the build tree, and the login on
its serial console.
"""
import glob
import os
import subprocess

import ntclab
import packages

# What the disk is made of: the builder, and everything ntc-dkms packages.
RECIPE = ["scripts/build-debian-disk.sh", "kmod", "disk-layout", "debian"]
PROMPT = r"root@ntc-debian:~# "
# The address the builder gives the guest's first network card (--address).
ADDRESS = "10.0.2.2"
# A counter as a systemd service: /run/ntc-counter counts up every 0.1 s.
# Written aside and renamed: a reader (or a snapshot) between the truncation
# and the write of `echo $n > file` would find the counter empty.
COUNTER = ("systemd-run --unit=ntc-counter sh -c "
           "'n=0; while :; do n=$((n+1)); echo $n > /run/ntc-counter.new; "
           "mv /run/ntc-counter.new /run/ntc-counter; sleep 0.1; done'")


def debian_disk():
    """The Debian guest disk for this tree: the path of its image, with the
    builder's .vmlinuz, .initrd and .cmdline beside it.  Built with the
    ntc-dkms package of this tree (packages.py) when its recipe changed:
    about 8 minutes, most of it make deb and mmdebstrap."""
    cache = os.path.join(ntclab.BUILD, "debian-guest")
    image = os.path.join(cache, f"debian-{packages.tracked_digest(RECIPE)}.img")
    if os.path.exists(image):
        return image
    os.makedirs(cache, exist_ok=True)
    for old in glob.glob(os.path.join(cache, "debian-*.img*")):
        os.remove(old)
    deb = glob.glob(os.path.join(packages.built_packages(), "ntc-dkms_*_all.deb"))
    ntclab.check(len(deb) == 1, f"make deb left {deb}")
    subprocess.run([os.path.join(ntclab.ROOT, "scripts", "build-debian-disk.sh"), image, "--deb", deb[0],
                    "--cache", os.path.join(cache, "apt-cache")], check=True, timeout=1800)
    return image


def wait_login(g, timeout=300):
    """Waits for the autologin shell on the serial console and sets it up for
    ConsoleShell.sh: no echo, no prompt."""
    g.expect(PROMPT, timeout)
    g.sh("stty -echo; PS1=''; export SYSTEMD_PAGER= SYSTEMD_COLORS=0", 30)


def system_state(shell):
    """systemctl is-system-running, once the boot has finished, and the
    failed units, through anything with ConsoleShell's sh()."""
    _, state = shell.sh("systemctl is-system-running --wait", 300, check=False)
    _, failed = shell.sh("systemctl --failed --no-legend --plain", 60, check=False)
    return state.strip(), failed.strip()


def pack(image, directory):
    """The disk image as a sparse tar in `directory`, for a host VM to
    unpack() into its RAM: only the disk's data (about 1 of its 4.5 GB) then
    crosses the 9p share."""
    packed = os.path.join(directory, "debian-disk.tar")
    subprocess.run(["tar", "-S", "-cf", packed, "-C", os.path.dirname(image), "--transform",
                    "s/.*/debian-disk.img/", os.path.basename(image)], check=True, timeout=600)
    return packed


def unpack(host, packed, path):
    """In the host VM: the packed disk image at `path` (in its RAM); the
    tar file is removed."""
    directory = os.path.dirname(path)
    host.sh(f"mkdir -p {directory} && tar -xSf {host.inside(packed)} -C {directory} && "
            f"mv {directory}/debian-disk.img {path}", 900)
    os.remove(packed)
