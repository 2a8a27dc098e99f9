# shellcheck shell=bash
# The initrds of the like-for-like comparison: Debian 12's initramfs-tools
# with clevis-initramfs, and the same generator with latchkey's hook.
# Bookworm chroots (vm-tests/lib/debian.sh) with the cloud kernel and
# cryptsetup-initramfs, a crypttab naming the volume, then update-initramfs.
#
#   debian_initrd OUT VERSION UUID
#       writes OUT (clevis: the initrd for kernel VERSION, unlocking UUID as
#       cryptroot) unless OUT already exists; the chroot is cached, so a
#       rebuild only runs update-initramfs.
#   latchkey_debian_initrd OUT VERSION UUID
#       the same with latchkey (needs vm-tests/distro/generators.sh)

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
    # As latchkey's below: the cipher's modules, which cryptsetup-initramfs
    # finds from the live volume on a real install (a chroot has none).
    echo xts >"$dir/etc/initramfs-tools/modules"
    rm -f "$dir/boot/initrd.img-$version"
    debian_run "$dir" update-initramfs -c -k "$version" >"$dir.update-initramfs.log" 2>&1 ||
      { echo "debian-initrd: update-initramfs failed, see $dir.update-initramfs.log" >&2; exit 1; }
    cp "$dir/boot/initrd.img-$version" "$out.tmp" && mv "$out.tmp" "$out"
    echo "debian-initrd: update-initramfs took $((SECONDS - t0))s, $out $(stat -c %s "$out") bytes" >&2
  ) 9>"$dir.lock"
}

# latchkey_debian_initrd OUT VERSION UUID: the same generator with latchkey
# instead of clevis: the initramfs-tools chroot of vm-tests/distro
# (cryptsetup-initramfs, no clevis) with this tree installed as a packager
# installs it (latchkey_install), the same crypttab, then update-initramfs.
# No local key and no /boot of its own: the agent has only Tang, as clevis.
# Rebuilt every run (the agent or the hook may have changed).
latchkey_debian_initrd() {
  local out=$1 version=$2 uuid=$3 dir t0
  gen_chroot initramfs-tools || return 1
  dir=$DEBIAN_ROOT
  (
    flock 9 || exit 1
    t0=$SECONDS
    latchkey_install "$dir" || { echo "debian-initrd: make install into $dir failed" >&2; exit 1; }
    echo "cryptroot UUID=$uuid none luks,initramfs" >"$dir/etc/crypttab"
    echo "/dev/mapper/cryptroot / ext4 errors=remount-ro 0 1" >"$dir/etc/fstab"
    rm -f "$dir/boot/nbde/local-boot.key"
    # The cipher's modules, which cryptsetup-initramfs finds from the live
    # volume on a real install (a chroot has none).
    echo xts >"$dir/etc/initramfs-tools/modules"
    rm -f "$dir/boot/initrd.img-$version"
    debian_run "$dir" update-initramfs -c -k "$version" >"$out.update-initramfs.log" 2>&1 ||
      { echo "debian-initrd: update-initramfs failed, see $out.update-initramfs.log" >&2; exit 1; }
    mv "$dir/boot/initrd.img-$version" "$out"
    echo "debian-initrd: update-initramfs with latchkey took $((SECONDS - t0))s, $out $(stat -c %s "$out") bytes" >&2
  ) 9>"$dir.lock"
}
