#!/bin/bash
# Builds a small bootable NTC guest disk (see Documentation/disk-layout.md)
# from the Debian kernel installed on this machine and static busybox,
# without mounting anything: each filesystem is populated by mkfs.ext4 -d
# directly at its offset inside the disk image.
#
#   build-guest-disk.sh OUT.img [options]
#     --kernel-release R   kernel from /boot and /usr/lib/modules (default: newest)
#     --root-mib N         root partition size (default 128)
#     --data-mib N         data partition size (default 64)
#     --swap-mib N         swap partition size (default 512)
#     --module FILE        a module to load at boot, from the initramfs before
#                          the root is mounted (ntc.ko); repeatable
#     --overlay DIR        extra files copied over the root tree; repeatable
#     --cmdline "ARGS"     extra kernel options for the boot entry
#
# Writes OUT.img, plus OUT.img.vmlinuz, OUT.img.initrd and OUT.img.cmdline
# (the same as the disk's /boot and boot entry) for QEMU's -kernel/-initrd.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
layout="$here/../disk-layout"

die() { echo "build-guest-disk: $*" >&2; exit 1; }

out=""
krel=""
root_mib=128
data_mib=64
swap_mib=512
modules=()
overlays=()
extra_cmdline=""
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel-release) krel=$2; shift 2 ;;
	--root-mib) root_mib=$2; shift 2 ;;
	--data-mib) data_mib=$2; shift 2 ;;
	--swap-mib) swap_mib=$2; shift 2 ;;
	--module) modules+=("$2"); shift 2 ;;
	--overlay) overlays+=("$2"); shift 2 ;;
	--cmdline) extra_cmdline=$2; shift 2 ;;
	-*) die "unknown option $1" ;;
	*) [ -z "$out" ] || die "only one output image"; out=$1; shift ;;
	esac
done
[ -n "$out" ] || die "usage: build-guest-disk.sh OUT.img [--swap-mib N] [--module ntc.ko] [--overlay DIR]"

if [ -z "$krel" ]; then
	krel=$(ls /usr/lib/modules 2>/dev/null | sort -V | tail -n1)
fi
vmlinuz=/boot/vmlinuz-$krel
[ -n "$krel" ] && [ -r "$vmlinuz" ] && [ -d "/usr/lib/modules/$krel" ] ||
	die "no Debian kernel found (want /boot/vmlinuz-$krel and /usr/lib/modules/$krel); run 'make deps'"
busybox=$(command -v busybox) || die "busybox not found; run 'make deps'"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	die "$busybox is not static; install busybox-static"
for tool in mkfs.ext4 mkswap sfdisk cpio; do
	command -v $tool >/dev/null || die "$tool not found; run 'make deps'"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Modules the guest needs before its root is mounted, in load order.
add_module_tree() {
	local dest=$1; shift
	: > "$dest/etc/modules-order"
	local m path
	for m in "$@"; do
		modprobe -S "$krel" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++' | while read -r path; do
		local rel=${path#/lib/modules/$krel/}
		rel=${rel#/usr/lib/modules/$krel/}
		mkdir -p "$dest/lib/modules/$(dirname "$rel")"
		cp "/usr/lib/modules/$krel/$rel" "$dest/lib/modules/$rel"
		echo "$rel" >> "$dest/etc/modules-order"
	done
}

install_busybox() {
	local dest=$1
	mkdir -p "$dest/bin" "$dest/sbin" "$dest/usr/bin" "$dest/usr/sbin"
	cp "$busybox" "$dest/bin/busybox"
	local applet
	for applet in $("$busybox" --list-full); do
		[ -e "$dest/$applet" ] || ln -s /bin/busybox "$dest/$applet"
	done
}

# --- initramfs ---------------------------------------------------------------
ird="$work/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,etc,lib/modules}
cp "$busybox" "$ird/bin/busybox"
for a in sh mount umount insmod cat sleep switch_root echo; do ln -s busybox "$ird/bin/$a"; done
cp "$layout/initramfs/init" "$ird/init"
# brd: a bio-based disk, which ntc.ko must refuse as disk 1 (guest.checkpoint_errors)
add_module_tree "$ird" virtio_pci virtio_blk ext4 virtio_net brd
mkdir -p "$ird/lib/modules/ntc"
for m in "${modules[@]}"; do
	[ -r "$m" ] || die "module $m not found (build it with 'make')"
	cp "$m" "$ird/lib/modules/ntc/"
done
initrd="$work/initrd.img-$krel"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd"

# --- root filesystem ---------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{boot/loader/entries,dev,proc,sys,tmp,data,root,etc/ntc,lib/modules/ntc,var/log}
install_busybox "$root"
cp -a "$layout/guest-root/." "$root/"
cp "$vmlinuz" "$root/boot/vmlinuz-$krel"
cp "$initrd" "$root/boot/initrd.img-$krel"
cmdline="root=/dev/vda1 rw resume=/dev/vda3 console=ttyS0 loglevel=4 panic=-1${extra_cmdline:+ $extra_cmdline}"
cat > "$root/boot/loader/entries/ntc-$krel.conf" <<ENTRY
title   NTC guest (Debian $krel)
version $krel
linux   /boot/vmlinuz-$krel
initrd  /boot/initrd.img-$krel
options $cmdline
ENTRY
for m in "${modules[@]}"; do
	[ -r "$m" ] || die "module $m not found (build it with 'make')"
	cp "$m" "$root/lib/modules/ntc/"
done
for o in "${overlays[@]}"; do
	[ -d "$o" ] || die "overlay $o is not a directory"
	cp -a "$o/." "$root/"
done

# --- disk: GPT with root, data, swap -------------------------------------------
mib=$((1024 * 1024))
p1_start=1
p2_start=$((p1_start + root_mib))
p3_start=$((p2_start + data_mib))
total_mib=$((p3_start + swap_mib + 1))	# 1 MiB for the backup GPT

tmp_out="$out.tmp$$"
rm -f "$tmp_out"
truncate -s $((total_mib * mib)) "$tmp_out"

mkfs_at() {	# offset-MiB size-MiB label [dir]
	local args=(-q -F -t ext4 -b 4096 -L "$3" -E "offset=$(($1 * mib))")
	[ -n "${4:-}" ] && args+=(-d "$4")
	mkfs.ext4 "${args[@]}" "$tmp_out" "$(($2 * 1024))k"
}
mkfs_at $p1_start $root_mib ntc-root "$root"
mkdir -p "$work/data"
mkfs_at $p2_start $data_mib ntc-data "$work/data"

swap="$work/swap.img"
truncate -s $((swap_mib * mib)) "$swap"
mkswap -L ntc-swap "$swap" >/dev/null 2>&1
dd if="$swap" of="$tmp_out" bs=4096 count=1 seek=$((p3_start * mib / 4096)) conv=notrunc status=none

# Partition last: mke2fs clears the start of the image it is given.  sfdisk,
# not sgdisk, which syncs every file system of the machine and then sleeps a
# second.  Sectors of 512 bytes; the types are Linux data and Linux swap.
# sfdisk's words are shown only when it fails: it always warns that the new
# partitions hold the signatures just written.
sfdisk -q "$tmp_out" > "$work/sfdisk.log" 2>&1 <<PARTITIONS || { cat "$work/sfdisk.log" >&2; die "sfdisk failed"; }
label: gpt
start=$((p1_start * 2048)), size=$((root_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=ntc-root
start=$((p2_start * 2048)), size=$((data_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=ntc-data
start=$((p3_start * 2048)), size=$((swap_mib * 2048)), type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=ntc-swap
PARTITIONS
mv -f "$tmp_out" "$out"
cp "$vmlinuz" "$out.vmlinuz"
cp "$initrd" "$out.initrd"
echo "$cmdline" > "$out.cmdline"
echo "build-guest-disk: $out ($total_mib MiB, kernel $krel)"
