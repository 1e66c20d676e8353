#!/bin/bash
# Builds a Debian 12 guest disk laid out as the Debian installer lays one
# out (Documentation/disk-layout.md, "The Debian guest"): systemd,
# initramfs-tools, the stock linux-image-amd64 with its headers, sshd, a
# network configuration, and NTC's guest package installed from its .deb,
# which DKMS builds for the disk's kernel.  Root and swap are named by UUID
# in /etc/fstab, on the kernel command line and in initramfs-tools' RESUME;
# GRUB's configuration is in /boot/grub; there is no BLS entry.  Nothing is
# mounted: mmdebstrap populates a directory and mkfs.ext4 -d writes it into
# the root partition at its offset in the image.
#
#   build-debian-disk.sh OUT.img --deb ntc-dkms_VERSION_all.deb [options]
#     --deb FILE           a package to install (repeatable; ntc-dkms is required)
#     --ssh-key FILE       public key allowed to log in as root
#     --address CIDR       static address of the first network card (default 10.0.2.2/24)
#     --root-mib N         root partition size (default 3072)
#     --swap-mib N         swap partition size (default 1280)
#     --cache DIR          keeps downloaded packages between builds
#
# Writes OUT.img, and OUT.img.vmlinuz, OUT.img.initrd, OUT.img.cmdline for
# QEMU's -kernel/-initrd (the same files and command line as grub.cfg's
# default entry, since QEMU without a boot loader cannot read grub.cfg).
set -euo pipefail

die() { echo "build-debian-disk: $*" >&2; exit 1; }

out=""
debs=()
ssh_key=""
address=10.0.2.2/24
root_mib=3072
swap_mib=1280
cache=""
while [ $# -gt 0 ]; do
	case "$1" in
	--deb) debs+=("$(realpath "$2")"); shift 2 ;;
	--ssh-key) ssh_key=$2; shift 2 ;;
	--address) address=$2; shift 2 ;;
	--root-mib) root_mib=$2; shift 2 ;;
	--swap-mib) swap_mib=$2; shift 2 ;;
	--cache) cache=$(realpath -m "$2"); shift 2 ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$out" ] || die "only one output image"; out=$1; shift ;;
	esac
done
[ -n "$out" ] || die "usage: build-debian-disk.sh OUT.img --deb ntc-dkms_VERSION_all.deb [--ssh-key KEY.pub]"
printf '%s\n' "${debs[@]}" | grep -q '/ntc-dkms_[^/]*\.deb$' ||
	die "no ntc-dkms package given (build it with 'make deb', then --deb build/deb/ntc-dkms_*.deb)"
for f in "${debs[@]}" ${ssh_key:+"$ssh_key"}; do [ -r "$f" ] || die "$f not found"; done
for tool in mmdebstrap mkfs.ext4 mkswap sfdisk; do
	command -v $tool >/dev/null || die "$tool not found; run 'make deps'"
done
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap's root mode keeps file owners for mkfs.ext4 -d)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
root_uuid=$(cat /proc/sys/kernel/random/uuid)
swap_uuid=$(cat /proc/sys/kernel/random/uuid)
hook="$work/hook"
mkdir -p "$hook"
cp "${debs[@]}" "$hook/"
[ -n "$ssh_key" ] && cp "$ssh_key" "$hook/authorized_keys"

cat > "$hook/fstab" <<EOF
# <file system> <mount point> <type> <options> <dump> <pass>
UUID=$root_uuid / ext4 errors=remount-ro 0 1
UUID=$swap_uuid none swap sw 0 0
EOF
cat > "$hook/wired.network" <<EOF
[Match]
Type=ether

[Network]
Address=$address
EOF
# The test harness drives the guest through its serial console.
cat > "$hook/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,38400,9600 %I $TERM
EOF

# The kernel is chosen by apt, so grub.cfg is written once it is installed,
# in update-grub's form (10_linux's default entry and its "Advanced
# options" submenu); update-grub itself cannot probe a root that is a
# directory.
cat > "$hook/customize" <<'HOOK'
#!/bin/sh
set -eu
target=$1 hook=$2 root_uuid=$3 swap_uuid=$4
cp "$hook/fstab" "$target/etc/fstab"
echo ntc-debian > "$target/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tntc-debian\n' > "$target/etc/hosts"
cp "$hook/wired.network" "$target/etc/systemd/network/50-wired.network"
chroot "$target" systemctl enable systemd-networkd.service
mkdir -p "$target/etc/systemd/system/serial-getty@ttyS0.service.d"
cp "$hook/autologin.conf" "$target/etc/systemd/system/serial-getty@ttyS0.service.d/"
if [ -e "$hook/authorized_keys" ]; then
	install -d -m 700 "$target/root/.ssh"
	install -m 600 "$hook/authorized_keys" "$target/root/.ssh/authorized_keys"
fi
echo "RESUME=UUID=$swap_uuid" > "$target/etc/initramfs-tools/conf.d/resume"

mkdir -p "$target/tmp/ntc-debs"
cp "$hook"/*.deb "$target/tmp/ntc-debs/"
chroot "$target" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/ntc-debs/*.deb'
rm -rf "$target/tmp/ntc-debs"

krel=$(ls "$target/usr/lib/modules" | sort -V | tail -n1)
# The guest package's promise, checked where it is kept: DKMS built the
# module for the installed kernel.
[ -e "$target/usr/lib/modules/$krel/updates/dkms/ntc.ko" ] ||
	{ echo "build-debian-disk: DKMS did not build ntc.ko for $krel" >&2; chroot "$target" dkms status >&2; exit 1; }
chroot "$target" update-initramfs -u -k "$krel"

# GRUB's command line as Debian's installer writes it, for a PC's screen:
# ntc-vmm adds its serial console itself (vmm.md, Boot).  QEMU boots with
# -kernel and gets OUT.img.cmdline, which names the console.
grub_cmdline="root=UUID=$root_uuid ro quiet"
cmdline="$grub_cmdline console=ttyS0"
# One menu entry as 10_linux writes it: indent, title, id, kernel options.
grub_entry() {
	printf "%smenuentry '%s' --class debian --class gnu-linux --class gnu --class os \$menuentry_id_option '%s' {\n" \
		"$1" "$2" "$3"
	printf '%s\t%s\n' "$1" load_video "$1" "insmod gzio" "$1" "insmod part_gpt" "$1" "insmod ext2" \
		"$1" "search --no-floppy --fs-uuid --set=root $root_uuid" \
		"$1" "linux	/boot/vmlinuz-$krel $4" "$1" "initrd	/boot/initrd.img-$krel"
	printf '%s}\n' "$1"
}
mkdir -p "$target/boot/grub"
{
	cat <<EOF
#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s \$prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi

if [ x"\${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

terminal_input console
terminal_output console
set timeout=5
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
EOF
	grub_entry "" "Debian GNU/Linux" "gnulinux-simple-$root_uuid" "$grub_cmdline"
	echo "submenu 'Advanced options for Debian GNU/Linux' \$menuentry_id_option 'gnulinux-advanced-$root_uuid' {"
	grub_entry "	" "Debian GNU/Linux, with Linux $krel" "gnulinux-$krel-advanced-$root_uuid" "$grub_cmdline"
	grub_entry "	" "Debian GNU/Linux, with Linux $krel (recovery mode)" "gnulinux-$krel-recovery-$root_uuid" \
		"root=UUID=$root_uuid ro single"
	echo "}"
	echo "### END /etc/grub.d/10_linux ###"
} > "$target/boot/grub/grub.cfg"
echo "$krel" > "$hook/krel"
echo "$cmdline" > "$hook/cmdline"
HOOK
chmod +x "$hook/customize"

cache_hooks=()
if [ -n "$cache" ]; then
	mkdir -p "$cache"
	cache_hooks=(--skip=essential/unlink
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
		--setup-hook="sync-in $cache /var/cache/apt/archives/"
		--customize-hook="sync-out /var/cache/apt/archives $cache")
fi
packages=systemd-sysv,udev,dbus,initramfs-tools,linux-image-amd64,linux-headers-amd64,dkms
packages+=,openssh-server,iproute2,procps,kmod,less,ca-certificates
mmdebstrap --variant=important --include="$packages" \
	--aptopt='Acquire::Retries "3"' \
	"${cache_hooks[@]}" \
	--customize-hook="$hook/customize \"\$1\" $hook $root_uuid $swap_uuid" \
	--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
	bookworm "$root" \
	"deb http://deb.debian.org/debian bookworm main" \
	"deb http://deb.debian.org/debian bookworm-updates main" \
	"deb http://deb.debian.org/debian-security bookworm-security main" \
	> "$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
krel=$(cat "$hook/krel")

# --- disk: GPT with root and swap, as the installer's guided partitioning -----
mib=$((1024 * 1024))
p1_start=1
p2_start=$((p1_start + root_mib))
total_mib=$((p2_start + swap_mib + 1))	# 1 MiB for the backup GPT
tmp_out="$out.tmp$$"
rm -f "$tmp_out"
truncate -s $((total_mib * mib)) "$tmp_out"
mkfs.ext4 -q -F -t ext4 -b 4096 -U "$root_uuid" -E "offset=$((p1_start * mib))" -d "$root" \
	"$tmp_out" "$((root_mib * 1024))k"
truncate -s $((swap_mib * mib)) "$work/swap.img"
mkswap -U "$swap_uuid" "$work/swap.img" >/dev/null 2>&1
dd if="$work/swap.img" of="$tmp_out" bs=4096 count=1 seek=$((p2_start * mib / 4096)) conv=notrunc status=none
# Partition last: mke2fs clears the start of the image it is given.  sfdisk,
# not sgdisk, which syncs every file system of the machine and then sleeps a
# second.  Sectors of 512 bytes; the types are Linux data and Linux swap.
# sfdisk's words are shown only when it fails: it always warns that the new
# partitions hold the signatures just written.
sfdisk -q "$tmp_out" > "$work/sfdisk.log" 2>&1 <<PARTITIONS || { cat "$work/sfdisk.log" >&2; die "sfdisk failed"; }
label: gpt
start=$((p1_start * 2048)), size=$((root_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
start=$((p2_start * 2048)), size=$((swap_mib * 2048)), type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
PARTITIONS
mv -f "$tmp_out" "$out"
cp "$root/boot/vmlinuz-$krel" "$out.vmlinuz"
cp "$root/boot/initrd.img-$krel" "$out.initrd"
cp "$hook/cmdline" "$out.cmdline"
echo "build-debian-disk: $out ($total_mib MiB, kernel $krel)"
