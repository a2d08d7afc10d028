#!/usr/bin/env bash
# The Docker Engine API's cost: `docker run --rm IMAGE true` through `bulkhead serve` against
# `bulkhead run --rm IMAGE true` directly, and against the same docker CLI command talking to podman's
# Docker-compatible service (`podman system service`) with the same image. Then the server's memory:
# idle, and with 100 running containers. Issue 11's goals: the API adds <= 20 % to the direct CLI;
# through the docker CLI bulkhead is <= 0.3x podman's service.
#
# Usage: bench/api.sh [runs]          (default 20, after 2 warmup runs each)
# Env:   BULKHEAD=path/to/bulkhead    (default target/x86_64-unknown-linux-gnu/release/bulkhead)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
warmup=2
bulkhead=${BULKHEAD:-$here/target/x86_64-unknown-linux-gnu/release/bulkhead}
[ -x "$bulkhead" ] || { echo "no bulkhead binary at $bulkhead (cargo build --release -p bulkhead)" >&2; exit 1; }
for tool in docker podman python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

work=$(mktemp -d)
podman_image=localhost/bulkhead-bench-api:$$
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    podman rmi -f "$podman_image" >/dev/null 2>&1 || true
    "$bulkhead" --root "$work/root" ps -a -q --no-trunc 2>/dev/null | while read -r id; do
        "$bulkhead" --root "$work/root" rm -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

"$here/scripts/busybox-rootfs.sh" "$work/rootfs.tar"
"$bulkhead" --root "$work/root" image import-rootfs "$work/rootfs.tar" --tag bench >/dev/null
podman import "$work/rootfs.tar" "$podman_image" >/dev/null
mkdir -p "$work/docker-config"
export DOCKER_CONFIG=$work/docker-config

"$bulkhead" --root "$work/root" serve -H "unix://$work/bulkhead.sock" 2>"$work/serve.log" &
server=$!
pids+=("$server")
podman system service --time=0 "unix://$work/podman.sock" 2>"$work/podman.log" &
pids+=("$!")
for sock in bulkhead podman; do
    for _ in $(seq 100); do
        docker -H "unix://$work/$sock.sock" version >/dev/null 2>&1 && break
        sleep 0.1
    done
done

direct_cmd=("$bulkhead" --root "$work/root" run --rm --network none bench true)
api_cmd=(docker -H "unix://$work/bulkhead.sock" run --rm --network none bench true)
# podman needs these where root lacks CAP_SYS_RESOURCE (see the developers' guide).
# The docker CLI's own floor: one Go process and two requests, no container.
floor_cmd=(docker -H "unix://$work/bulkhead.sock" version)
podman_cmd=(docker -H "unix://$work/podman.sock" run --rm --network none
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$podman_image" true)

time_one() {
    local out=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(( end - start )) >> "$out"
}
run_tool() {
    case $1 in
        0) time_one "$work/direct.ns" "${direct_cmd[@]}" ;;
        1) time_one "$work/api.ns" "${api_cmd[@]}" ;;
        2) time_one "$work/podman.ns" "${podman_cmd[@]}" ;;
        3) time_one "$work/floor.ns" "${floor_cmd[@]}" ;;
    esac
}
for ((i = 0; i < warmup; i++)); do
    "${direct_cmd[@]}" >/dev/null; "${api_cmd[@]}" >/dev/null; "${podman_cmd[@]}" >/dev/null
done
for ((i = 0; i < runs; i++)); do
    for ((k = 0; k < 4; k++)); do run_tool $(( (i + k) % 4 )); done
done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
idle=$(rss_kib "$server")
for i in $(seq 100); do
    docker -H "unix://$work/bulkhead.sock" run -d --network none --name "idle-$i" bench sleep 600 >/dev/null
done
docker -H "unix://$work/bulkhead.sock" ps -q >/dev/null
busy=$(rss_kib "$server")
running=$(docker -H "unix://$work/bulkhead.sock" ps -q | wc -l)

python3 - "$work" "$runs" "$idle" "$busy" "$running" <<'PY'
import statistics, sys
work, runs, idle, busy, running = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
names = {"direct": "`bulkhead run --rm`", "api": "`docker run --rm` → bulkhead serve",
         "podman": "`docker run --rm` → podman system service",
         "floor": "`docker version` → bulkhead serve (the docker CLI's floor)"}
t = {k: [int(l) / 1e6 for l in open(f"{work}/{k}.ns")] for k in names}
med = {k: statistics.median(v) for k, v in t.items()}
print(f"| path (IMAGE true, --network none, {runs} runs) | median ms | min ms | vs direct |")
print("|---|---:|---:|---:|")
for k, label in names.items():
    print(f"| {label} | {med[k]:.1f} | {min(t[k]):.1f} | {med[k] / med['direct']:.2f}x |")
print()
print(f"Goals: the API adds {100 * (med['api'] / med['direct'] - 1):.0f} % to the direct CLI (<= 20 %); "
      f"through the docker CLI bulkhead is {med['api'] / med['podman']:.2f}x podman's service (<= 0.3x).")
print(f"The docker CLI's own process costs {med['floor']:.1f} ms before any container work (`docker version`); "
      f"`docker run` adds four requests and the wait for the removal (`--rm`) the direct CLI does not wait for.")
print()
print(f"`bulkhead serve` resident memory: {idle / 1024:.1f} MiB idle, {busy / 1024:.1f} MiB with "
      f"{running} running containers (after `docker ps` listed them).")
PY
