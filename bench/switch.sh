#!/usr/bin/env bash
# What switching a container to process isolation costs when a VM wrote its disk (the engine then takes
# the disk's content back through an export VM, see docs/ARCHITECTURE.md) versus when only the host did:
# `update --isolation process` plus the first `start -a`, timed together, interleaved pair by pair.
# Each container appends to one file; the VM-written one did so in its VM first (untimed).
# Environment: N (pairs, default 7), BULKHEAD (binary, default the release build). Prints markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "${N:-7}" "$(realpath "${BULKHEAD:-target/x86_64-unknown-linux-gnu/release/bulkhead}")" <<'PY'
import os, shutil, statistics, subprocess, sys, tempfile, time
runs, binary = int(sys.argv[1]), sys.argv[2]
root = tempfile.mkdtemp(prefix="bulkhead-bench-switch.")

def bh(*args):
    return subprocess.run([binary, "--root", root, *args], check=True, capture_output=True,
                          text=True).stdout.strip()

def switch(cid):
    start = time.monotonic()
    bh("update", "--isolation", "process", cid)
    bh("start", "-a", cid)
    return time.monotonic() - start

try:
    tarball = os.path.join(root, "demo.tar")
    subprocess.run(["scripts/busybox-rootfs.sh", tarball], check=True)
    bh("image", "import-rootfs", tarball, "--tag", "demo")
    accel = next(l.split(": ", 1)[1] for l in bh("info").splitlines()
                 if l.startswith("VM Accelerator: "))
    bh("run", "--rm", "--isolation=vm", "demo", "true")  # warm-up: the initramfs for this binary
    times = {"vm": [], "host": []}
    for i in range(runs):
        for kind in ("vm", "host") if i % 2 == 0 else ("host", "vm"):
            cid = bh("create", "--isolation", "vm", "demo", "sh", "-c", "echo x >> /f")
            if kind == "vm":
                bh("start", "-a", cid)
            times[kind].append(switch(cid))
            bh("rm", cid)
finally:
    ids = subprocess.run([binary, "--root", root, "ps", "-aq"], capture_output=True, text=True)
    for cid in ids.stdout.split():
        subprocess.run([binary, "--root", root, "rm", "-f", cid], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)

vm, host = statistics.median(times["vm"]), statistics.median(times["host"])
print(f"Accelerator: {accel}. {runs} pairs, interleaved, medians.")
print()
print("| disk last written by | `update --isolation process` + first `start -a` | min |")
print("|---|---|---|")
print(f"| the host (never run in a VM) | {host:.3f} s | {min(times['host']):.3f} s |")
print(f"| a VM (taken back through an export VM) | {vm:.3f} s | {min(times['vm']):.3f} s |")
print()
print(f"The take-back costs {vm - host:.3f} s (difference of the medians).")
PY
