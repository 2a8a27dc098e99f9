# shellcheck shell=bash disable=SC2034 # GEN_*, GENERATORS: read by run and scenarios.sh
# The initrd generators under test, each in its Debian 12 chroot
# (lib/debian.sh): how to install latchkey there, how the machine is
# configured, and how the initrd is built the way a user builds it.
#
#   gen_names GEN            this generator's fixed names: GEN_UUID (LUKS),
#                            GEN_BOOT_UUID (/boot), GEN_NAME (the mapping),
#                            GEN_APPEND (kernel command line), GEN_PROMPT
#                            (its passphrase prompt)
#   gen_scenarios GEN        the scenarios it boots (scenarios.sh)
#   gen_chroot GEN           its chroot, built if needed (DEBIAN_ROOT)
#   gen_build GEN OUT        installs latchkey, builds OUT and OUT.list (its
#                            contents); OUT.baseline.list and its size come from
#                            the same build without latchkey (cached)
#   gen_check GEN OUT        what the hook recorded, read back from OUT; prints
#                            notes, or the reason and fails
#
# One initrd per generator serves every scenario: the machine has /boot on a
# partition of its own and the local key was there when the initrd was built,
# so the hook recorded that partition; the scenarios that test Tang boot a
# /boot without the key.
#
# mkinitcpio is Arch's and not in Debian: its v41 source (MKINITCPIO_SRC,
# default ../shared/vendor/mkinitcpio-v41 beside this tree, run as it is,
# never copied here) builds the image in a Debian chroot with Debian's
# kernel, busybox and kmod, HOOKS=(base latchkey). Its encrypt hook needs
# Arch's paths (libgcc_s, a configured udev hook), so there is no prompt to
# fall back to: servers-down is not booted, and sss is left to the others.

GENERATORS=(initramfs-tools dracut dracut-systemd dracut-hostonly mkinitcpio)
MKINITCPIO_SRC=${MKINITCPIO_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/vendor/mkinitcpio-v41}

# latchkey_install DIR: what a packager's install puts on the system, from
# the built source tree LATCHKEY_TREE.
latchkey_install() {
  make -s -C "$LATCHKEY_TREE" install DESTDIR="$1" >/dev/null
}

# gen__n GEN: the generator's number in the fixed UUIDs.
gen__n() {
  case $1 in
    initramfs-tools) echo 81 ;;
    dracut) echo 82 ;;
    dracut-systemd) echo 83 ;;
    dracut-hostonly) echo 85 ;;
    mkinitcpio) echo 84 ;;
    *) return 1 ;;
  esac
}

gen_scenarios() {
  case $1 in
    mkinitcpio) echo tang local-key ;;
    # The one with systemd boots the system into its own systemd, too.
    dracut-systemd) echo "${DISTRO_SCENARIOS[*]} netdev netdev-servers-down" ;;
    # What host-only mode changes: where the volume, the network card and
    # /boot come from (the fallbacks are dracut-systemd's).
    dracut-hostonly) echo tang local-key ;;
    *) echo "${DISTRO_SCENARIOS[*]}" ;;
  esac
}

gen_names() {
  local gen=$1 n
  n=$(gen__n "$gen") || { echo "distro: no generator '$gen'" >&2; return 1; }
  GEN_UUID=$(printf '4c4b%04d-0000-4000-8000-000000000001' "$n")
  GEN_BOOT_UUID=$(printf '4c4b%04d-0000-4000-8000-000000000002' "$n")
  case $gen in
    initramfs-tools)
      # The volume comes from /etc/crypttab; cryptroot owns the prompt.
      GEN_NAME=cryptroot
      GEN_APPEND="root=/dev/mapper/cryptroot ro ip=dhcp"
      GEN_PROMPT="Please unlock disk cryptroot: "
      ;;
    dracut-hostonly)
      # The volume comes from the /etc/crypttab dracut's crypt module copies
      # in host-only mode (a name dracut would not choose itself); nothing on
      # the command line names it or the network card.
      GEN_NAME=cryptroot
      GEN_APPEND="root=/dev/mapper/cryptroot ro ip=dhcp rd.shell=0"
      GEN_PROMPT="Please enter passphrase for disk "
      ;;
    mkinitcpio)
      # No crypttab in the image: the command line names the volume.
      GEN_NAME=cryptroot
      GEN_APPEND="rd.luks.name=$GEN_UUID=cryptroot root=/dev/mapper/cryptroot ro ip=dhcp"
      GEN_PROMPT=""
      ;;
    dracut*)
      # The volume comes from rd.luks.uuid=, named as dracut names it.
      GEN_NAME=luks-$GEN_UUID
      GEN_APPEND="rd.luks.uuid=$GEN_UUID root=/dev/mapper/$GEN_NAME ro ip=dhcp rd.shell=0"
      GEN_PROMPT="Enter passphrase for /dev/vda: "
      if [[ $gen == dracut-systemd ]]; then
        GEN_PROMPT="Please enter passphrase for disk "
        # systemd gives the LUKS disk 90 s (DefaultDeviceTimeoutSec) to
        # appear; a guest under TCG on a busy host can take longer to get as
        # far as udev.
        GEN_APPEND+=" rd.luks.options=x-systemd.device-timeout=600"
      fi
      ;;
  esac
}

gen_chroot() {
  case $1 in
    initramfs-tools) debian_chroot initramfs-tools "linux-image-$KERNEL_VERSION" cryptsetup-initramfs ;;
    dracut*) debian_chroot dracut "linux-image-$KERNEL_VERSION" dracut cryptsetup systemd systemd-sysv ;;
    mkinitcpio)
      [[ -x $MKINITCPIO_SRC/mkinitcpio ]] || { echo "distro: no mkinitcpio in $MKINITCPIO_SRC" >&2; return 1; }
      # What mkinitcpio's base hook runs: busybox, kmod, blkid, mount,
      # switch_root; bsdtar makes the archive. Debian's dynamic busybox, as
      # Arch's: busybox-static runs its own applets (modprobe) before PATH's.
      debian_chroot mkinitcpio "linux-image-$KERNEL_VERSION" busybox libarchive-tools cryptsetup-bin udev
      ;;
  esac
}

# gen__configure GEN: the machine's own files, as an installer leaves them.
gen__configure() {
  local r=$DEBIAN_ROOT
  cat >"$r/etc/fstab" <<EOF
/dev/mapper/$GEN_NAME / ext4 errors=remount-ro 0 1
UUID=$GEN_BOOT_UUID /boot ext4 defaults 0 2
EOF
  if [[ $GEN_NAME == cryptroot ]]; then
    # `initramfs`: Debian's mark for a volume its initrd must open.
    echo "cryptroot UUID=$GEN_UUID none luks$([[ $1 != initramfs-tools ]] || echo ,initramfs)" >"$r/etc/crypttab"
  else
    : >"$r/etc/crypttab"
  fi
  # Only its presence matters at build time: the initrd reads the one on /boot.
  install -D -m 0400 /dev/null "$r/boot/nbde/local-boot.key"
  # What cryptsetup-initramfs finds from the live volume on a real install
  # (the cipher's modules); in a chroot it cannot see one.
  echo xts >"$r/etc/initramfs-tools/modules"
}

# gen__run GEN OUT: the generator, as a user runs it.
gen__run() {
  local gen=$1 out=$2 r=$DEBIAN_ROOT
  case $gen in
    initramfs-tools)
      rm -f "$r/boot/initrd.img-$KERNEL_VERSION"
      debian_run "$r" update-initramfs -c -k "$KERNEL_VERSION" || return 1
      mv "$r/boot/initrd.img-$KERNEL_VERSION" "$out"
      ;;
    dracut)
      debian_run "$r" dracut -f --omit systemd ${GEN_ADD:+--add "$GEN_ADD"} /tmp/latchkey-initrd.img "$KERNEL_VERSION" || return 1
      mv "$r/tmp/latchkey-initrd.img" "$out"
      ;;
    dracut-systemd)
      debian_run "$r" dracut -f ${GEN_ADD:+--add "$GEN_ADD"} /tmp/latchkey-initrd.img "$KERNEL_VERSION" || return 1
      mv "$r/tmp/latchkey-initrd.img" "$out"
      ;;
    dracut-hostonly) gen__dracut_hostonly "$out" ;;
    mkinitcpio)
      # Arch keeps busybox where the base hook looks for it, and its sbin is
      # bin (mkinitcpio's PATH has only /bin). Copies, not links: a hook adds
      # a link as a link, and in the image sbin is a link to bin.
      mkdir -p "$r/usr/lib/initcpio" "$r/opt/mkinitcpio"
      cp "$r/usr/bin/busybox" "$r/usr/lib/initcpio/busybox"
      local b
      for b in blkid switch_root; do
        [[ -f $r/usr/bin/$b && ! -L $r/usr/bin/$b ]] || cp --remove-destination "$r/usr/sbin/$b" "$r/usr/bin/$b"
      done
      for b in modinfo depmod; do ln -sfn kmod "$r/usr/bin/$b"; done
      # Arch's busybox has no module applets; Debian's has, and base's links
      # to them win over its links to kmod (which reads the .bin indexes
      # mkinitcpio keeps): a hook of this machine's points them at kmod.
      mkdir -p "$r/etc/initcpio/install"
      cat >"$r/etc/initcpio/install/kmod-links" <<'EOF'
build() {
    local applet
    for applet in depmod insmod rmmod lsmod modprobe modinfo; do
        ln -sfn kmod "$BUILDROOT/usr/bin/$applet"
    done
}
EOF
      # xts: the cipher module encrypt's build() would add (with all of /crypto/).
      printf '%s\n' 'MODULES=(virtio_pci virtio_blk virtio_net xts)' "HOOKS=(base kmod-links${GEN_ADD:+ $GEN_ADD})" \
        'COMPRESSION=gzip' >"$r/etc/mkinitcpio.conf"
      gen__mkinitcpio mkinitcpio -c /etc/mkinitcpio.conf -k "$KERNEL_VERSION" -g /tmp/latchkey-initrd.img || return 1
      mv "$r/tmp/latchkey-initrd.img" "$out"
      ;;
  esac
}

# gen__dracut_hostonly OUT: `dracut --hostonly` (with systemd), as Fedora
# and RHEL build every initrd. Host-only mode takes the devices from the
# running machine, and a chroot on a build host sees the build host's: its
# root is no LUKS volume, and it has no /dev/disk (no udev in a container).
# So the machine's root volume is handed over the way dracut's --add-device
# takes a device it cannot find by itself: a LUKS header with the root's
# UUID on a loop device, linked from /dev/disk/by-uuid as udev links it.
# dracut then finds it crypto_LUKS, copies its /etc/crypttab entry (and
# writes rd.luks.uuid= into etc/cmdline.d). The disk's own driver is the
# loop device's there, so the guest's (virtio_blk) is named with dracut's
# --add-drivers, as for any initrd built for another machine. The network
# card drivers are the ones latchkey's module finds, those of the build
# host's cards (/sys/class/net): this host is a virtio guest as the booted
# one is, and gen_check compares them with the image. /run is mounted
# because dracut turns host-only mode off when it is not.
gen__dracut_hostonly() {
  local out=$1 r=$DEBIAN_ROOT hdr loop link rc
  hdr=$(mktemp -p "$r/tmp" latchkey-root.XXXXXX) || return 1
  truncate -s 16M "$hdr"
  cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --uuid "$GEN_UUID" --key-file <(head -c 32 /dev/urandom) "$hdr" || { rm -f "$hdr"; return 1; }
  loop=$(losetup -f --show -r "$hdr") || { rm -f "$hdr"; return 1; }
  link=/dev/disk/by-uuid/$GEN_UUID
  mkdir -p /dev/disk/by-uuid && ln -sfn "../../${loop#/dev/}" "$link"
  # shellcheck disable=SC2016 # expanded by the chroot's sh
  debian_run "$r" sh -c 'mount -t tmpfs run /run || exit 1; "$@"; rc=$?; umount /run; exit $rc' sh \
    dracut -f --hostonly ${GEN_ADD:+--add "$GEN_ADD"} --add-device "$loop" --add-drivers virtio_blk \
    /tmp/latchkey-initrd.img "$KERNEL_VERSION"
  rc=$?
  rm -f "$link"
  rmdir /dev/disk/by-uuid /dev/disk 2>/dev/null
  losetup -d "$loop"
  rm -f "$hdr"
  ((rc == 0)) || return 1
  mv "$r/tmp/latchkey-initrd.img" "$out"
}

# gen__mkinitcpio PROGRAM ARG...: mkinitcpio's PROGRAM (mkinitcpio,
# lsinitcpio) from its source, mounted read-only in the chroot.
gen__mkinitcpio() {
  local r=$DEBIAN_ROOT prog=$1 rc
  shift
  mount --bind -o ro "$MKINITCPIO_SRC" "$r/opt/mkinitcpio" || return 1
  debian_run "$r" env MKINITCPIO_LIBRARY=/opt/mkinitcpio \
    MKINITCPIO_HOOKS=/usr/lib/initcpio/hooks:/opt/mkinitcpio/hooks \
    MKINITCPIO_INSTALL=/etc/initcpio/install:/usr/lib/initcpio/install:/opt/mkinitcpio/install \
    bash "/opt/mkinitcpio/$prog" "$@"
  rc=$?
  umount "$r/opt/mkinitcpio"
  return "$rc"
}

# gen__list GEN IMG: the initrd's file list, one path a line, sorted.
gen__list() {
  local gen=$1 img=$2 r=$DEBIAN_ROOT
  cp "$img" "$r/tmp/latchkey-list.img"
  case $gen in
    initramfs-tools) debian_run "$r" lsinitramfs /tmp/latchkey-list.img ;;
    mkinitcpio) gen__mkinitcpio lsinitcpio /tmp/latchkey-list.img | sed 's|/$||' ;;
    *) debian_run "$r" lsinitrd /tmp/latchkey-list.img | awk '$1 ~ /^[-dlcbps][-r]/ { sub(/ -> .*/, ""); print $NF }' ;;
  esac | sed 's|^\./||; s|^usr/||' | grep -v '^\.$\|^$\|^kernel/' | LC_ALL=C sort -u
  rm -f "$r/tmp/latchkey-list.img"
}

# gen__baseline GEN DIR: the same initrd without latchkey, built once per
# chroot and recipe; DIR gets baseline.img and baseline.list.
gen__baseline() {
  local gen=$1 cache key list r=$DEBIAN_ROOT
  key=$({ cat "$r/.latchkey-packages"; declare -f gen__configure gen__run gen__dracut_hostonly; echo "$gen $GEN_NAME $GEN_UUID"; } |
    sha256sum | cut -c1-12)
  cache=$LATCHKEY_CACHE/distro/$gen-baseline-$key
  if [[ ! -s $cache.img ]]; then
    mkdir -p "$LATCHKEY_CACHE/distro"
    # Without latchkey: its initramfs-tools files moved aside; dracut
    # includes the module only when asked.
    local files=(usr/share/initramfs-tools/hooks/latchkey usr/share/initramfs-tools/scripts/init-premount/latchkey) f rc
    if [[ $gen == initramfs-tools ]]; then
      mkdir -p "$r/tmp/latchkey-off"
      for f in "${files[@]}"; do mv "$r/$f" "$r/tmp/latchkey-off/${f//\//_}"; done
    fi
    GEN_ADD="" gen__run "$gen" "$cache.img.tmp" >"$cache.log" 2>&1
    rc=$?
    if [[ $gen == initramfs-tools ]]; then
      for f in "${files[@]}"; do mv "$r/tmp/latchkey-off/${f//\//_}" "$r/$f"; done
    fi
    ((rc == 0)) || { echo "baseline build failed, see $cache.log"; return 1; }
    mv "$cache.img.tmp" "$cache.img"
  fi
  list=$cache.$(declare -f gen__list | sha256sum | cut -c1-8).list
  [[ -s $list ]] || gen__list "$gen" "$cache.img" >"$list" || return 1
  cp "$list" "$2/baseline.list"
  stat -c %s "$cache.img" >"$2/baseline.size"
}

gen_build() {
  local gen=$1 out=$2 dir t0=$SECONDS
  dir=$(dirname "$out")
  (
    flock 9 || exit 1
    latchkey_install "$DEBIAN_ROOT" || { echo "make install into $DEBIAN_ROOT failed"; exit 1; }
    gen__configure "$gen"
    gen__baseline "$gen" "$dir" || exit 1
    GEN_ADD=latchkey gen__run "$gen" "$out" >"$dir/generator.log" 2>&1 ||
      { echo "$gen failed, see $dir/generator.log"; exit 1; }
    gen__list "$gen" "$out" >"$out.list"
  ) 9>"$DEBIAN_ROOT.lock" || return 1
  echo $((SECONDS - t0)) >"$dir/build.seconds"
}

# gen__file IMG PATH: one file of a dracut image.
gen__file() {
  local r=$DEBIAN_ROOT
  cp "$1" "$r/tmp/latchkey-file.img"
  debian_run "$r" lsinitrd -f "$2" /tmp/latchkey-file.img
  rm -f "$r/tmp/latchkey-file.img"
}

gen_check() {
  local gen=$1 img=$2 tab conf alias mod nics=() r=$DEBIAN_ROOT
  [[ $gen == dracut-hostonly ]] || return 0
  # The root volume, from the machine's /etc/crypttab (crypt's host-only copy).
  tab=$(gen__file "$img" etc/crypttab)
  [[ $tab == "cryptroot /dev/disk/by-uuid/$GEN_UUID none luks" ]] || { echo "etc/crypttab in the initrd: '$tab'"; return 1; }
  echo "etc/crypttab: $tab"
  # /boot, for the local key.
  conf=$(gen__file "$img" etc/latchkey/initrd.conf)
  grep -qx "latchkey.boot=UUID=$GEN_BOOT_UUID" <<<"$conf" ||
    { echo "etc/latchkey/initrd.conf has no latchkey.boot=UUID=$GEN_BOOT_UUID: $(grep -v '^#' <<<"$conf")"; return 1; }
  echo "initrd.conf: $(grep -v '^#' <<<"$conf" | tr '\n' ' ')"
  # The driver of every card of the build host (by modalias, for this
  # kernel), and no other Ethernet driver.
  while read -r alias; do
    mod=$(debian_run "$r" modprobe -S "$KERNEL_VERSION" --resolve-alias "$alias" | head -n 1)
    [[ -n $mod ]] || continue
    grep -qE "/${mod//_/[-_]}\.ko(\.[a-z]+)?\$" "$img.list" || { echo "no $mod (the driver of this host's $alias) in the initrd"; return 1; }
    nics+=("$mod")
  done < <(cat /sys/class/net/*/device/modalias 2>/dev/null)
  ((${#nics[@]})) || { echo "this build host has no network card with a modular driver to look for"; return 1; }
  if mod=$(grep -m 3 'drivers/net/ethernet/' "$img.list"); then
    echo "host-only image with other cards' drivers: $(echo "$mod" | tr '\n' ' ')"
    return 1
  fi
  echo "network card drivers: ${nics[*]} (this host's cards; no other Ethernet driver)"
}
