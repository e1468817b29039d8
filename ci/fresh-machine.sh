#!/usr/bin/env bash
# The fresh-machine check (issue 18, item 1): the README's two commands, run
# as root in a clean Debian 12 root made by mmdebstrap, with nothing set up
# beforehand except what "a machine with Rust from rustup" has: the
# toolchain (bind-mounted read-only from this machine, musl target and all)
# and the C linker rustup's Rust needs (gcc, libc6-dev). No package lists,
# no QEMU, no OVMF, no e2fsprogs: the commands must install those.
#
#   bash ci/fresh-machine.sh                 # both commands, whole suite (~80 min)
#   bash ci/fresh-machine.sh -- <filter>     # `cargo xtask test -- <filter>`
#
# Needs root, mmdebstrap and a working apt (the packages come from the
# mirrors this machine's own apt sources name; nothing else is contacted
# except the crate registry). The root lives in $FRESH_ROOT (default
# /var/tmp/slipway-fresh-root), made anew each run and removed at the end
# unless KEEP_FRESH_ROOT=1.
#
# Deviation from a real machine, on purpose: a policy-rc.d in the root
# stops package scripts from starting daemons (etcd, docker-registry), which
# in a chroot would run in this machine's network namespace and take its
# ports. On a booted machine they start and `cargo xtask test` stops them
# (host_setup.rs); that step is covered there by a unit test.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${FRESH_ROOT:-/var/tmp/slipway-fresh-root}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
test_args=()
if [[ ${1:-} == "--" ]]; then
    shift
    test_args=(-- "$@")
fi

[[ $(id -u) == 0 ]] || { echo "fresh-machine: run as root (chroot, mounts)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "fresh-machine: apt-get install mmdebstrap" >&2; exit 1; }
sources=$(ls /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1 || true)
[[ -n $sources ]] || { echo "fresh-machine: no apt sources on this machine" >&2; exit 1; }

mounts=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount -l "${mounts[i]}" 2>/dev/null || true
    done
    if [[ ${KEEP_FRESH_ROOT:-0} != 1 ]]; then
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT
bind() { # bind SRC DEST [ro]
    mkdir -p "$2"
    mount --bind "$1" "$2"
    [[ ${3:-} == ro ]] && mount -o remount,bind,ro "$2"
    mounts+=("$2")
}

# This site's own configuration, which every machine here has and a fresh
# one would too: local CA certificates (a proxy between here and the
# registries) and apt settings no package owns.
site_apt=()
for f in /etc/apt/apt.conf.d/*; do
    dpkg -S "$f" >/dev/null 2>&1 || site_apt+=("$f")
done
site_hook='cp -a /usr/local/share/ca-certificates/. "$1"/usr/local/share/ca-certificates/'
for f in "${site_apt[@]}"; do
    site_hook+="; cp $f \"\$1\"/etc/apt/apt.conf.d/"
done
site_hook+='; chroot "$1" update-ca-certificates >/dev/null'

rm -rf --one-file-system "$root"
echo "fresh-machine: making a Debian 12 root in $root (mmdebstrap, apt sources from $sources)"
# minbase + what rustup's Rust needs to link, git to clone, ca-certificates
# for the crate registry. The package lists are deleted afterwards: a
# fresh machine has none until `apt-get update`, which the commands run.
mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,git,ca-certificates \
    --customize-hook="$site_hook" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    --customize-hook='printf "#!/bin/sh\nexit 101\n" > "$1"/usr/sbin/policy-rc.d; chmod 755 "$1"/usr/sbin/policy-rc.d' \
    bookworm "$root" "$sources"

bind /proc "$root/proc"
bind /sys "$root/sys"
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
bind "$rustup_home" "$root/opt/rustup" ro
bind "$cargo_bin" "$root/opt/cargo-bin" ro
cp /etc/resolv.conf "$root/etc/resolv.conf"
git clone --quiet "$repo" "$root/src/slipway"

run() {
    chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb CI="${CI:-}" \
        RUSTUP_HOME=/opt/rustup CARGO_HOME=/root/.cargo \
        PATH=/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        bash -c "cd /src/slipway && $*"
}

start=$(date +%s)
echo "fresh-machine: cargo xtask build-image"
run cargo xtask build-image
built=$(date +%s)
echo "fresh-machine: cargo xtask test ${test_args[*]}"
run cargo xtask test "${test_args[@]}"
echo "fresh-machine: both commands succeeded (build-image $((built - start)) s, test $(($(date +%s) - built)) s)"
