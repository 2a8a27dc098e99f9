# shellcheck shell=bash
# Debian's cloud kernel, unpacked once into /var/cache/latchkey/kernel (or
# vm-tests/cache/ where that cannot be written) and reused by every run.
#
#   kernel_fetch     sets KERNEL_VERSION, KERNEL_IMAGE, KERNEL_ROOT (the unpacked tree)
#   kernel_modules   prints the .ko files the initrd needs, in insmod order
#
# The cloud flavour is used because its LZ4 image starts about 5 s faster under
# TCG than the XZ generic one, and it has ext4, AF_PACKET, AES, SHA-256 and the
# TPM drivers (tpm_tis, tpm_crb) built in.

LATCHKEY_CACHE=${LATCHKEY_CACHE:-/var/cache/latchkey}
if [[ -z ${VMT_CACHE:-} ]]; then
  if mkdir -p "$LATCHKEY_CACHE/kernel" 2>/dev/null && [[ -w $LATCHKEY_CACHE/kernel ]]; then
    VMT_CACHE=$LATCHKEY_CACHE/kernel
  else
    VMT_CACHE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/cache
  fi
fi

# What the initrd loads; modprobe resolves their dependencies. A module the
# kernel has built in is skipped (`builtin NAME`), so the TPM drivers are
# listed for kernels that build them as modules.
KERNEL_WANT_MODULES=(virtio_pci virtio_blk virtio_net dm_crypt xts aesni_intel tpm_tis tpm_crb)

kernel_fetch() {
  local pkg dir debs
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
  if [[ -z $pkg ]]; then
    # No apt metadata (offline): reuse whatever was unpacked before.
    dir=$(find "$VMT_CACHE" -maxdepth 1 -type d -name 'linux-image-*-cloud-amd64' 2>/dev/null | sort | tail -n1)
    [[ -n $dir ]] || { echo "kernel: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; return 1; }
    pkg=${dir##*/}
  fi
  dir=$VMT_CACHE/$pkg
  KERNEL_VERSION=${pkg#linux-image-}
  if [[ ! -f $dir/.done ]]; then
    mkdir -p "$VMT_CACHE/deb"
    # Runs in parallel share the cache: one unpacks, the others wait.
    (
      flock 9 || exit 1
      [[ -f $dir/.done ]] && exit 0
      echo "kernel: fetching $pkg" >&2
      (cd "$VMT_CACHE/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null) || exit 1
      debs=("$VMT_CACHE/deb/${pkg}_"*.deb)
      rm -rf "$dir" && mkdir -p "$dir"
      dpkg -x "${debs[-1]}" "$dir"
      # Debian keeps modules under /lib; modprobe -d wants them there.
      if [[ ! -d $dir/lib/modules && -d $dir/usr/lib/modules ]]; then
        ln -s usr/lib "$dir/lib"
      fi
      depmod -b "$dir" "$KERNEL_VERSION"
      touch "$dir/.done"
    ) 9>"$VMT_CACHE/.lock" || return 1
  fi
  KERNEL_ROOT=$dir
  KERNEL_IMAGE=$dir/boot/vmlinuz-$KERNEL_VERSION
  [[ -f $KERNEL_IMAGE ]] || { echo "kernel: $KERNEL_IMAGE missing" >&2; return 1; }
}

kernel_modules() {
  local m
  for m in "${KERNEL_WANT_MODULES[@]}"; do
    modprobe -d "$KERNEL_ROOT" -S "$KERNEL_VERSION" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}
