#!/usr/bin/env bash
# The CI job: install what is missing, then the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash ci/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo xtask test
echo "ci: finished in $(( $(date +%s) - start )) s"
