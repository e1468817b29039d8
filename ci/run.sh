#!/usr/bin/env bash
# The CI job: format and lint checks, then the README's test command, which
# installs what the machine lacks itself (xtask/src/host_setup.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo xtask test
echo "ci: finished in $(( $(date +%s) - start )) s"
