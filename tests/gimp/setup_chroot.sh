#!/usr/bin/env bash
# Build (once) a Debian 13 "trixie" chroot with GIMP 3 and its Python plug-in support, for the `gimp` tests.
#
# Usage: tests/gimp/setup_chroot.sh [ROOT]     (default: $MOS_GIMP_CHROOT or /var/cache/mos-gimp-chroot)
#
# Why a chroot: Debian 12 ships GIMP 2.10 without Python; GIMP 3.0 with Python 3 plug-ins is in trixie.
# Idempotent: the marker file ROOT/.mos-chroot-complete is written last; if it exists nothing is done. A root
# without the marker is a half-built leftover: its mounts are released and it is removed and rebuilt. The build
# happens in ROOT.partial and is renamed to ROOT only when complete. A lock serialises concurrent callers.
set -euo pipefail

ROOT="${1:-${MOS_GIMP_CHROOT:-/var/cache/mos-gimp-chroot}}"
ROOT="${ROOT%/}"
MIRROR="${MOS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
MARKER=".mos-chroot-complete"
# GIMP 3 + Python GObject bindings; the libraries a pyenv/venv Python from the host may need are small.
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 ca-certificates libffi8 zlib1g libbz2-1.0 liblzma5 libsqlite3-0 libssl3t64"

log() { printf '[setup_chroot %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    echo "setup_chroot.sh: must run as root (debootstrap, chroot and mount need it)" >&2
    exit 77
fi
if [ -f "$ROOT/$MARKER" ]; then
    exit 0
fi

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
# Another caller may have finished while we waited for the lock.
if [ -f "$ROOT/$MARKER" ]; then
    exit 0
fi

release_mounts() {
    # Unmount everything below $1, deepest first. Never remove a tree that still has a mount inside it.
    local dir="$1" m
    for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    if awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {found=1} END {exit !found}' /proc/mounts; then
        echo "setup_chroot.sh: cannot unmount everything under $dir; refusing to delete it" >&2
        exit 1
    fi
}

remove_tree() {
    local dir="$1"
    [ -e "$dir" ] || return 0
    release_mounts "$dir"
    rm -rf --one-file-system "$dir"
}

if [ -e "$ROOT" ]; then
    log "removing incomplete chroot $ROOT (no $MARKER)"
    remove_tree "$ROOT"
fi
PARTIAL="$ROOT.partial"
remove_tree "$PARTIAL"

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap on the host"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
fi

cleanup() {
    release_mounts "$PARTIAL" 2>/dev/null || true
}
trap cleanup EXIT

start=$(date +%s)
log "debootstrap trixie into $PARTIAL"
debootstrap --variant=minbase trixie "$PARTIAL" "$MIRROR" >&2

mount -t proc proc "$PARTIAL/proc"
mount --bind /dev "$PARTIAL/dev"
cp /etc/resolv.conf "$PARTIAL/etc/resolv.conf" 2>/dev/null || true
log "apt-get install $PACKAGES"
chroot "$PARTIAL" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -q && apt-get install -y -q $PACKAGES && apt-get clean" >&2
chroot "$PARTIAL" gimp-console-3.0 --version >&2
release_mounts "$PARTIAL"
trap - EXIT

date -u +%Y-%m-%dT%H:%M:%SZ >"$PARTIAL/$MARKER"
mv "$PARTIAL" "$ROOT"
log "chroot ready at $ROOT in $(( $(date +%s) - start )) s"
