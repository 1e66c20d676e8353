#!/bin/sh
# On a host whose /dev/kvm cannot run a stock kernel (PVM, or none at all),
# ntc-vmm must refuse at once with a message saying why, not hang.
#   refuses-unusable-kvm.sh NTC_VMM
set -u
bin=$1
if [ -d /sys/module/kvm_pvm ]; then
	want="PVM"
elif [ ! -e /dev/kvm ]; then
	want="no /dev/kvm"
elif [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
	want="kvm_intel or kvm_amd"
else
	echo "this host's /dev/kvm is usable; nothing to refuse"
	exit 0
fi
out=$(timeout 10 "$bin" run /nonexistent.img 2>&1 </dev/null)
status=$?
echo "$out"
[ $status -eq 1 ] || { echo "want exit status 1, got $status"; exit 1; }
case "$out" in *"$want"*) ;; *) echo "message should mention '$want'"; exit 1 ;; esac
case "$out" in *QEMU*) ;; *) echo "message should point to the QEMU guest lab"; exit 1 ;; esac
