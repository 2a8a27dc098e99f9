#!/usr/bin/env bash
# Records the dm-crypt tables and DM UUIDs that Debian's cryptsetup 2.6.1
# really loads, by booting the vm-tests kernel with cryptsetup and dmsetup
# in the initramfs (the host has no device-mapper). Writes
# cryptsetup-2.6.1-tables.txt beside this script. Needs root, qemu and the
# packages scripts/setup installs; takes about a minute under TCG.
# No `set -e`: the vm-tests console reader relies on failing reads.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VMT_DIR=$(cd "$HERE/../../../../vm-tests" && pwd)
source "$VMT_DIR/lib/kernel.sh"
source "$VMT_DIR/lib/initrd.sh"
source "$VMT_DIR/lib/qemu.sh"

work=$(mktemp -d)
trap 'vm_stop 2>/dev/null || true; [[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT

# A fixed 64-byte volume key (bytes 00..3f) so the hex in the tables is known.
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(64)))' >"$work/vk"
printf 'record' >"$work/pass"
fmt() { # IMG UUID ARGS...
  local img=$1 uuid=$2
  shift 2
  truncate -s 32M "$img"
  cryptsetup luksFormat -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$work/pass" \
    --volume-key-file "$work/vk" --key-size 512 --uuid "$uuid" "$@" "$img"
}
fmt "$work/a.img" 0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10 --type luks2 || exit 1
fmt "$work/b.img" 1e4f2c63-8b48-4d3c-8c1f-4d2a6f3bae21 --type luks2 --sector-size 4096 || exit 1
fmt "$work/c.img" 2f5a3d74-9c59-4e4d-9d2a-5e3b7a4cbf32 --type luks1 --pbkdf pbkdf2 || exit 1

cat >"$work/agent" <<'SCRIPT'
#!/bin/sh
# Stands in for the agent: opens each test volume with the real cryptsetup
# and prints what device-mapper holds.
rec() { # NAME DEVICE ARGS...
  n=$1 d=$2; shift 2
  cryptsetup open --key-file /rec/pass "$@" "$d" "$n" || { echo "REC-FAIL $n"; return; }
  echo "REC-ARGS $n $*"
  echo "REC-TABLE $n $(dmsetup table --showkeys "$n")"
  echo "REC-UUID $n $(dmsetup info -c --noheadings -o uuid "$n")"
  cryptsetup close "$n"
}
echo "REC-DEV vda $(cat /sys/class/block/vda/dev) vdb $(cat /sys/class/block/vdb/dev) vdc $(cat /sys/class/block/vdc/dev)"
rec root-hex /dev/vda --disable-keyring --allow-discards
rec luks-1e4f2c63-8b48-4d3c-8c1f-4d2a6f3bae21 /dev/vdb --disable-keyring --allow-discards \
  --perf-same_cpu_crypt --perf-submit_from_crypt_cpus --perf-no_read_workqueue --perf-no_write_workqueue
rec data /dev/vdb --disable-keyring
rec old /dev/vdc
rec old-discard /dev/vdc --allow-discards --perf-no_read_workqueue
echo "REC-DONE"
exit 1
SCRIPT
chmod 0755 "$work/agent"

extras=("$work/pass=rec/pass" /usr/sbin/dmsetup=usr/sbin/dmsetup /usr/sbin/cryptsetup=usr/sbin/cryptsetup)
for lib in $(ldd /usr/sbin/cryptsetup /usr/sbin/dmsetup | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | sort -u); do
  extras+=("$lib=${lib#/}")
done

kernel_fetch || exit 1
initrd_build "$work/initrd.gz" "$work/agent" "${extras[@]}" || exit 1
vm_start "$work/vm" "$KERNEL_IMAGE" "$work/initrd.gz" "quiet" -N -t 180 \
  -d "$work/a.img" -d "$work/b.img" -d "$work/c.img"
vm_wait 'REC-DONE' 170 || { cat "$work/vm/console.log"; exit 1; }
vm_stop
{
  echo "# dm-crypt tables and DM UUIDs as loaded by Debian 12's cryptsetup $(dpkg-query -W -f='${Version}' cryptsetup-bin)"
  echo "# in a QEMU guest (kernel $KERNEL_VERSION). Made by agent/tests/data/dm/record.sh."
  echo "# Volume key: the 64 bytes 00..3f. Images: luksFormat --key-size 512 with"
  echo "#   vda LUKS2 0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10, vdb LUKS2 --sector-size 4096"
  echo "#   1e4f2c63-8b48-4d3c-8c1f-4d2a6f3bae21, vdc LUKS1 2f5a3d74-9c59-4e4d-9d2a-5e3b7a4cbf32."
  grep -o 'REC-[A-Z]* .*' "$work/vm/console.log" | grep -v REC-DONE | tr -d '\r'
} >"$HERE/cryptsetup-2.6.1-tables.txt"
cat "$HERE/cryptsetup-2.6.1-tables.txt"
