#!/usr/bin/env bash
# Pull benchmark: `bulkhead pull` (fetch + build the rootfs artifact) versus
# `skopeo copy` + `umoci unpack`, both from a local docker-registry on 127.0.0.1.
#
# Builds a 4-layer image (busybox + ~40 MB of incompressible data, one whiteout),
# pushes it with skopeo, times N runs of each side with a fresh destination per run
# (cleanup is not timed) and prints a markdown table of medians.
#
# Environment: N (runs, default 5), BULKHEAD (binary, default
# target/x86_64-unknown-linux-gnu/release/bulkhead), LAYER_MB (size of each data
# layer, default 14). Needs docker-registry, skopeo, umoci, busybox-static.
set -euo pipefail

N=${N:-5}
BULKHEAD=${BULKHEAD:-target/x86_64-unknown-linux-gnu/release/bulkhead}
LAYER_MB=${LAYER_MB:-14}

for tool in docker-registry skopeo umoci curl; do
    command -v "$tool" >/dev/null || { echo "pull.sh: $tool not found" >&2; exit 1; }
done
[[ -x /bin/busybox ]] || { echo "pull.sh: /bin/busybox (busybox-static) not found" >&2; exit 1; }
have_bulkhead=1
if [[ ! -x "$BULKHEAD" ]]; then
    echo "pull.sh: $BULKHEAD not found or not executable; timing skopeo+umoci only" >&2
    have_bulkhead=0
fi

WORK=$(mktemp -d /tmp/bulkhead-bench-pull.XXXXXX)
REGISTRY_PID=
cleanup() {
    if [[ -n "$REGISTRY_PID" ]]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "pull.sh: no free port found" >&2
    exit 1
}

# --- registry -----------------------------------------------------------------
PORT=$(free_port)
cat >"$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 200); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    kill -0 "$REGISTRY_PID" 2>/dev/null || { cat "$WORK/registry.log" >&2; exit 1; }
    sleep 0.05
done

# --- image: one umoci repack per layer ------------------------------------------
IMG="$WORK/src"
umoci init --layout "$IMG"
umoci new --image "$IMG:bench"
umoci unpack --image "$IMG:bench" "$WORK/build" >/dev/null
ROOTFS="$WORK/build/rootfs"
add_layer() {
    umoci repack --image "$IMG:bench" "$WORK/build" >/dev/null
}
mkdir -p "$ROOTFS/bin" "$ROOTFS/etc" "$ROOTFS/data"
cp /bin/busybox "$ROOTFS/bin/busybox"
for applet in sh ls cat echo true; do ln -sf busybox "$ROOTFS/bin/$applet"; done
echo bench >"$ROOTFS/etc/hostname"
add_layer
head -c "$((LAYER_MB * 1024 * 1024))" /dev/urandom >"$ROOTFS/data/a.bin"
echo obsolete >"$ROOTFS/etc/obsolete.conf"
add_layer
head -c "$((LAYER_MB * 1024 * 1024))" /dev/urandom >"$ROOTFS/data/b.bin"
for i in $(seq 200); do echo "file $i" >"$ROOTFS/data/small-$i.txt"; done
add_layer
rm "$ROOTFS/etc/obsolete.conf"
head -c "$((LAYER_MB * 1024 * 1024 / 2))" /dev/urandom >"$ROOTFS/data/c.bin"
add_layer
umoci config --image "$IMG:bench" --config.cmd /bin/sh --config.env PATH=/bin
umoci gc --layout "$IMG"
SIZE_MB=$(du -sm "$IMG/blobs" | cut -f1)
skopeo copy -q --dest-tls-verify=false "oci:$IMG:bench" "docker://127.0.0.1:$PORT/bench/img:latest"

# --- timing ---------------------------------------------------------------------
now_ns() { date +%s%N; }

# median_s NS... -> median in seconds with 3 decimals
median_s() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.3f", m / 1e9 }'
}

run_bulkhead() {
    "$BULKHEAD" --root "$WORK/bh-root" pull "localhost:$PORT/bench/img:latest" >/dev/null 2>"$WORK/bulkhead.err" ||
        { cat "$WORK/bulkhead.err" >&2; return 1; }
}
run_skopeo_umoci() {
    skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/img:latest" "oci:$WORK/dst:latest" &&
        umoci unpack --image "$WORK/dst:latest" "$WORK/bundle" >/dev/null
}
reset_destinations() { rm -rf "$WORK/bh-root" "$WORK/dst" "$WORK/bundle"; }

# time_runs NAME FUNCTION: one untimed warm-up, then N timed runs; sets TIMES.
time_runs() {
    local fn=$2
    TIMES=()
    reset_destinations
    "$fn"
    for i in $(seq "$N"); do
        reset_destinations
        sync
        local start end
        start=$(now_ns)
        "$fn"
        end=$(now_ns)
        TIMES+=($((end - start)))
        echo "$1 run $i: $(median_s "$((end - start))") s" >&2
    done
}

skopeo_median=
bulkhead_median=
time_runs "skopeo+umoci" run_skopeo_umoci
skopeo_median=$(median_s "${TIMES[@]}")
if ((have_bulkhead)); then
    time_runs "bulkhead" run_bulkhead
    bulkhead_median=$(median_s "${TIMES[@]}")
fi
reset_destinations

echo
echo "Pull of a 4-layer image (${SIZE_MB} MB of blobs) from docker-registry on 127.0.0.1, median of $N runs:"
echo
echo "| command | median (s) |"
echo "|---|---|"
echo "| \`bulkhead pull\` (fetch + rootfs artifact) | ${bulkhead_median:-n/a} |"
echo "| \`skopeo copy\` + \`umoci unpack\` | $skopeo_median |"
if [[ -n "$bulkhead_median" ]]; then
    ratio=$(awk -v a="$bulkhead_median" -v b="$skopeo_median" 'BEGIN { printf "%.2f", a / b }')
    echo
    echo "bulkhead / (skopeo + umoci) = ${ratio}x (lower is better for bulkhead)"
fi
