#!/usr/bin/env bash
# Before/after: two bulkhead builds run `run --rm --isolation=MODE demo true` in alternating pairs (the
# order flips every pair), each in its own root with the same demo image. Prints both medians and minima
# and the median of the paired differences, which cancels most of the machine's drift between runs.
#
# Usage: bench/compare.sh OLD_BINARY NEW_BINARY [process|vm] [pairs]   (default vm, 21 pairs; as root)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: bench/compare.sh OLD_BINARY NEW_BINARY [process|vm] [pairs]}
new=${2:?usage: bench/compare.sh OLD_BINARY NEW_BINARY [process|vm] [pairs]}
mode=${3:-vm}
pairs=${4:-21}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for b in "$old" "$new"; do [ -x "$b" ] || { echo "not executable: $b" >&2; exit 1; }; done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/scripts/busybox-rootfs.sh" "$work/rootfs.tar" >/dev/null
"$old" --root "$work/old" image import-rootfs "$work/rootfs.tar" --tag demo >/dev/null
"$new" --root "$work/new" image import-rootfs "$work/rootfs.tar" --tag demo >/dev/null

# Microseconds one run takes.
one() {
    local start end
    start=$(date +%s%N)
    "$1" --root "$2" run --rm --isolation="$mode" demo true
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
}
# One warm-up each (the VM mode builds each binary's initramfs on first use).
one "$old" "$work/old" >/dev/null
one "$new" "$work/new" >/dev/null
for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) = 0 ]; then
        o=$(one "$old" "$work/old"); n=$(one "$new" "$work/new")
    else
        n=$(one "$new" "$work/new"); o=$(one "$old" "$work/old")
    fi
    echo "$o $n"
done >"$work/pairs"

python3 - "$work/pairs" "$mode" "$pairs" <<'PY'
import statistics, sys
pairs = [tuple(int(x) / 1000 for x in line.split()) for line in open(sys.argv[1])]
old = [o for o, _ in pairs]
new = [n for _, n in pairs]
diff = [n - o for o, n in pairs]
print(f"| `run --rm --isolation={sys.argv[2]}`, {sys.argv[3]} pairs | median ms | min ms |")
print("|---|---:|---:|")
print(f"| old | {statistics.median(old):.1f} | {min(old):.1f} |")
print(f"| new | {statistics.median(new):.1f} | {min(new):.1f} |")
print()
print(f"Median paired difference (new - old): {statistics.median(diff):+.1f} ms; "
      f"new faster in {sum(d < 0 for d in diff)} of {len(diff)} pairs.")
PY
