#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, build, prepare the guest kernel and the demo
# image, and run a container in both isolation modes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "==> building bulkhead (release, static)"
cargo build --release -p bulkhead
bulkhead=target/x86_64-unknown-linux-gnu/release/bulkhead
mkdir -p target/release && ln -sf ../x86_64-unknown-linux-gnu/release/bulkhead target/release/bulkhead
echo "==> guest kernel (built once, cached)"
"$bulkhead" kernel build
echo "==> demo image from busybox-static"
tarball=$(mktemp --suffix=.tar)
trap 'rm -f "$tarball"' EXIT
scripts/busybox-rootfs.sh "$tarball"
"$bulkhead" image import-rootfs "$tarball" --tag demo:latest
"$bulkhead" images
"$bulkhead" info
echo "==> process isolation"
"$bulkhead" run --rm demo sh -c 'echo "hello from $(hostname), kernel $(uname -r)"'
echo "==> VM isolation"
"$bulkhead" run --rm --isolation=vm demo sh -c 'echo "hello from $(hostname), kernel $(uname -r)"'
