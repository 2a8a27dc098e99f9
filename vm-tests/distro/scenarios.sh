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
  server_stop tang3
  distro_vm "" -f "10.0.2.100=${PORT[tang1]}" -f "10.0.2.101=${PORT[tang2]}" -f "10.0.2.102=${PORT[tang3]}"
  expect 'latchkey: key recovered' 300 || return
  agent_opened "$tok"
}

# Every server down: the agent gives up at latchkey.deadline, says why
# (naming the server), and the distribution's own prompt takes the
# passphrase typed on the serial console.
s_servers_down() {
  local tok failed
  tok=$(token)
  tang_up tang1 || return
  distro_disks "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  server_stop tang1
  distro_vm "latchkey.deadline=15" -f "10.0.2.100=${PORT[tang1]}"
  expect "latchkey: $GEN_NAME \\(.*\\) NOT opened" 360 || return
  failed=$VM_AT
  expect 'latchkey: +- .*http://10\.0\.2\.100:80' 10 || return
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
