#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 60) each, starting from its committed
# seed corpus (fuzz/seeds/<target>/), and fails on the first crash; libFuzzer leaves the input under
# fuzz/artifacts/<target>/, and it becomes a unit test of the crate concerned. What a run discovers goes
# to a scratch corpus, so the committed seeds change only by hand.
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take the -Z sanitizer flags cargo-fuzz passes. The
# workspace's crt-static rustflags do not apply (cargo-fuzz sets RUSTFLAGS, which take precedence).
# Every dependency is rebuilt with AddressSanitizer and coverage (about 14 CPU-minutes), so the build is
# kept across checkouts in FUZZ_TARGET_DIR, beside the cached guest kernel: later runs rebuild only the
# workspace's own crates.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
target_dir="${FUZZ_TARGET_DIR:-/var/cache/bulkhead/fuzz-target}"
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: run scripts/deps.sh" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
# The layer target unpacks into a fresh temporary directory per input: on tmpfs it runs twice as fast.
[ -d /dev/shm ] && export TMPDIR=/dev/shm
echo "==> cargo fuzz build (into $target_dir)"
mkdir -p "$target_dir"
cargo fuzz build --target-dir "$target_dir"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  echo "==> fuzz $target for ${seconds}s"
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo fuzz run --target-dir "$target_dir" "$target" "$scratch/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target crashed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | tr '\n' ' '
  echo
done
echo "fuzz: every target ran ${seconds}s without a crash"
