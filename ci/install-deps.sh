#!/usr/bin/env bash
# What a fresh Debian 12 machine lacks to build and boot-test Slipway.
# Called by .ci/run; safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
# qemu-system-x86 conflicts with a newer qemu-utils from backports and makes
# apt remove it, so qemu-utils (qemu-img) is installed in a second step,
# matching the system emulator's version.
apt-get install -y -q --no-install-recommends qemu-system-x86 ovmf
apt-get install -y -q --no-install-recommends qemu-utils
# mke2fs makes the image's empty /var (e2fsprogs is not in every minimal
# Debian); the rest are host tools the tests cross-check our formats with.
apt-get install -y -q --no-install-recommends e2fsprogs dosfstools fdisk cryptsetup-bin
# ssh and ssh-keygen: the VM test logs in to the guest with a user-data key.
apt-get install -y -q --no-install-recommends openssh-client

rustup target add x86_64-unknown-linux-musl
rustup component add rustfmt clippy >/dev/null 2>&1 || true
