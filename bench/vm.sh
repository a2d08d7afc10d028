#!/usr/bin/env bash
# VM isolation benchmarks, measured side by side in one run:
#   1. the floor (bench/vm-floor.sh: bare microvm, same kernel, busybox init that powers off) versus
#      `bulkhead run --rm --isolation=vm demo true`: medians and ratio (goal <= 1.3x);
#   2. host memory of one idle vm container: QEMU + monitor RSS beyond the guest's RAM (goal <= 64 MiB);
#   3. 20 vm containers started at once: how many print the right output, and the wall time.
# Environment: N (runs, default 5), PARALLEL (default 20), BULKHEAD (binary, default the release build).
# Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5}
PARALLEL=${PARALLEL:-20}
BULKHEAD=$(realpath "${BULKHEAD:-target/x86_64-unknown-linux-gnu/release/bulkhead}")
root=$(mktemp -d /tmp/bulkhead-bench-vm.XXXXXX)
cleanup() {
  "$BULKHEAD" --root "$root" ps -aq 2>/dev/null | xargs -r "$BULKHEAD" --root "$root" rm -f >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap cleanup EXIT
bh() { "$BULKHEAD" --root "$root" "$@"; }

tarball="$root/demo.tar"
scripts/busybox-rootfs.sh "$tarball"
bh image import-rootfs "$tarball" --tag demo >/dev/null
accel=$(bh info | sed -n 's/^VM Accelerator: //p')

median_of() { python3 -c 'import json,statistics,sys; t = json.load(open(sys.argv[1]))["results"][0]["times"]; print("%.3f" % statistics.median(t))' "$1"; }

echo "### VM start: bulkhead versus the bare-QEMU floor"
echo
echo "Accelerator: $accel. $N runs each, medians."
echo
floor_row=$(bench/vm-floor.sh "" "$N")
floor=$(echo "$floor_row" | awk -F'|' '{print $4}' | awk '{print $1}')
hyperfine --style none --warmup 1 --runs "$N" --export-json "$root/run.json" \
  "$BULKHEAD --root $root run --rm --isolation=vm demo true" >/dev/null
run=$(median_of "$root/run.json")
echo "| what | median | ratio to floor |"
echo "|---|---|---|"
echo "| floor: bare microvm, same kernel, busybox /init that powers off | ${floor} s | 1.00 |"
echo "| \`bulkhead run --rm --isolation=vm demo true\` | ${run} s | $(python3 -c "print(f'{$run/$floor:.2f}')") |"
echo

echo "### Host memory of one idle vm container"
echo
id=$(bh run -d --isolation=vm demo sleep 100000)
sleep 3
state="$root/containers/$id/state.json"
qemu=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state")
monitor=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor_pid"])' "$state")
guest_mib=$(bh inspect "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["HostConfig"]["VmMemoryMiB"])')
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# The guest's RAM is QEMU's one anonymous mapping of exactly the guest size; its resident part is the
# guest's, everything else QEMU holds is overhead.
# (Python rather than awk: Debian's default awk is mawk, which has no strtonum.)
guest_rss=$(python3 - "/proc/$qemu/smaps" $((guest_mib * 1024)) <<'PY'
import re, sys
size, cur, total = int(sys.argv[2]), None, 0
for line in open(sys.argv[1]):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
    if m:
        cur = (int(m[2], 16) - int(m[1], 16)) // 1024
    elif line.startswith("Rss:") and cur == size:
        total += int(line.split()[1])
print(total)
PY
)
qemu_rss=$(rss_kib "$qemu")
monitor_rss=$(rss_kib "$monitor")
overhead=$(( (qemu_rss - guest_rss + monitor_rss) / 1024 ))
echo "| guest RAM | QEMU RSS | of which guest RAM resident | monitor RSS | overhead beyond guest RAM |"
echo "|---|---|---|---|---|"
echo "| ${guest_mib} MiB | $((qemu_rss / 1024)) MiB | $((guest_rss / 1024)) MiB | $((monitor_rss / 1024)) MiB | **${overhead} MiB** |"
bh rm -f "$id" >/dev/null
echo

echo "### $PARALLEL vm containers started at once"
echo
start=$(date +%s.%N)
for i in $(seq 1 "$PARALLEL"); do
  ( out=$(bh run --rm --isolation=vm demo echo "vm-$i" 2>&1); [ "$out" = "vm-$i" ] && echo ok > "$root/par.$i" || echo "$out" > "$root/par.$i" ) &
done
wait
end=$(date +%s.%N)
good=$(grep -lx ok "$root"/par.* | wc -l)
echo "| containers | correct output | wall time |"
echo "|---|---|---|"
echo "| $PARALLEL | $good | $(python3 -c "print(f'{$end-$start:.1f}')") s |"
