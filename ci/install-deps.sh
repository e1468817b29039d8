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
# The container tests run a real registry (distribution 2.8) on loopback and
# push their test image into it with skopeo; the tests start their own
# registry with their own config and port, so a packaged one that the
# package's postinst may have started (on :5000, with auth) is stopped.
apt-get install -y -q --no-install-recommends docker-registry skopeo
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry || true
fi

# The reboot-lock tests (update-engine/tests/lock_etcd.rs) start a real etcd
# (3.4, v3 API) on loopback and read its keys back with etcdctl. They start
# their own member on free ports with a temporary data dir; a packaged one
# the postinst may have started (on :2379) is not needed, so it is stopped.
apt-get install -y -q --no-install-recommends etcd-server etcd-client
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd || true
fi

rustup target add x86_64-unknown-linux-musl
rustup component add rustfmt clippy >/dev/null 2>&1 || true
