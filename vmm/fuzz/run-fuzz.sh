#!/bin/sh
# Builds the virtio/PCI fuzzer with clang (libFuzzer, AddressSanitizer,
# UndefinedBehaviorSanitizer) into its own directory, so the main build keeps
# its compiler, and runs it for a bounded time from a seed that reaches
# request processing.
#   run-fuzz.sh VMM_DIR OUT_DIR SECONDS
set -eu
src=$1 out=$2 secs=$3
mkdir -p "$out/corpus"
bin=$out/virtio_pci_fuzz
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I "$src/src" -I "$src/../userland/lib/include" -I "$src/../disk-layout" \
	"$src/fuzz/virtio_pci_fuzz.cpp" "$src/src/virtqueue.cpp" "$src/src/devices/pci.cpp" \
	"$src/src/devices/virtio_pci.cpp" "$src/src/devices/virtio_blk.cpp" "$src/src/devices/virtio_net.cpp" \
	"$src/src/devices/msix.cpp" "$src/src/devices/worker_wakeup.cpp" "$src/src/devices/block_io.cpp" \
	"$src/src/eventfd.cpp" "$src/../userland/lib/src/error.cpp" "$src/src/kvm.cpp" \
	"$src/../userland/lib/src/overlay.cpp" "$src/../userland/lib/src/disk_file.cpp" \
	"$src/../userland/lib/src/swap_area.cpp" -luring -lz -o "$bin"
python3 "$src/fuzz/make-seed.py" > "$out/corpus/seed"
python3 "$src/fuzz/make-seed.py" net > "$out/corpus/seed-net"
python3 "$src/fuzz/make-seed.py" overlay > "$out/corpus/seed-overlay"
# The device reports each malformed ring on stderr; the log keeps it, the
# summary shows the verdict, and the fuzzer's status is the test's.
status=0
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
	"$out/corpus" >"$out/fuzz.log" 2>&1 || status=$?
grep -v "needs reset" "$out/fuzz.log" | tail -n 40
exit $status
