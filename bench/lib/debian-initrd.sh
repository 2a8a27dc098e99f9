# shellcheck shell=bash
# The reference initrd: what a Debian 12 user with clevis gets. A bookworm
# chroot (vm-tests/lib/debian.sh) with the cloud kernel, cryptsetup-initramfs
# and clevis-initramfs, a crypttab naming the volume, then update-initramfs.
#
#   debian_initrd OUT VERSION UUID
#       writes OUT (the initrd for kernel VERSION, unlocking UUID as
#       cryptroot) unless OUT already exists; the chroot is cached, so a
#       rebuild only runs update-initramfs.

debian_initrd() {
  local out=$1 version=$2 uuid=$3 dir t0
  [[ -s $out ]] && return 0
  debian_chroot clevis-initramfs "linux-image-$version" cryptsetup-initramfs clevis-initramfs clevis-luks || return 1
  dir=$DEBIAN_ROOT
  (
    flock 9 || exit 1
    t0=$SECONDS
    echo "cryptroot UUID=$uuid none luks,initramfs" >"$dir/etc/crypttab"
    # clevis-initramfs brings the network up with initramfs-tools'
    # configure_networking, which follows ip= (or IP= here) and DEVICE.
    cat >"$dir/etc/initramfs-tools/conf.d/clevis-network" <<EOT
DEVICE=eth0
IP=:::::eth0:dhcp
EOT
    rm -f "$dir/boot/initrd.img-$version"
    debian_run "$dir" update-initramfs -c -k "$version" >"$dir.update-initramfs.log" 2>&1 ||
      { echo "debian-initrd: update-initramfs failed, see $dir.update-initramfs.log" >&2; exit 1; }
    cp "$dir/boot/initrd.img-$version" "$out.tmp" && mv "$out.tmp" "$out"
    echo "debian-initrd: update-initramfs took $((SECONDS - t0))s, $out $(stat -c %s "$out") bytes" >&2
  ) 9>"$dir.lock"
}
