# shellcheck shell=bash
# Builds the test initramfs: busybox-static, the kernel modules, /init, and
# optionally the agent and extra files. Reproducible: sorted names, uid 0,
# every mtime 0, gzip without a timestamp (INITRD_COMPRESS=xz for the
# smallest image: xz with the CRC32 check the kernel's decompressor wants and
# the x86 branch filter, which the kernel's unxz also undoes and which packs
# the two static binaries about 2% smaller).
#
#   initrd_build OUT [AGENT_BINARY|""] [SRC=DEST ...]
#     writes OUT (cpio newc, gzip) and OUT.list (its contents); needs
#     kernel_fetch first. Prints the size.

VMT_DIR=${VMT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

initrd__compress() {
  case ${INITRD_COMPRESS:-gzip} in
    xz) xz --check=crc32 --x86 --lzma2=preset=9e -T1 ;;
    *) gzip -n -9 ;;
  esac
}

initrd_build() {
  local out=$1 agent=${2:-} stage ko n=0 applet pair
  shift 2 || shift $#
  stage=$(mktemp -d)
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,dev,proc,sys,run,tmp,mnt}

  cp /bin/busybox "$stage/bin/busybox"
  while read -r applet; do
    # --list-full names busybox itself; a link there would replace the binary.
    [[ $applet == */busybox ]] && continue
    ln -sf /bin/busybox "$stage/$applet"
  done < <(busybox --list-full)

  while read -r ko; do
    n=$((n + 1))
    cp "$ko" "$stage/lib/modules/"
    basename "$ko" >>"$stage/lib/modules/load-order"
  done < <(kernel_modules)
  ((n > 0)) || { echo "initrd: no modules (kernel_fetch first)" >&2; rm -rf "$stage"; return 1; }

  install -m 0755 "$VMT_DIR/initrd/init" "$stage/init"
  install -m 0755 "$VMT_DIR/initrd/udhcpc.script" "$stage/etc/udhcpc.script"
  install -m 0644 "$VMT_DIR/initrd/hosts" "$stage/etc/hosts"
  if [[ -n $agent ]]; then
    install -m 0755 "$agent" "$stage/bin/latchkey-agent"
  fi
  for pair in "$@"; do
    # keeps the source's mode: extras may be programs
    install -D -m "$(stat -L -c %a "${pair%%=*}")" "${pair%%=*}" "$stage/${pair#*=}"
  done
  # The kernel's built-in initramfs has /dev/console too; this one must not
  # depend on it, or /init would start without stdout.
  mknod -m 0600 "$stage/dev/console" c 5 1 2>/dev/null || true

  find "$stage" -exec touch -h -d @0 {} +
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | initrd__compress >"$out"
  (cd "$stage" && find . -mindepth 1 ! -type d \( -type l -printf '%P -> %l\n' -o -printf '%P %s bytes\n' \) |
    LC_ALL=C sort) >"$out.list"
  rm -rf "$stage"
  echo "initrd: $out $(stat -c %s "$out") bytes, $n modules${agent:+, agent $(stat -c %s "$agent") bytes}" >&2
}
