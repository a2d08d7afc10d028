#!/usr/bin/env bash
# Process-isolation start-to-exit latency: `bulkhead run --rm IMAGE true` against `runc run` of the
# same root filesystem as a bundle and `podman run --rm` of the same image imported into podman.
# All three use no network. Issue 3's goals: bulkhead <= 0.3x podman and <= 1.0x runc.
#
# Usage: bench/run.sh [runs]          (default 20, after 2 warmup runs each)
# Env:   BULKHEAD=path/to/bulkhead    (default target/x86_64-unknown-linux-gnu/release/bulkhead)
# Prints a markdown table: median and min per tool, and the ratios.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
warmup=2
bulkhead=${BULKHEAD:-$here/target/x86_64-unknown-linux-gnu/release/bulkhead}
[ -x "$bulkhead" ] || { echo "no bulkhead binary at $bulkhead (cargo build --release -p bulkhead)" >&2; exit 1; }
for tool in runc podman python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

work=$(mktemp -d)
podman_image=localhost/bulkhead-bench:$$
cleanup() {
    podman rmi -f "$podman_image" >/dev/null 2>&1 || true
    "$bulkhead" --root "$work/root" ps -a -q --no-trunc 2>/dev/null | while read -r id; do
        "$bulkhead" --root "$work/root" rm -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# One root filesystem for all three.
"$here/scripts/busybox-rootfs.sh" "$work/rootfs.tar"
"$bulkhead" --root "$work/root" image import-rootfs "$work/rootfs.tar" --tag bench >/dev/null
podman import "$work/rootfs.tar" "$podman_image" >/dev/null
mkdir -p "$work/bundle/rootfs"
tar -C "$work/bundle/rootfs" -xf "$work/rootfs.tar"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
spec["root"] = {"path": "rootfs", "readonly": False}
json.dump(spec, open(path, "w"), indent=2)
PY

bulkhead_cmd=("$bulkhead" --root "$work/root" run --rm --network none bench true)
runc_cmd=(runc run -b "$work/bundle" "bench-$$")   # runc spec's default has its own netns with only lo
podman_cmd=(podman run --rm --network none --runtime runc
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$podman_image" true)

# Times one command N times (after warmups); prints the seconds of each run, one per line.
# One run of a command, in nanoseconds, appended to the tool's file.
time_one() {
    local out=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(( end - start )) >> "$out"
}

for ((i = 0; i < warmup; i++)); do
    "${bulkhead_cmd[@]}" >/dev/null; "${runc_cmd[@]}" >/dev/null; "${podman_cmd[@]}" >/dev/null
done
# Interleaved rounds with a rotating order, so neither machine load nor what the previous tool left
# running (podman's cleanup process) favours one tool.
run_tool() {
    case $1 in
        0) time_one "$work/bulkhead.ns" "${bulkhead_cmd[@]}" ;;
        1) time_one "$work/runc.ns" "${runc_cmd[@]}" ;;
        2) time_one "$work/podman.ns" "${podman_cmd[@]}" ;;
    esac
}
for ((i = 0; i < runs; i++)); do
    for ((k = 0; k < 3; k++)); do run_tool $(( (i + k) % 3 )); done
done

python3 - "$work" "$runs" <<'PY'
import statistics, sys
work, runs = sys.argv[1], sys.argv[2]
t = {name: [int(l) / 1e6 for l in open(f"{work}/{name}.ns")] for name in ("bulkhead", "runc", "podman")}
med = {k: statistics.median(v) for k, v in t.items()}
print(f"| tool (`run --rm IMAGE true`, {runs} runs) | median ms | min ms | bulkhead / tool |")
print("|---|---:|---:|---:|")
for k in ("bulkhead", "runc", "podman"):
    print(f"| {k} | {med[k]:.1f} | {min(t[k]):.1f} | {med['bulkhead'] / med[k]:.2f}x |")
print()
print(f"Goals: bulkhead/podman {med['bulkhead'] / med['podman']:.2f}x (<= 0.3x), "
      f"bulkhead/runc {med['bulkhead'] / med['runc']:.2f}x (<= 1.0x)")
PY
