#!/bin/sh
# Installs every Debian package NTC needs to build, test and run its guest lab.
# Idempotent: packages already present are left alone, apt is only asked when
# something is missing.
set -eu

# The last three lines are for make deb and its test host.deb (Documentation/packaging.md),
# for the Debian guest (Documentation/disk-layout.md): mmdebstrap with the two
# of its recommended packages it uses in root mode, since apt is told to skip
# recommendations below, and for the unit test that ships checkpoints through
# an sshd of its own (userland/tests/test_ship_ssh.cpp).
PACKAGES="
build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
libblkid-dev libext2fs-dev comerr-dev uuid-dev zlib1g-dev libcli11-dev doctest-dev nlohmann-json3-dev liburing-dev
e2fsprogs fdisk gdisk util-linux cpio zstd kmod busybox-static file
qemu-system-x86 qemu-utils
linux-image-amd64 linux-headers-amd64 linux-source-6.1
iproute2 python3 time rsync
git debhelper dh-dkms dkms lintian systemd
mmdebstrap arch-test libdistro-info-perl
openssh-client openssh-server
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

# The tests run sshd themselves, so installing openssh-server must not give
# this machine a system sshd: a policy-rc.d that exits 101 keeps the
# package's maintainer scripts from starting it (an admin's own policy-rc.d
# stays in charge, untouched), and the units they enable are disabled.  An
# openssh-server installed before is the admin's: left alone.
case " $missing " in
*" openssh-server "*)
	policy=/usr/sbin/policy-rc.d made_policy=false
	if [ ! -e $policy ] && [ ! -L $policy ]; then
		made_policy=true
		trap '$SUDO rm -f $policy' EXIT
		trap 'exit 1' HUP INT TERM
		printf '#!/bin/sh\n# make deps: no service starts while openssh-server installs.\nexit 101\n' |
			$SUDO tee $policy >/dev/null
		$SUDO chmod 755 $policy
	fi
	$SUDO apt-get install -y -qq --no-install-recommends openssh-server
	if command -v systemctl >/dev/null 2>&1; then
		# Where systemd runs, --now also stops what an admin's policy let start.
		now=""
		[ ! -d /run/systemd/system ] || now=--now
		$SUDO systemctl disable --quiet $now ssh.service ssh.socket ||
			echo "deps: could not disable ssh.service and ssh.socket; run: systemctl disable --now ssh.service ssh.socket" >&2
	fi
	if $made_policy; then
		$SUDO rm -f $policy
		trap - EXIT HUP INT TERM
	fi
	rest=""
	for p in $missing; do
		[ "$p" = openssh-server ] || rest="$rest $p"
	done
	missing=$rest
	;;
esac
# The guest kernel is installed only so that its files land in /boot and
# /usr/lib/modules; this machine never boots it, so its boot-loader hooks are
# not needed and initramfs-tools is not wanted (the lab builds its own).
[ -z "$missing" ] || $SUDO apt-get install -y -qq --no-install-recommends $missing
