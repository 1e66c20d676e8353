#!/bin/sh
# Installs every Debian package NTC needs to build, test and run its guest lab.
# Idempotent: packages already present are left alone, apt is only asked when
# something is missing.
set -eu

# The last two lines are for make deb and its test host.deb (Documentation/packaging.md),
# and for the Debian guest (Documentation/disk-layout.md): mmdebstrap with the two
# of its recommended packages it uses in root mode, since apt is told to skip
# recommendations below.
PACKAGES="
build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
libblkid-dev libext2fs-dev comerr-dev uuid-dev zlib1g-dev libcli11-dev doctest-dev nlohmann-json3-dev liburing-dev
e2fsprogs fdisk gdisk util-linux cpio zstd kmod busybox-static file
qemu-system-x86 qemu-utils
linux-image-amd64 linux-headers-amd64 linux-source-6.1
iproute2 python3 time rsync
git debhelper dh-dkms dkms lintian systemd
mmdebstrap arch-test libdistro-info-perl
"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The guest kernel is installed only so that its files land in /boot and
# /usr/lib/modules; this machine never boots it, so its boot-loader hooks are
# not needed and initramfs-tools is not wanted (the lab builds its own).
$SUDO apt-get install -y -qq --no-install-recommends $missing
