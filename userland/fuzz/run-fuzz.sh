#!/bin/sh
# Builds the swap-area fuzzer with clang (libFuzzer, AddressSanitizer,
# UndefinedBehaviorSanitizer) and runs it for a bounded time from a seed
# corpus holding a small, valid NTC checkpoint.
#   run-fuzz.sh USERLAND_DIR BUILD_DIR SECONDS
set -eu
src=$1 out=$2 secs=$3
root=$src/..
mkdir -p "$out/corpus"
bin=$out/swap_area_fuzz
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I "$src/lib/include" -I "$root/disk-layout" \
	"$src/fuzz/swap_area_fuzz.cpp" "$src/lib/src/swap_area.cpp" -lz -o "$bin"
python3 "$src/fuzz/make-seed.py" "$out/corpus/checkpoint-seed"
# The fuzzer's own status decides the test; only its tail is shown.
status=0
"$bin" -max_total_time="$secs" -max_len=$((64 * 4096)) -timeout=10 -rss_limit_mb=1024 \
	-print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" >"$out/fuzz.log" 2>&1 || status=$?
tail -n 40 "$out/fuzz.log"
exit $status
