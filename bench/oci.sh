#!/usr/bin/env bash
# The OCI runtime through its real callers: `podman run --rm IMAGE true` and `ctr run --rm IMAGE ID true`
# with bulkhead-runc against runc, interleaved in rotating order; and the same with bulkhead-runc-vm
# (VM isolation) for the time to a finished workload. Issue 12's goals: process mode <= 1.1x runc
# through each caller; VM mode set against Kata's published 0.39-0.71 s to workload.
#
# Usage: bench/oci.sh [runs] [vm-runs]   (default 15 and 5, after a warmup run each)
# Env:   BULKHEAD=path/to/bulkhead       (default target/x86_64-unknown-linux-gnu/release/bulkhead)
# Starts its own containerd (scratch root, state and socket; no CRI plugin). Prints markdown tables.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-15}
vm_runs=${2:-5}
bulkhead=${BULKHEAD:-$here/target/x86_64-unknown-linux-gnu/release/bulkhead}
[ -x "$bulkhead" ] || { echo "no bulkhead binary at $bulkhead (cargo build --release -p bulkhead)" >&2; exit 1; }
for tool in runc podman containerd ctr python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

work=$(mktemp -d)
bin=$work/bin
mkdir -p "$bin"
ln -s "$bulkhead" "$bin/bulkhead-runc"
ln -s "$bulkhead" "$bin/bulkhead-runc-vm"
podman_image=localhost/bulkhead-oci-bench:$$
sock=$work/containerd.sock
cleanup() {
    [ -n "${containerd_pid:-}" ] && kill "$containerd_pid" 2>/dev/null && wait "$containerd_pid" 2>/dev/null
    podman rmi -f "$podman_image" >/dev/null 2>&1 || true
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$here/scripts/busybox-rootfs.sh" "$work/rootfs.tar"
podman import "$work/rootfs.tar" "$podman_image" >/dev/null
"$bulkhead" --root "$work/bulkhead" image import-rootfs "$work/rootfs.tar" --tag oci-bench:latest >/dev/null
"$bulkhead" --root "$work/bulkhead" image export oci-bench:latest "$work/image.tar"

cat > "$work/containerd.toml" <<TOML
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr -a "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$sock" -n bench image import --index-name oci-bench:latest "$work/image.tar" >/dev/null
ctr_image=$(ctr -a "$sock" -n bench image ls -q | head -1)

ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
podman_cmd() { podman run --rm --network none "${ulimits[@]}" --runtime "$1" "${@:2}" "$podman_image" true; }
ctr_cmd() { ctr -a "$sock" -n bench run --rm --runc-binary "$1" "$ctr_image" "bench-$RANDOM$RANDOM" true; }

time_one() {
    local out=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(( end - start )) >> "$out"
}

run_case() {
    case $1 in
        0) time_one "$work/podman-bulkhead.ns" podman_cmd "$bin/bulkhead-runc" ;;
        1) time_one "$work/podman-runc.ns" podman_cmd "$(command -v runc)" ;;
        2) time_one "$work/ctr-bulkhead.ns" ctr_cmd "$bin/bulkhead-runc" ;;
        3) time_one "$work/ctr-runc.ns" ctr_cmd "$(command -v runc)" ;;
    esac
}
for k in 0 1 2 3; do run_case $k; done   # warmup
rm -f "$work"/*.ns
for ((i = 0; i < runs; i++)); do
    for ((k = 0; k < 4; k++)); do run_case $(( (i + k) % 4 )); done
done

# VM isolation: the -vm link; a warmup, then alternating callers.
podman_cmd "$bin/bulkhead-runc-vm" >/dev/null
for ((i = 0; i < vm_runs; i++)); do
    time_one "$work/podman-vm.ns" podman_cmd "$bin/bulkhead-runc-vm"
    time_one "$work/ctr-vm.ns" ctr_cmd "$bin/bulkhead-runc-vm"
done

python3 - "$work" "$runs" "$vm_runs" <<'PY'
import statistics, sys
work, runs, vm_runs = sys.argv[1], sys.argv[2], sys.argv[3]
def ms(name):
    return [int(l) / 1e6 for l in open(f"{work}/{name}.ns")]
t = {n: ms(n) for n in ("podman-bulkhead", "podman-runc", "ctr-bulkhead", "ctr-runc", "podman-vm", "ctr-vm")}
med = {k: statistics.median(v) for k, v in t.items()}
print(f"| caller, runtime (`IMAGE true`, {runs} runs, process isolation) | median ms | min ms | bulkhead / runc |")
print("|---|---:|---:|---:|")
for caller in ("podman", "ctr"):
    for rt in ("runc", "bulkhead"):
        k = f"{caller}-{rt}"
        ratio = f"{med[k] / med[caller + '-runc']:.2f}x" if rt == "bulkhead" else ""
        print(f"| `{caller} run --rm`, {rt} | {med[k]:.1f} | {min(t[k]):.1f} | {ratio} |")
print()
print(f"Goal <= 1.1x runc: podman {med['podman-bulkhead'] / med['podman-runc']:.2f}x, "
      f"ctr {med['ctr-bulkhead'] / med['ctr-runc']:.2f}x.")
print()
print(f"| caller, `bulkhead-runc-vm` (`IMAGE true`, {vm_runs} runs, VM isolation) | median s | min s |")
print("|---|---:|---:|")
for caller in ("podman", "ctr"):
    k = f"{caller}-vm"
    print(f"| `{caller} run --rm` | {med[k] / 1e3:.2f} | {min(t[k]) / 1e3:.2f} |")
PY
