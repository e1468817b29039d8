#!/usr/bin/env bash
# What a fresh Debian 12 machine lacks to build and test Slipway. The
# logic lives in xtask/src/host_setup.rs, which `cargo xtask build-image`
# and `cargo xtask test` run first themselves; this only runs it ahead of
# time (CI does not need it). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask setup --for test
