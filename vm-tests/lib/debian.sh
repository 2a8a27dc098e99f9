# shellcheck shell=bash disable=SC2034 # DEBIAN_ROOT: read by the caller
# Debian 12 chroots, for initrds built by Debian's own generators
# (initramfs-tools, dracut) the way a user of the distribution gets them.
#
#   debian_chroot NAME PACKAGE...  sets DEBIAN_ROOT to a chroot holding a
#                                  minbase bookworm plus PACKAGE... (and what
#                                  apt pulls in); built on first use, rebuilt
#                                  when the package list changes
#   debian_run DIR CMD...          runs CMD inside DIR with /proc, /sys and
#                                  /dev mounted, unmounted however CMD ends
#
# A caller that changes files in a chroot holds flock on DIR.lock meanwhile,
# as debian_chroot does, so runs in parallel never meet in one chroot.
#
# Everything lives under DEBIAN_CACHE (/var/cache/latchkey/debian): base/ is
# debootstrapped once, each NAME/ is a copy of it with its packages
# installed, and archives/ holds the downloaded .debs for all of them. Needs
# root and Debian's mirror (the only network used). Services are kept from
# starting by policy-rc.d.

LATCHKEY_CACHE=${LATCHKEY_CACHE:-/var/cache/latchkey}
DEBIAN_CACHE=${DEBIAN_CACHE:-$LATCHKEY_CACHE/debian}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

debian_run() {
  local dir=$1
  shift
  (
    mounted=()
    # shellcheck disable=SC2317 # called by the trap
    undo() {
      local i
      for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" || umount -l "${mounted[i]}"
      done
    }
    trap undo EXIT
    trap 'exit 130' INT TERM
    mount -t proc proc "$dir/proc" && mounted+=("$dir/proc") || exit 1
    mount -t sysfs sysfs "$dir/sys" && mounted+=("$dir/sys") || exit 1
    mount --bind /dev "$dir/dev" && mounted+=("$dir/dev") || exit 1
    mkdir -p "$DEBIAN_CACHE/archives/partial" "$dir/var/cache/apt/archives"
    mount --bind "$DEBIAN_CACHE/archives" "$dir/var/cache/apt/archives" &&
      mounted+=("$dir/var/cache/apt/archives") || exit 1
    LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$dir" "$@"
  )
}

# debian__unmounted DIR: nothing is mounted under DIR (a /dev bind left by
# a killed run must never meet rm -rf).
debian__unmounted() {
  local m
  m=$(awk -v d="$(realpath -m "$1")/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts)
  [[ -z $m ]] && return 0
  echo "debian: still mounted under $1 (umount them first): $m" >&2
  return 1
}

debian__base() {
  local dir=$DEBIAN_CACHE/base t0=$SECONDS
  [[ -f $dir/.latchkey-base ]] && return 0
  command -v debootstrap >/dev/null || {
    echo "debian: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null || return 1
  }
  echo "debian: debootstrap --variant=minbase $DEBIAN_SUITE $dir" >&2
  debian__unmounted "$dir" || return 1
  rm -rf --one-file-system "$dir"
  mkdir -p "$DEBIAN_CACHE/archives"
  debootstrap --variant=minbase --cache-dir="$DEBIAN_CACHE/archives" "$DEBIAN_SUITE" "$dir" \
    "$DEBIAN_MIRROR" >"$dir.log" 2>&1 ||
    { echo "debian: debootstrap failed, see $dir.log" >&2; return 1; }
  # The cloud kernel vm-tests boots comes from the security suite.
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb $DEBIAN_SECURITY $DEBIAN_SUITE-security main
EOF
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  # What the installer writes on a machine without swap; otherwise
  # initramfs-tools looks for a resume device.
  mkdir -p "$dir/etc/initramfs-tools/conf.d"
  echo RESUME=none >"$dir/etc/initramfs-tools/conf.d/resume"
  touch "$dir/.latchkey-base"
  echo "debian: debootstrap took $((SECONDS - t0))s" >&2
}

debian_chroot() {
  local name=$1 dir=$DEBIAN_CACHE/$1 want t0=$SECONDS
  shift
  want=$(printf '%s\n' "$@" | LC_ALL=C sort -u)
  mkdir -p "$DEBIAN_CACHE"
  DEBIAN_ROOT=$dir
  (
    flock 9 || exit 1
    [[ -f $dir/.latchkey-packages && $(cat "$dir/.latchkey-packages") == "$want" ]] && exit 0
    (flock 8 && debian__base) 8>"$DEBIAN_CACHE/base.lock" || exit 1
    echo "debian: $name: installing $*" >&2
    debian__unmounted "$dir" || exit 1
    rm -rf --one-file-system "$dir"
    cp -a "$DEBIAN_CACHE/base" "$dir"
    debian_run "$dir" sh -c "apt-get update -q && apt-get install -y -q $*" >"$dir.log" 2>&1 ||
      { echo "debian: $name: package install failed, see $dir.log" >&2; exit 1; }
    printf '%s\n' "$want" >"$dir/.latchkey-packages"
    echo "debian: $name: packages took $((SECONDS - t0))s" >&2
  ) 9>"$dir.lock"
}
