#!/usr/bin/env bash
# Process-isolation start-to-exit latency: `bulkhead run --rm IMAGE true` against `runc run` of the
# same root filesystem as a bundle and `podman run --rm` of the same image imported into podman.
# Issue 13's goals: with no network, bulkhead <= 1.0x runc (runc spec's default bundle has its own empty
# network namespace) and <= 0.25x podman; on the default bridge against podman's bridge network; and
# how the start time grows with other containers running.
#
# Usage: bench/run.sh [runs]          (default 20, after 2 warmup runs each)
# Env:   BULKHEAD=path/to/bulkhead    (default target/x86_64-unknown-linux-gnu/release/bulkhead)
#        SCALE="0 100 500"            (numbers of other running containers for the growth table)
# Prints markdown tables: median and min per tool and network, the ratios, and the growth.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
warmup=2
scale=${SCALE:-0 100 500}
bulkhead=${BULKHEAD:-$here/target/x86_64-unknown-linux-gnu/release/bulkhead}
[ -x "$bulkhead" ] || { echo "no bulkhead binary at $bulkhead (cargo build --release -p bulkhead)" >&2; exit 1; }
for tool in runc podman; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
# pyenv shims on PATH may lack a default interpreter; the system one is enough here.
python=/usr/bin/python3
[ -x "$python" ] || python=python3
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

work=$(mktemp -d)
root=$work/root
podman_image=localhost/bulkhead-bench:$$
cleanup() {
    podman rmi -f "$podman_image" >/dev/null 2>&1 || true
    # One call for all: a few hundred background containers are removed in one go.
    mapfile -t ids < <("$bulkhead" --root "$root" ps -a -q --no-trunc 2>/dev/null)
    if [ "${#ids[@]}" -gt 0 ]; then
        "$bulkhead" --root "$root" rm -f "${ids[@]}" >/dev/null 2>&1 || true
    fi
    "$bulkhead" --root "$root" image rm bench >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# One root filesystem for all three.
"$here/scripts/busybox-rootfs.sh" "$work/rootfs.tar"
"$bulkhead" --root "$root" image import-rootfs "$work/rootfs.tar" --tag bench >/dev/null
podman import "$work/rootfs.tar" "$podman_image" >/dev/null
mkdir -p "$work/bundle/rootfs"
tar -C "$work/bundle/rootfs" -xf "$work/rootfs.tar"
(cd "$work/bundle" && runc spec)
"$python" - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
spec["root"] = {"path": "rootfs", "readonly": False}
json.dump(spec, open(path, "w"), indent=2)
PY

# podman's runc cannot raise RLIMIT_NOFILE/NPROC past this machine's hard limits (no CAP_SYS_RESOURCE).
podman_run=(podman run --rm --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
declare -A cmds
cmds[bulkhead-none]="$bulkhead --root $root run --rm --network none bench true"
cmds[runc-none]="runc run -b $work/bundle bench-$$"
cmds[podman-none]="${podman_run[*]} --network none $podman_image true"
cmds[bulkhead-bridge]="$bulkhead --root $root run --rm bench true"
cmds[podman-bridge]="${podman_run[*]} --network bridge $podman_image true"
order=(bulkhead-none runc-none podman-none bulkhead-bridge podman-bridge)

# podman's bridge needs its network backend (netavark or CNI plugins) working here; if it does not,
# the row is left out and the output says why.
bridge_note=""
if ! out=$(${cmds[podman-bridge]} 2>&1); then
    bridge_note="podman --network bridge does not work on this machine, row skipped: $(echo "$out" | tail -1)"
    order=(bulkhead-none runc-none podman-none bulkhead-bridge)
fi

# One run of a command, in nanoseconds, appended to its file.
time_one() {
    local out=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(( end - start )) >> "$out"
}

for ((i = 0; i < warmup; i++)); do
    for name in "${order[@]}"; do ${cmds[$name]} >/dev/null; done
done
# Interleaved rounds with a rotating order, so neither machine load nor what the previous tool left
# running (podman's cleanup process) favours one tool.
n=${#order[@]}
for ((i = 0; i < runs; i++)); do
    for ((k = 0; k < n; k++)); do
        name=${order[$(( (i + k) % n ))]}
        # shellcheck disable=SC2086 # the commands are word lists without spaces inside words
        time_one "$work/$name.ns" ${cmds[$name]}
    done
done

# Growth: the same no-network run with N other containers running (`run -d --network none bench sleep
# 3600`), N in $scale. The first failure to start one ends the series there, with its reason.
running=0
scale_note=""
for target in $scale; do
    while [ "$running" -lt "$target" ]; do
        if ! out=$("$bulkhead" --root "$root" run -d --network none bench sleep 3600 2>&1); then
            scale_note="container $((running + 1)) of $target could not start: $(echo "$out" | tail -1)"
            break 2
        fi
        running=$((running + 1))
    done
    for ((i = 0; i < warmup; i++)); do ${cmds[bulkhead-none]} >/dev/null; done
    for ((i = 0; i < runs; i++)); do
        # shellcheck disable=SC2086
        time_one "$work/scale-$target.ns" ${cmds[bulkhead-none]}
    done
    echo "$target" >> "$work/scale.levels"
done

"$python" - "$work" "$runs" "${order[*]}" "$bridge_note" "$scale_note" <<'PY'
import os, statistics, sys
work, runs, order, bridge_note, scale_note = sys.argv[1:6]
order = order.split()
def load(name):
    return [int(l) / 1e6 for l in open(f"{work}/{name}.ns")]
t = {name: load(name) for name in order}
med = {k: statistics.median(v) for k, v in t.items()}
print(f"| `run --rm IMAGE true` ({runs} runs, interleaved) | network | median ms | min ms |")
print("|---|---|---:|---:|")
for k in order:
    tool, net = k.split("-")
    print(f"| {tool} | {net} | {med[k]:.1f} | {min(t[k]):.1f} |")
print()
print("| ratio | value | goal |")
print("|---|---:|---|")
print(f"| bulkhead / runc, no network | {med['bulkhead-none'] / med['runc-none']:.2f}x | <= 1.0x |")
print(f"| bulkhead / podman, no network | {med['bulkhead-none'] / med['podman-none']:.2f}x | <= 0.25x |")
if "podman-bridge" in med:
    print(f"| bulkhead / podman, bridge | {med['bulkhead-bridge'] / med['podman-bridge']:.2f}x | <= 0.25x |")
print()
if bridge_note:
    print(bridge_note)
    print()
levels = open(f"{work}/scale.levels").read().split() if os.path.exists(f"{work}/scale.levels") else []
if levels:
    base = statistics.median(load(f"scale-{levels[0]}"))
    print(f"| other containers running | `run --rm --network none IMAGE true` median ms | min ms | vs {levels[0]} running |")
    print("|---:|---:|---:|---:|")
    for lvl in levels:
        v = load(f"scale-{lvl}")
        m = statistics.median(v)
        print(f"| {lvl} | {m:.1f} | {min(v):.1f} | {m / base:.2f}x |")
    print()
if scale_note:
    print(scale_note)
PY
