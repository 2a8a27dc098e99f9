# shellcheck shell=bash
# The reference initrd: what a Debian 12 user with clevis gets. A minbase
# bookworm chroot with the cloud kernel, cryptsetup-initramfs and
# clevis-initramfs, a crypttab naming the volume, then update-initramfs.
#
#   debian_initrd OUT VERSION UUID
#       writes OUT (the initrd for kernel VERSION, unlocking UUID as
#       cryptroot) unless OUT already exists; the chroot stays in
#       DEBIAN_ROOT so a rebuild skips debootstrap and the package install.
#
# Needs root and Debian's mirror (the only network used). The chroot's
# services are kept from starting by policy-rc.d, and /proc, /sys and /dev
# are mounted only while commands run inside it.

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

# debian__chroot DIR CMD...: CMD inside DIR with /proc, /sys and /dev
# mounted, unmounted again however CMD ends.
debian__chroot() {
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
    LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$dir" "$@"
  )
}

# debian__unmounted DIR: nothing is mounted under DIR (a /dev bind left by
# a killed run must never meet rm -rf).
debian__unmounted() {
  local m
  m=$(awk -v d="$(realpath -m "$1")/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts)
  [[ -z $m ]] && return 0
  echo "debian-initrd: still mounted under $1 (umount them first): $m" >&2
  return 1
}

debian_initrd() {
  local out=$1 version=$2 uuid=$3 dir=${DEBIAN_ROOT:?} t0
  [[ -s $out ]] && return 0
  command -v debootstrap >/dev/null || {
    echo "debian-initrd: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null || return 1
  }
  if [[ ! -f $dir/.debootstrap-done ]]; then
    t0=$SECONDS
    echo "debian-initrd: debootstrap --variant=minbase bookworm $dir" >&2
    debian__unmounted "$dir" || return 1
    rm -rf --one-file-system "$dir"
    debootstrap --variant=minbase bookworm "$dir" "$DEBIAN_MIRROR" >"$dir.debootstrap.log" 2>&1 ||
      { echo "debian-initrd: debootstrap failed, see $dir.debootstrap.log" >&2; return 1; }
    touch "$dir/.debootstrap-done"
    echo "debian-initrd: debootstrap took $((SECONDS - t0))s" >&2
  fi
  if [[ ! -f $dir/.packages-done ]]; then
    t0=$SECONDS
    # The cloud kernel vm-tests boots comes from bookworm-security.
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $DEBIAN_SECURITY bookworm-security main
EOF
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 0755 "$dir/usr/sbin/policy-rc.d"
    # What the installer writes on a machine without swap; otherwise the
    # initrd looks for a resume device.
    mkdir -p "$dir/etc/initramfs-tools/conf.d"
    echo RESUME=none >"$dir/etc/initramfs-tools/conf.d/resume"
    echo "debian-initrd: installing linux-image-$version cryptsetup-initramfs clevis-initramfs" >&2
    debian__chroot "$dir" sh -c "apt-get update -q && apt-get install -y -q \
      linux-image-$version cryptsetup-initramfs clevis-initramfs clevis-luks" \
      >"$dir.packages.log" 2>&1 ||
      { echo "debian-initrd: package install failed, see $dir.packages.log" >&2; return 1; }
    touch "$dir/.packages-done"
    echo "debian-initrd: packages took $((SECONDS - t0))s" >&2
  fi
  t0=$SECONDS
  echo "cryptroot UUID=$uuid none luks,initramfs" >"$dir/etc/crypttab"
  # clevis-initramfs brings the network up with initramfs-tools'
  # configure_networking, which follows ip= (or IP= here) and DEVICE.
  cat >"$dir/etc/initramfs-tools/conf.d/clevis-network" <<EOF
DEVICE=eth0
IP=:::::eth0:dhcp
EOF
  rm -f "$dir/boot/initrd.img-$version"
  debian__chroot "$dir" update-initramfs -c -k "$version" >"$dir.update-initramfs.log" 2>&1 ||
    { echo "debian-initrd: update-initramfs failed, see $dir.update-initramfs.log" >&2; return 1; }
  cp "$dir/boot/initrd.img-$version" "$out.tmp" && mv "$out.tmp" "$out"
  echo "debian-initrd: update-initramfs took $((SECONDS - t0))s, $out $(stat -c %s "$out") bytes" >&2
}
