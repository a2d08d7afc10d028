#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, and integration tests with real containers, a real
# registry and real QEMU VMs (the hostile-code suite among them), then the fuzz targets for a bounded time.
# Needs root. Installs what is missing and builds the guest kernel once.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> guest kernel (built once, cached)"
cargo build -p bulkhead
target/x86_64-unknown-linux-gnu/debug/bulkhead kernel build
echo "==> cargo test"
cargo test --workspace
echo "==> fuzzing (FUZZ_SECONDS per target)"
scripts/fuzz.sh
