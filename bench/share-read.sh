#!/usr/bin/env bash
# What a VM's shared directory (virtio-9p, see docs/ARCHITECTURE.md) costs to read: a 256 MiB file read
# with `dd bs=1M` in a VM container from a read-only bind, against the same bytes on the container's own
# disk (overlay on the virtio-blk ext4), with the guest's page cache dropped before each read (the host's
# keeps both warm). One VM, N rounds (default 5), medians.
# Environment: N, BULKHEAD (binary, default the release build). Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "${N:-5}" "$(realpath "${BULKHEAD:-target/x86_64-unknown-linux-gnu/release/bulkhead}")" <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile
rounds, binary = int(sys.argv[1]), sys.argv[2]
root = tempfile.mkdtemp(prefix="bulkhead-bench-share.")
MIB = 256

def bh(*args):
    return subprocess.run([binary, "--root", root, *args], check=True, capture_output=True,
                          text=True)

try:
    tarball = os.path.join(root, "demo.tar")
    subprocess.run(["scripts/busybox-rootfs.sh", tarball], check=True)
    bh("image", "import-rootfs", tarball, "--tag", "demo")
    shared = os.path.join(root, "shared")
    os.mkdir(shared)
    with open(os.path.join(shared, "f"), "wb") as f:
        f.write(os.urandom(MIB << 20))
    drop = "echo 3 > /proc/sys/vm/drop_caches"
    step = f"{drop}; echo own >&2; time dd if=/own of=/dev/null bs=1M; {drop}; echo share >&2; " \
           "time dd if=/b/f of=/dev/null bs=1M; "
    script = f"dd if=/b/f of=/own bs=1M; sync; " + step * rounds
    # --privileged only to drop the guest's page cache.
    out = bh("run", "--rm", "--network", "none", "--isolation=vm", "--privileged", "--memory",
             "768m", "-v", f"{shared}:/b:ro", "demo", "sh", "-c", script)
finally:
    shutil.rmtree(root, ignore_errors=True)

times = {"own": [], "share": []}
kind = None
for line in out.stderr.splitlines():
    if line in times:
        kind = line
    m = re.match(r"real\s+(\d+)m\s*([\d.]+)s", line)
    if m and kind:
        times[kind].append(int(m.group(1)) * 60 + float(m.group(2)))
if not times["own"]: sys.exit("no timings in:\n" + out.stdout + out.stderr)
own, share = statistics.median(times["own"]), statistics.median(times["share"])
print(f"{rounds} reads of a {MIB} MiB file each, medians, guest page cache dropped before each.")
print()
print("| read from | time | throughput |")
print("|---|---|---|")
print(f"| the container's own disk (overlay, ext4, virtio-blk) | {own:.2f} s | {MIB / own:.0f} MiB/s |")
print(f"| a read-only bind (virtio-9p, msize 512000 bytes) | {share:.2f} s | {MIB / share:.0f} MiB/s |")
PY
