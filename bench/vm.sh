#!/usr/bin/env bash
# VM isolation benchmarks, measured side by side in one run:
#   1. the floor (bench/vm-floor.sh: bare microvm, same kernel, busybox init that powers off) versus
#      `bulkhead run --rm --isolation=vm demo true`: medians and ratio (goal <= 1.3x);
#   2. host memory of one idle vm container: QEMU + monitor RSS beyond the guest's RAM (goal <= 64 MiB);
#   3. 20 vm containers started at once: how many print the right output, and the wall time.
# Environment: N (runs, default 21), PARALLEL (default 20), BULKHEAD (binary, default the release build).
# Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-21}
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


echo "### VM start: bulkhead versus the bare-QEMU floor"
echo
echo "Accelerator: $accel. $N runs each, interleaved (floor, bulkhead, bulkhead, floor, ...), medians."
echo
floor_cmd=$(FLOOR_DIR="$root/floor" bench/vm-floor.sh)
run_cmd="$BULKHEAD --root $root run --rm --isolation=vm demo true"
$run_cmd  # warm-up: builds the initramfs for this binary
python3 - "$N" "$floor_cmd" "$run_cmd" <<'PY'
import shlex, statistics, subprocess, sys, time
runs, floor, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
times = {floor: [], run: []}
for i in range(runs):
    for cmd in (floor, run) if i % 2 == 0 else (run, floor):
        start = time.monotonic()
        subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
        times[cmd].append(time.monotonic() - start)
f, r = statistics.median(times[floor]), statistics.median(times[run])
print("| what | median | min | ratio to floor |")
print("|---|---|---|---|")
print(f"| floor: bare microvm, same kernel, busybox /init that powers off | {f:.3f} s | {min(times[floor]):.3f} s | 1.00 |")
print(f"| `bulkhead run --rm --isolation=vm demo true` | {r:.3f} s | {min(times[run]):.3f} s | {r / f:.2f} |")
PY
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
# File-backed pages (QEMU's binary and libraries, the kernel and initramfs it maps, the monitor's binary)
# count in RSS but are one page-cache copy shared by every VM; the rest is private to this container.
file_kib=$(( $(awk '/^RssFile:/ {print $2}' "/proc/$qemu/status") + $(awk '/^RssFile:/ {print $2}' "/proc/$monitor/status") ))
private=$(( (qemu_rss - guest_rss + monitor_rss - file_kib) / 1024 ))
echo "| guest RAM | QEMU RSS | of which guest RAM resident | monitor RSS | overhead beyond guest RAM | of which file-backed (shared) | private |"
echo "|---|---|---|---|---|---|---|"
echo "| ${guest_mib} MiB | $((qemu_rss / 1024)) MiB | $((guest_rss / 1024)) MiB | $((monitor_rss / 1024)) MiB | **${overhead} MiB** | $((file_kib / 1024)) MiB | ${private} MiB |"
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
