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
# The OCI runtime is the same binary called by these names (podman --runtime, containerd's BinaryName).
for name in bulkhead-runc bulkhead-runc-vm; do
  ln -sf bulkhead "target/x86_64-unknown-linux-gnu/release/$name"
  ln -sf "../x86_64-unknown-linux-gnu/release/$name" "target/release/$name"
done
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
echo "==> the same through the Docker Engine API (bulkhead serve) and the docker CLI"
if command -v docker >/dev/null; then
  api_dir=$(mktemp -d)
  "$bulkhead" serve -H "unix://$api_dir/docker.sock" &
  server=$!
  trap 'kill "$server" 2>/dev/null; rm -rf "$api_dir" "$tarball"' EXIT
  export DOCKER_HOST=unix://$api_dir/docker.sock DOCKER_CONFIG=$api_dir/docker-config
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
  docker run --rm --isolation=process demo sh -c 'echo "docker CLI, process: kernel $(uname -r)"'
  docker run --rm --isolation=hyperv demo sh -c 'echo "docker CLI, hyperv: kernel $(uname -r)"'
else
  echo "(no docker CLI on this machine: skipped)"
fi
echo "==> the same image through podman, with bulkhead as its OCI runtime (bulkhead-runc)"
unset DOCKER_HOST DOCKER_CONFIG   # podman reads them too
podman_image=localhost/bulkhead-demo:latest
podman import "$tarball" "$podman_image" >/dev/null
runc_link=$PWD/target/x86_64-unknown-linux-gnu/release/bulkhead-runc
podman_run=(podman run --rm --network none --runtime "$runc_link"
            --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
"${podman_run[@]}" "$podman_image" sh -c 'echo "podman, process: kernel $(uname -r)"'
"${podman_run[@]}" --annotation io.bulkhead.isolation=vm "$podman_image" \
  sh -c 'echo "podman, vm: kernel $(uname -r)"'
podman rmi "$podman_image" >/dev/null
