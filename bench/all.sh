#!/usr/bin/env bash
# Produces docs/BENCHMARKS.md: builds the release binary, then runs every benchmark on this machine.
# Usage: bench/all.sh  (as root; takes several minutes, VM ones under TCG keep cores busy)
# Env:   BASELINE=path/to/an/older/bulkhead adds a before/after section (bench/compare.sh, both modes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
cargo build --release -p bulkhead >/dev/null 2>&1
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
  echo "Goal (issue 2): bulkhead <= 1.0x skopeo + umoci."
  bench/pull.sh
  echo
  echo "## Container start, process isolation (bench/run.sh)"
  echo
  echo "Goals (issues 3 and 13): <= 1.0x runc and <= 0.25x podman without a network, <= 0.25x podman on"
  echo "the bridge; start time with 0, 100 and 500 other containers running. Tools interleaved in rotating order."
  echo
  bench/run.sh
  echo
  echo "## VM isolation (bench/vm.sh)"
  echo
  echo "Goals (issue 4): run <= 1.3x the floor, floor <= 1.2 s, <= 64 MiB per idle vm container beyond"
  echo "guest RAM, 20 vm containers at once all correct."
  echo
  bench/vm.sh
  echo
  echo "## Switching a VM-written container to process isolation (bench/switch.sh)"
  echo
  echo "The host never mounts a disk a VM wrote; the switch takes its content back through an export VM."
  echo
  bench/switch.sh
  echo
  echo "## Networks and volumes (bench/net.sh)"
  echo
  echo "Goals (issue 10): the bridge adds <= 5 ms to a process-mode start, which stays <= 0.3x podman's;"
  echo "published-port throughput in process mode >= 0.9x podman's; VM mode and the 9p share measured."
  echo
  bench/net.sh
  echo
  echo "## The Docker Engine API (bench/api.sh)"
  echo
  echo "Goals (issue 11): the API adds <= 20 % to the direct CLI; through the docker CLI bulkhead is"
  echo "<= 0.3x podman's Docker-compatible service. Paths interleaved in rotating order."
  echo
  bench/api.sh
  echo
  echo "## The OCI runtime through its callers (bench/oci.sh)"
  echo
  echo "Goals (issue 12): process mode <= 1.1x runc through podman and through containerd's ctr; VM mode"
  echo "set against Kata's published 0.39-0.71 s to workload (with KVM; TCG here)."
  echo
  bench/oci.sh
  if [ -n "${BASELINE:-}" ]; then
    echo
    echo "## Before/after (bench/compare.sh)"
    echo
    echo "Old: \`$BASELINE\` (sha256 $(sha256sum "$BASELINE" | cut -c1-12));"
    echo "new: this tree at $(git rev-parse --short HEAD). Runs alternate pair by pair."
    echo
    bench/compare.sh "$BASELINE" "$BULKHEAD" process 41
    echo
    bench/compare.sh "$BASELINE" "$BULKHEAD" vm 31
  fi
} > "$tmp"
mv "$tmp" "$out"
echo "wrote $out"
