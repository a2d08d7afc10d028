#!/usr/bin/env bash
# Networking and volume benchmarks (issue 10), peers measured side by side in one run:
#   1. `run --rm demo true` start time on the bridge versus `--network none`, in each isolation mode,
#      and `podman run --rm` on podman's default bridge network.
#      Goals: the bridge adds <= 5 ms in process mode; process mode on the bridge <= 0.3x podman.
#   2. TCP throughput host to container through a published port (`-p 127.0.0.1:PORT:80`): curl of a
#      1 GiB file served by busybox httpd, in each mode and in podman. Goal: process mode >= 0.9x podman.
#   3. VM mode: reading a 256 MiB file from a read-only bind mount (virtio-9p) versus the same size on
#      the container's own disk, each from a fresh guest (no guest page cache).
# Every bulkhead feature used (--network bridge, -p, -v in VM mode) is checked first: a missing one
# stops the script with the engine's error, never a silent skip. PEERS_ONLY=1 measures podman alone.
#
# Env: N (start runs per row, default 21; VM rows use N/2+1), XFERS (transfers per row, default 3),
#      READS (bind/disk reads per row, default 5), BULKHEAD (default the release build), PEERS_ONLY.
# Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-21}
XFERS=${XFERS:-3}
READS=${READS:-5}
PEERS_ONLY=${PEERS_ONLY:-}
BULKHEAD=$(realpath "${BULKHEAD:-target/x86_64-unknown-linux-gnu/release/bulkhead}")
[ "$(id -u)" = 0 ] || { echo "bench/net.sh: run as root" >&2; exit 1; }
for tool in podman curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/net.sh: missing $tool (scripts/deps.sh)" >&2; exit 1; }
done
[ -n "$PEERS_ONLY" ] || [ -x "$BULKHEAD" ] || {
  echo "bench/net.sh: no bulkhead binary at $BULKHEAD (cargo build --release -p bulkhead)" >&2; exit 1; }

work=$(mktemp -d /tmp/bulkhead-bench-net.XXXXXX)
root=$work/root
podman_image=localhost/bulkhead-bench-net:$$
podman_servers=()
cleanup() {
  for c in "${podman_servers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  podman rmi -f "$podman_image" >/dev/null 2>&1 || true
  if [ -x "$BULKHEAD" ]; then
    "$BULKHEAD" --root "$root" ps -aq 2>/dev/null | xargs -r "$BULKHEAD" --root "$root" rm -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
bh() { "$BULKHEAD" --root "$root" "$@"; }
# Podman needs rlimits it can set: root here lacks CAP_SYS_RESOURCE, so its defaults (above the hard
# limits) are refused. Same runtime as bench/run.sh.
podman_run=(podman run --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

scripts/busybox-rootfs.sh "$work/demo.tar"
podman import "$work/demo.tar" "$podman_image" >/dev/null 2>&1
mkdir -p "$work/share"
dd if=/dev/urandom of="$work/share/big" bs=1M count=256 status=none

# Runs a bulkhead command that needs a feature of issue 10; on failure, names the feature and stops.
require() {
  local feature=$1; shift
  local err
  if ! err=$("$@" 2>&1 >/dev/null); then
    echo "bench/net.sh: bulkhead cannot do $feature yet: $err" >&2
    exit 1
  fi
}
if [ -z "$PEERS_ONLY" ]; then
  bh image import-rootfs "$work/demo.tar" --tag demo >/dev/null
  accel=$(bh info | sed -n 's/^VM Accelerator: //p')
  for iso in process vm; do
    require "--network bridge ($iso isolation)" bh run --rm --isolation=$iso --network bridge demo true
    require "-v HOST:PATH:ro ($iso isolation)" bh run --rm --isolation=$iso -v "$work/share:/share:ro" demo test -s /share/big
  done
fi

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Times rows of "label<TAB>command" interleaved (the order rotates each round, so load and what one
# tool leaves running do not favour another); prints a markdown table with the ratio to the first row.
time_rows() {
  python3 - "$@" <<'PY'
import statistics, subprocess, sys, time
runs, rows = int(sys.argv[1]), [r.split("\t", 1) for r in sys.argv[2:]]
for _, cmd in rows:  # warm-up (builds the initramfs, fills caches)
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
times = {label: [] for label, _ in rows}
for i in range(runs):
    for k in range(len(rows)):
        label, cmd = rows[(i + k) % len(rows)]
        start = time.monotonic()
        subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
        times[label].append((time.monotonic() - start) * 1000)
first = statistics.median(times[rows[0][0]])
print(f"| `run --rm demo true` ({runs} runs) | median ms | min ms | vs first row |")
print("|---|---:|---:|---:|")
for label, _ in rows:
    med = statistics.median(times[label])
    print(f"| {label} | {med:.1f} | {min(times[label]):.1f} | {med - first:+.1f} ms ({med / first:.2f}x) |")
PY
}

echo "### Start time: bridge versus no network"
echo
podman_start="${podman_run[*]} --rm $podman_image true"
if [ -n "$PEERS_ONLY" ]; then
  time_rows "$N" "podman, default network	$podman_start"
else
  echo "Process isolation, and podman on its default network (CNI bridge, runc), interleaved:"
  echo
  time_rows "$N" \
    "bulkhead, --network none	$BULKHEAD --root $root run --rm --network none demo true" \
    "bulkhead, --network bridge	$BULKHEAD --root $root run --rm --network bridge demo true" \
    "podman, default network	$podman_start"
  echo
  echo "VM isolation ($accel), interleaved:"
  echo
  time_rows $((N / 2 + 1)) \
    "bulkhead vm, --network none	$BULKHEAD --root $root run --rm --isolation=vm --network none demo true" \
    "bulkhead vm, --network bridge	$BULKHEAD --root $root run --rm --isolation=vm --network bridge demo true"
fi
echo

# Serves a 1 GiB file written inside the container (its own disk, so only the network is measured) with
# busybox httpd on port 80.
serve='mkdir -p /srv && dd if=/dev/zero of=/srv/big bs=1M count=1024 2>/dev/null && exec httpd -f -p 80 -h /srv'

# Fetches http://127.0.0.1:PORT/big XFERS times once it is served; prints MiB/s per transfer.
fetch() {
  local port=$1 deadline=$((SECONDS + 300)) code
  until code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/big") && [ "$code" = 200 ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench/net.sh: nothing served on port $port" >&2; exit 1; }
    sleep 0.5
  done
  for _ in $(seq "$XFERS"); do
    curl -s -o /dev/null -w '%{size_download} %{speed_download}\n' "http://127.0.0.1:$port/big" |
      awk '$1 != 1073741824 { print "bench/net.sh: short transfer: " $1 " bytes" > "/dev/stderr"; exit 1 }
           { printf "%.1f\n", $2 / 1048576 }'
  done
}

xfer_rows=()
# One row of the throughput table: "label<TAB>MiB/s of each transfer".
xfer_row() { xfer_rows+=("$1	$(tr '\n' ' ')"); }

port=$(free_port)
name=bench-net-$$
podman_servers+=("$name")
"${podman_run[@]}" -d --name "$name" -p "127.0.0.1:$port:80" "$podman_image" sh -c "$serve" >/dev/null
fetch "$port" > "$work/xfer"
xfer_row "podman, default network" < "$work/xfer"
podman rm -f -t 0 "$name" >/dev/null
if [ -z "$PEERS_ONLY" ]; then
  for iso in process vm; do
    port=$(free_port)
    id=$(bh run -d --isolation=$iso --network bridge -p "127.0.0.1:$port:80" demo sh -c "$serve")
    fetch "$port" > "$work/xfer"
    xfer_row "bulkhead $iso, --network bridge" < "$work/xfer"
    bh rm -f "$id" >/dev/null
  done
fi

echo "### TCP throughput through a published port"
echo
echo "curl on the host fetching a 1 GiB file from busybox httpd in the container via"
echo "\`-p 127.0.0.1:PORT:80\`; $XFERS transfers each."
echo
python3 - "${xfer_rows[@]}" <<'PY'
import statistics, sys
rows = [(label, [float(x) for x in v.split()]) for label, v in (r.split("\t", 1) for r in sys.argv[1:])]
podman = statistics.median(rows[0][1])
print("| server | median MiB/s | min MiB/s | vs podman |")
print("|---|---:|---:|---:|")
for label, v in rows:
    print(f"| {label} | {statistics.median(v):.0f} | {min(v):.0f} | {statistics.median(v) / podman:.2f}x |")
PY
echo
[ -z "$PEERS_ONLY" ] || exit 0

echo "### VM isolation: a read-only bind mount (virtio-9p) versus the container's own disk"
echo
# A fresh guest per read (every run boots one), so the guest's page cache holds nothing; the host's
# page cache holds the shared file and the disk image alike.
read_cmd='time dd if=$0 of=/dev/null bs=1M'
seconds() { sed -n 's/^real[[:space:]]*\([0-9]*\)m \([0-9.]*\)s$/\1 \2/p' | awk '{ print $1 * 60 + $2 }'; }
disk=$(bh create --isolation=vm demo sh -c 'if [ -f /big ]; then time dd if=/big of=/dev/null bs=1M; else dd if=/dev/zero of=/big bs=1M count=256 2>/dev/null && sync; fi')
bh start -a "$disk" >/dev/null
bind_s=() disk_s=()
for _ in $(seq "$READS"); do
  bind_s+=("$(bh run --rm --isolation=vm -v "$work/share:/share:ro" demo sh -c "$read_cmd" /share/big 2>&1 | seconds)")
  disk_s+=("$(bh start -a "$disk" 2>&1 | seconds)")
done
python3 - "${bind_s[*]}" "${disk_s[*]}" "$READS" <<'PY'
import statistics, sys
bind, disk, n = [float(x) for x in sys.argv[1].split()], [float(x) for x in sys.argv[2].split()], sys.argv[3]
print(f"| 256 MiB read in the guest (`dd bs=1M`, {n} reads) | median s | MiB/s | vs own disk |")
print("|---|---:|---:|---:|")
d = statistics.median(disk)
for label, v in (("container's own disk (virtio-blk, ext4)", disk), ("read-only bind mount (virtio-9p)", bind)):
    m = statistics.median(v)
    print(f"| {label} | {m:.2f} | {256 / m:.0f} | {d / m:.2f}x |")
PY
