# shellcheck shell=bash
# Test disks, made offline on plain files (the host has no device-mapper).
#
#   disk_plain IMG TOKEN [SIZE_MIB]      ext4 (4 KiB blocks) holding /latchkey-marker
#   disk_luks IMG TOKEN UUID PASSFILE    disk_plain, then encrypted in place
#       DISK_TYPE=luks2|luks1            luks1 is made as luks2 and converted:
#                                        cryptsetup cannot reencrypt LUKS1
#                                        without device-mapper
#       DISK_PBKDF=pbkdf2|argon2id       argon2id with 64 MiB, fit for the guest
#       DISK_SECTOR=512|4096
#   disk_add_key IMG PASSFILE NEWKEYFILE another keyslot (DISK_PBKDF applies)
#   disk_bind_tang IMG PASSFILE URL ADV  `clevis luks bind` offline, adv from a file
#   disk_bind_sss IMG PASSFILE T URL=ADV...   Shamir over several Tang pins
#   disk_boot IMG LABEL KEYFILE|"" [UUID]  unencrypted ext4 boot disk with
#                                        nbde/local-boot.key (/boot/nbde/... once
#                                        mounted on /boot), or without a key
#   disk_gpt IMG GUID PART1 PART2        a GPT disk holding the images PART1
#                                        (partition 1: GUID, PARTLABEL nbdeboot)
#                                        and PART2, as sfdisk lays them out
#   disk_root IMG TOKEN UUID PASSFILE    disk_luks whose file system is a root a
#                                        distribution's initrd can switch to: a
#                                        busybox /sbin/init that prints
#                                        `root mounted: DEVICE` and `marker: TOKEN`
#                                        and powers off
#   new_secret FILE                      32 random bytes, base64, no newline
#
# The Tang URLs name the guestfwd addresses (http://10.0.2.100:80), which is
# what the guest dials; the adv was fetched from the same server on 127.0.0.1.

BOOT_KEY_PATH=${BOOT_KEY_PATH:-nbde/local-boot.key}

new_secret() {
  head -c 32 /dev/urandom | base64 | tr -d '\n' >"$1"
}

disk_plain() {
  local img=$1 token=$2 size=${3:-64} content
  content=$(mktemp -d)
  printf '%s\n' "$token" >"$content/latchkey-marker"
  rm -f "$img"
  truncate -s "${size}M" "$img"
  # 4 KiB blocks so the same file system also mounts over 4096-byte sectors.
  mkfs.ext4 -q -F -b 4096 -d "$content" "$img" "$((size - 16))M"
  rm -rf "$content"
}

pbkdf_args() {
  case ${DISK_PBKDF:-pbkdf2} in
    pbkdf2) echo --pbkdf pbkdf2 --pbkdf-force-iterations 1000 ;;
    argon2id) echo --pbkdf argon2id --pbkdf-memory 65536 --pbkdf-parallel 1 --pbkdf-force-iterations 4 ;;
    *) echo "disk: unknown DISK_PBKDF=$DISK_PBKDF" >&2; return 1 ;;
  esac
}

disk_luks() {
  local img=$1 token=$2 uuid=$3 pass=$4 pbkdf
  pbkdf=$(pbkdf_args) || return 1
  disk_plain "$img" "$token"
  disk__encrypt "$img" "$uuid" "$pass" "$pbkdf"
}

# disk__encrypt IMG UUID PASSFILE PBKDF_ARGS: LUKS in place over IMG's first
# 48 MiB (the file system stops 16 MiB short of the end).
disk__encrypt() {
  local img=$1 uuid=$2 pass=$3 pbkdf=$4
  # shellcheck disable=SC2086 # pbkdf is a word list
  cryptsetup reencrypt --batch-mode --encrypt --type luks2 $pbkdf \
    --sector-size "${DISK_SECTOR:-512}" --key-file "$pass" --reduce-device-size 16M "$img" >/dev/null
  if [[ ${DISK_TYPE:-luks2} == luks1 ]]; then
    cryptsetup convert --batch-mode --type luks1 "$img"
  fi
  cryptsetup luksUUID --batch-mode --uuid "$uuid" "$img"
}

disk_add_key() {
  local pbkdf
  pbkdf=$(pbkdf_args) || return 1
  # shellcheck disable=SC2086
  cryptsetup luksAddKey --batch-mode $pbkdf --key-file "$2" "$1" "$3"
}

disk_bind_tang() {
  local img=$1 pass=$2 url=$3 adv=$4
  clevis luks bind -y -d "$img" -k "$pass" tang "{\"url\":\"$url\",\"adv\":\"$adv\"}"
}

disk_bind_sss() {
  local img=$1 pass=$2 t=$3 pins="" p
  shift 3
  for p in "$@"; do
    pins+="${pins:+,}{\"url\":\"${p%%=*}\",\"adv\":\"${p#*=}\"}"
  done
  clevis luks bind -y -d "$img" -k "$pass" sss "{\"t\":$t,\"pins\":{\"tang\":[$pins]}}"
}

disk_boot() {
  local img=$1 label=$2 key=$3 uuid=${4:-} content
  content=$(mktemp -d)
  [[ -z $key ]] || install -D -m 0400 "$key" "$content/$BOOT_KEY_PATH"
  rm -f "$img"
  truncate -s 16M "$img"
  mkfs.ext4 -q -F -L "$label" ${uuid:+-U "$uuid"} -d "$content" "$img"
  rm -rf "$content"
}

disk_gpt() {
  local img=$1 guid=$2 a=$3 b=$4 ma mb
  ma=$(($(stat -c %s "$a") >> 20)) mb=$(($(stat -c %s "$b") >> 20))
  rm -f "$img"
  # 1 MiB before the first partition and for the backup table at the end.
  truncate -s "$((ma + mb + 2))M" "$img"
  printf 'label: gpt\nsize=%sM, name=nbdeboot, uuid=%s\nsize=%sM\n' "$ma" "$guid" "$mb" |
    sfdisk -q "$img" || return
  dd if="$a" of="$img" bs=1M seek=1 conv=notrunc status=none &&
    dd if="$b" of="$img" bs=1M seek=$((1 + ma)) conv=notrunc status=none
}

disk_root() {
  local img=$1 token=$2 uuid=$3 pass=$4 content pbkdf
  pbkdf=$(DISK_PBKDF=pbkdf2 pbkdf_args) || return 1
  content=$(mktemp -d)
  mkdir -p "$content"/{bin,sbin,etc,proc,sys,dev,run,tmp}
  printf '%s\n' "$token" >"$content/latchkey-marker"
  cp /bin/busybox "$content/bin/busybox"
  # systemd switches only to a root that looks like an OS.
  printf 'ID=latchkey-test\nNAME="latchkey test root"\n' >"$content/etc/os-release"
  # The initrd moved /proc, /sys and /dev here before switching, so this only
  # reports what it finds and ends the VM.
  cat >"$content/sbin/init" <<'EOF'
#!/bin/busybox sh
bb=/bin/busybox
echo "root mounted: $($bb awk '$2 == "/" { d = $1 } END { print d }' /proc/mounts)"
echo "marker: $($bb cat /latchkey-marker)"
$bb sync
$bb poweroff -f
EOF
  chmod 0755 "$content/sbin/init"
  rm -f "$img"
  truncate -s 64M "$img"
  mkfs.ext4 -q -F -b 4096 -d "$content" "$img" 48M || { rm -rf "$content"; return 1; }
  rm -rf "$content"
  disk__encrypt "$img" "$uuid" "$pass" "$pbkdf"
}
