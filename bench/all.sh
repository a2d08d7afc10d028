#!/usr/bin/env bash
# Produces docs/BENCHMARKS.md: builds the release binary, then runs every benchmark on this machine.
# Usage: bench/all.sh  (as root; takes several minutes, VM ones under TCG keep cores busy)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
cargo build --release -p bulkhead-cli >/dev/null 2>&1
export BULKHEAD=$PWD/target/x86_64-unknown-linux-gnu/release/bulkhead
out=docs/BENCHMARKS.md
tmp=$(mktemp)
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`bench/all.sh\` on $(date -u +%Y-%m-%d). Every figure is a median of several runs;"
  echo "peers are measured in the same run, side by side."
  echo
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),"
  echo "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"),"
  echo "cgroups $(stat -fc %T /sys/fs/cgroup | sed 's/tmpfs/v1 (hybrid)/;s/cgroup2fs/v2/')."
  echo "VM accelerator: $("$BULKHEAD" --root "$(mktemp -d)" info | sed -n 's/^VM Accelerator: //p')."
  echo
  echo "## Pull and unpack (bench/pull.sh)"
  echo
  bench/pull.sh
  echo
  echo "## Container start, process isolation (bench/run.sh)"
  echo
  bench/run.sh
  echo
  echo "## VM isolation (bench/vm.sh)"
  echo
  bench/vm.sh
} > "$tmp"
mv "$tmp" "$out"
echo "wrote $out"
