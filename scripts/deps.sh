#!/usr/bin/env bash
# Installs the Debian packages bulkhead needs to build, run and test, if any is missing. Idempotent.
set -euo pipefail
packages=(
  # build: static libseccomp for the static binary; g++ for libFuzzer (fuzz/)
  gcc g++ make pkg-config libseccomp-dev
  # rootfs artifacts and writable layers
  erofs-utils e2fsprogs util-linux
  # VM isolation: QEMU and the guest kernel sources and tools
  qemu-system-x86 linux-source-6.1 flex bison bc libelf-dev xz-utils
  # bridge networks: the firewall rules are applied through `nft -j`
  nftables
  # demo image
  busybox-static
  # tests: real registry, image tools, auth, tty, an independent LZ4 decoder
  docker-registry skopeo umoci openssl bsdutils iproute2 curl python3 lz4
  # Docker Engine API tests: Debian's docker SDK 5.0.3 (run with /usr/bin/python3) and docker-compose 1.29
  python3-docker docker-compose
  # OCI runtime tests and benchmarks: the callers (podman, containerd with its CRI plugin), runc as the
  # peer, protoc for the CRI protobufs of the test client (k8s-cri's build script), the CNI plugins
  # (bridge, host-local, loopback) that the CRI plugin sets pod networks up with
  runc podman containerd protobuf-compiler hyperfine containernetworking-plugins
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# docker-registry's package starts a system service on port 5000; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)" >&2; exit 1; }
# The fuzzer driver (scripts/fuzz.sh), from crates.io.
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
