# shellcheck shell=bash disable=SC2034 # FAIL_WHY, NOTES: read by run
# The boots, one function per scenario (s_NAME), run for every generator
# with the initrd it built (INITRD) and gen_names' names. The initrd is
# the distribution's: its own init brings the root up, so "root mounted" is
# printed by the /sbin/init on the encrypted volume after the switch.
# Helpers (expect, expect_root, tang_up, token, fail) are vm-tests'.

DISTRO_SCENARIOS=(tang sss-one-down servers-down local-key)

# What ends a distribution's boot early, besides vm-tests' own: its shells
# and give-ups, and the agent making a node behind udev's back.
FATAL+='|ALERT!|Dropping to a shell|Boot has failed|Signal caught|Entering emergency mode'
FATAL+='|Gave up waiting|Timed out waiting for device|udev did not process'
# How the kernel reports a server nobody answers for.
NET_DOWN='No route to host|[Hh]ost is unreachable|timed out|no reply before the deadline'

# distro_disks TOKEN [KEYFILE]: root.img, LUKS over the switchable root
# (passphrase in $W/pass), and boot.img, /boot with the local key or without.
distro_disks() {
  [[ -f $W/pass ]] || new_secret "$W/pass"
  disk_root "$W/root.img" "$1" "$GEN_UUID" "$W/pass" || fail "making root.img" || return
  disk_boot "$W/boot.img" boot "${2:-}" "$GEN_BOOT_UUID" || fail "making boot.img"
}

# distro_vm EXTRA_APPEND [vm_start options]: the generator's command line,
# root.img as vda and boot.img as vdb.
distro_vm() {
  local extra=$1
  shift
  vm_start "$W/vm" "$KERNEL_IMAGE" "$INITRD" "$GEN_APPEND${extra:+ $extra}" \
    -d "$W/root.img" -d "$W/boot.img" -t 480 "$@"
}

# The agent opened the volume: its lines, then the root the distribution's
# init mounted and switched to.
agent_opened() {
  expect "latchkey: volume $GEN_NAME open" 360 || return
  NOTES+=("volume open at ${VM_AT}s")
  expect_root "/dev/mapper/$GEN_NAME" "$1" 240 || return
  note_phases
}

s_tang() {
  local tok
  tok=$(token)
  tang_up tang1 || return
  distro_disks "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  distro_vm "" -f "10.0.2.100=${PORT[tang1]}"
  expect "latchkey: no $DEFAULT_KEY on UUID=$GEN_BOOT_UUID" 300 || return
  expect 'latchkey: key recovered' 120 || return
  agent_opened "$tok"
}

s_sss_one_down() {
  local tok
  tok=$(token)
  tang_up tang1 && tang_up tang2 && tang_up tang3 || return
  distro_disks "$tok" || return
  disk_bind_sss "$W/root.img" "$W/pass" 2 \
    "http://10.0.2.100:80=$W/tang1.adv" "http://10.0.2.101:80=$W/tang2.adv" \
    "http://10.0.2.102:80=$W/tang3.adv" || fail "clevis luks bind sss" || return
  # Down as a powered-off host is: nothing answers at its address.
  server_stop tang3
  distro_vm "" -f "10.0.2.100=${PORT[tang1]}" -f "10.0.2.101=${PORT[tang2]}"
  expect 'latchkey: key recovered' 300 || return
  agent_opened "$tok"
}

# Every server down: the agent gives up at latchkey.deadline, says why
# (naming the server and the network's own error: nothing answers at its
# address, as for a powered-off host), and the distribution's own prompt
# takes the passphrase typed on the serial console.
s_servers_down() {
  local tok failed
  tok=$(token)
  tang_up tang1 || return
  distro_disks "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  server_stop tang1
  distro_vm "latchkey.deadline=15"
  # A volume named luks-UUID is not followed by its UUID again.
  expect "latchkey: $GEN_NAME( \\(.*\\))? NOT opened" 360 || return
  failed=$VM_AT
  expect "latchkey: +- .*http://10\\.0\\.2\\.100:80.*($NET_DOWN)" 10 || return
  NOTES+=("agent: $(vm__text | grep -aE -m1 'latchkey: +- .*http://10\.0\.2\.100:80')")
  expect "$GEN_PROMPT" 240 || return
  less_than "$failed" "$VM_AT" || fail "the distribution's prompt came before the agent gave up" || return
  NOTES+=("prompt '$GEN_PROMPT' at ${VM_AT}s")
  vm_send "$(cat "$W/pass")"
  expect_root "/dev/mapper/$GEN_NAME" "$tok" 240 || return
  ! vm_seen "latchkey: volume $GEN_NAME open" || fail "the agent opened the volume with every server down"
}

# Degraded mode: no network card; the key file on /boot, whose partition
# the hook recorded from /etc/fstab (nothing on the command line says so).
s_local_key() {
  local tok
  tok=$(token)
  tang_up tang1 || return
  [[ -f $W/pass ]] || new_secret "$W/pass"
  new_secret "$W/local-boot.key"
  disk_root "$W/root.img" "$tok" "$GEN_UUID" "$W/pass" || fail "making root.img" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  disk_add_key "$W/root.img" "$W/pass" "$W/local-boot.key" || fail "luksAddKey local-boot.key" || return
  disk_boot "$W/boot.img" boot "$W/local-boot.key" "$GEN_BOOT_UUID" || fail "making boot.img" || return
  distro_vm "" -N
  expect "latchkey: local key found on UUID=$GEN_BOOT_UUID" 300 || return
  expect 'latchkey: local key opened keyslot' 60 || return
  agent_opened "$tok" || return
  ! grep -q latchkey "$W/vm/cmdline" || fail "latchkey options on the command line: $(cat "$W/vm/cmdline")"
}

# Late boot, on the real system: the chroot itself as a plain root file
# system, booted into its own systemd (networkd for the network), with a
# data volume bound to Tang by clevis and marked _netdev in /etc/crypttab,
# mounted by /etc/fstab. Nothing on the kernel command line names it; the
# initrd opens no volume (rd.luks=0). latchkey-netdev-generator and
# latchkey-netdev.service (installed as a package installs them) open it
# once network-online.target is reached, before systemd-cryptsetup, which
# would otherwise ask for its passphrase; the data volume is then mounted.
s_netdev() {
  local online
  netdev_boot "" || return
  expect 'Reached target.*Network is Online' 720 || return
  online=$VM_AT
  expect 'latchkey: volume data open' 120 || return
  NOTES+=("network online at ${online}s, data volume open at ${VM_AT}s (+$(secs_between "$online" "$VM_AT")s)")
  expect "data mounted: $NETDEV_TOKEN\$" 120 || return
  NOTES+=("/data mounted at ${VM_AT}s after QEMU start")
  ! vm_seen 'Please enter passphrase for disk' || fail "systemd asked for the data volume's passphrase" || return
  netdev_powered_off
}

# The same system with its Tang server down: the agent gives up at
# latchkey.deadline and says why (the server named, and the network's own
# error), systemd's service for it ends there (no start timeout), and
# systemd-cryptsetup's own prompt for the data volume, on the console
# (systemd-ask-password-console), takes the passphrase typed there; the
# volume opens, /data is mounted and the boot goes on to its end.
s_netdev_servers_down() {
  local failed started
  netdev_boot "latchkey.deadline=20" down || return
  expect 'latchkey: data \(.*\) NOT opened' 900 || return
  failed=$VM_AT
  vm__at 'Starting .*latchkey-netdev' && started=$VM_AT || fail "no 'Starting ... latchkey-netdev' on the console" || return
  NOTES+=("the agent gave up $(secs_between "$started" "$failed")s after latchkey-netdev.service started (latchkey.deadline=20)")
  expect "latchkey: +- .*http://10\\.0\\.2\\.100:80.*($NET_DOWN)" 10 || return
  NOTES+=("agent at ${failed}s: $(vm__text | grep -aE -m1 'latchkey: +- .*http://10\.0\.2\.100:80')")
  expect 'Please enter passphrase for disk .*data' 240 || return
  less_than "$failed" "$VM_AT" || fail "systemd asked before latchkey gave up" || return
  NOTES+=("systemd-cryptsetup's prompt at ${VM_AT}s")
  ! vm_seen 'latchkey-netdev.service: (Start operation timed out|.*[Tt]imeout)' ||
    fail "systemd stopped latchkey-netdev.service at its start timeout: the agent overran its deadline" || return
  vm_send "$(cat "$W/pass")"
  expect "data mounted: $NETDEV_TOKEN\$" 240 || return
  NOTES+=("/data mounted at ${VM_AT}s after QEMU start")
  ! vm_seen 'latchkey: volume data open' || fail "the agent opened the data volume with its server down" || return
  netdev_powered_off
}

# netdev_boot EXTRA_APPEND [down]: data.img, LUKS bound to tang1 by clevis
# (token in NETDEV_TOKEN, passphrase in $W/pass), and the system image booted
# with tang1 at http://10.0.2.100:80, or down as a powered-off host is
# (nothing answers at its address).
netdev_boot() {
  local data_uuid=4c4b0089-0000-4000-8000-000000000009 fwd=()
  NETDEV_TOKEN=$(token)
  tang_up tang1 || return
  new_secret "$W/pass"
  disk_luks "$W/data.img" "$NETDEV_TOKEN" "$data_uuid" "$W/pass" || fail "making data.img" || return
  disk_bind_tang "$W/data.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  # A guest under TCG on a busy host can take longer than systemd's 90 s for udev.
  distro_system_root "$W/system.img" "data UUID=$data_uuid none luks,_netdev,x-systemd.device-timeout=600" \
    "/dev/mapper/data /data ext4 _netdev 0 2" || fail "making the system's root image" || return
  if [[ ${2:-} == down ]]; then server_stop tang1; else fwd=(-f "10.0.2.100=${PORT[tang1]}"); fi
  vm_start "$W/vm" "$KERNEL_IMAGE" "$INITRD" "root=/dev/vda rw rd.luks=0 net.ifnames=0${1:+ $1}" \
    -d "$W/system.img" -d "$W/data.img" "${fwd[@]}" -t 900 -m 512
}

netdev_powered_off() {
  vm_wait_exit 120 || fail "the system did not power off" || return
  vm_seen 'reboot: Power down' || fail "no 'reboot: Power down' on the console"
}

# distro_system_root IMG CRYPTTAB_LINE FSTAB_LINE: the generator's chroot
# (latchkey installed in it) as an ext4 image to boot its own systemd from,
# seen through an overlay so the cached chroot is never changed: DHCP by
# systemd-networkd, the data volume in crypttab and fstab, and a unit that
# prints what /data holds, then powers off.
distro_system_root() {
  local img=$1 tab=$2 fs=$3 r=$DEBIAN_ROOT m=$W/system rc
  mkdir -p "$m/upper" "$m/work" "$m/merged"
  (
    flock 9 || exit 1
    mount -t overlay overlay -o "lowerdir=$r,upperdir=$m/upper,workdir=$m/work" "$m/merged" || exit 1
    trap 'umount "$m/merged"' EXIT
    local t=$m/merged
    printf '%s\n' "/dev/vda / ext4 defaults 0 1" "$fs" >"$t/etc/fstab"
    printf '%s\n' "$tab" >"$t/etc/crypttab"
    mkdir -p "$t/data" "$t/etc/systemd/network"
    printf '%s\n' '[Match]' 'Name=eth*' '[Network]' 'DHCP=ipv4' >"$t/etc/systemd/network/20-wired.network"
    cat >"$t/etc/systemd/system/latchkey-data-check.service" <<'UNIT'
[Unit]
Description=Report /data and power off
After=remote-fs.target latchkey-netdev.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'if mountpoint -q /data; then echo "data mounted: $(cat /data/latchkey-marker)"; else echo "data NOT mounted"; fi'
ExecStartPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
UNIT
    systemctl --root="$t" -q enable systemd-networkd.service systemd-networkd-wait-online.service \
      latchkey-data-check.service || exit 1
    # What this test does not need, off so a guest under TCG on a busy host
    # gets through (with time to spare: systemd's 90 s are for real hardware).
    systemctl --root="$t" -q mask apparmor.service systemd-timesyncd.service keyboard-setup.service \
      console-setup.service lvm2-monitor.service mdadm-shutdown.service e2scrub_reap.service \
      serial-getty@ttyS0.service getty@tty1.service 2>/dev/null
    mkdir -p "$t/etc/systemd/system.conf.d" "$t/etc/systemd/system/systemd-networkd-wait-online.service.d"
    printf '%s\n' '[Manager]' 'DefaultTimeoutStartSec=600' 'DefaultDeviceTimeoutSec=600' \
      >"$t/etc/systemd/system.conf.d/slow-guest.conf"
    # wait-online gives DHCP 120 s of its own.
    printf '%s\n' '[Service]' 'ExecStart=' 'ExecStart=/lib/systemd/systemd-networkd-wait-online --timeout=600' \
      >"$t/etc/systemd/system/systemd-networkd-wait-online.service.d/slow-guest.conf"
    rm -f "$img"
    truncate -s 1536M "$img"
    mkfs.ext4 -q -F -d "$t" "$img"
  ) 9>"$r.lock"
  rc=$?
  rm -rf "$m"
  return "$rc"
}
