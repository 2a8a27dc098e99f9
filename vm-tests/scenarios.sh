# shellcheck shell=bash disable=SC2034 # FAIL_WHY, SKIP_WHY, SCENARIOS: read by run-all
# The VM scenarios, one function each (t_NAME for scenario NAME, dashes as
# underscores). run-all sources this after lib/*.sh and sets W (this
# scenario's folder), OUT, AGENT and KERNEL_*. A function returns 0 (pass),
# 1 (fail, FAIL_WHY says why) or 2 (skipped, SKIP_WHY), and may add lines
# to NOTES (timings).
#
# What the agent must print is asserted here, verbatim:
#   latchkey: network up          (kmsg, once the interface has an address)
#   latchkey: key recovered       (kmsg, per volume, after Tang answered)
#   latchkey: volume NAME open    (kmsg, once /dev/mapper/NAME exists)
# and /init prints `root mounted: /dev/mapper/NAME`, `volume mounted: ...`,
# `marker: TOKEN` and `agent failed rc=N`.

SCENARIOS=(
  standin tang-dhcp static-ip sss-one-down sss-blackhole quorum-lost
  degraded-local-key rotated-keys luks1-luksmeta hostile-offcurve
  hostile-garbage argon2-4k-local-key two-volumes
)

# What ends a boot early: the wait stops there instead of at the time limit.
FATAL='agent failed rc=[0-9]+|Kernel panic|init: FAILED'

declare -A PORT

fail() { FAIL_WHY=$1; return 1; }
token() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }
# Fixed per scenario, so a failed run can be replayed with the same names.
uuid() { printf '4c4b%04d-0000-4000-8000-%012d\n' "$1" "${2:-1}"; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# expect REGEX [SECONDS [FATAL_REGEX]]: the console shows REGEX before any
# FATAL line. VM_AT is when it appeared.
expect() {
  local want=$1 limit=${2:-60} fatal=${3-$FATAL} line
  vm_wait "($want)${fatal:+|$fatal}" "$limit" || fail "$VM_WHY" || return
  if ! vm__text | grep -aEq -- "$want"; then
    line=$(vm__text | grep -aE -m1 -- "$fatal")
    fail "console says '$line' before /$want/"
    return
  fi
}

# expect_root DEV TOKEN [SECONDS]: /init mounted DEV, found TOKEN, powered off.
expect_root() {
  expect "root mounted: $1\$" "${3:-60}" || return
  NOTES+=("root mounted at ${VM_AT}s after QEMU start")
  expect "^marker: $2\$" 5 || return
  vm_wait_exit 20 || fail "QEMU did not end after poweroff: ${VM_WHY:-rc=$?}" || return
  vm__text | grep -aq 'reboot: Power down' || fail "no 'reboot: Power down' on the console"
}

# need_agent: builds the agent initrd once per run, or skips/fails without it.
need_agent() {
  local why=""
  if [[ $AGENT == none ]]; then
    why="AGENT=none"
  elif [[ ! -x $AGENT ]]; then
    why="no agent at $AGENT (make agent)"
  fi
  if [[ -n $why ]]; then
    if [[ -n ${CI:-} ]]; then fail "$why"; else SKIP_WHY=$why; return 2; fi
    return
  fi
  AGENT_INITRD=$OUT/agent-initrd.gz
  if [[ ! -f $AGENT_INITRD || $AGENT -nt $AGENT_INITRD ]]; then
    initrd_build "$AGENT_INITRD" "$AGENT" || fail "building the agent initrd" || return
  fi
}

# tang_up NAME: fresh keys served on a free port; its adv in $W/NAME.adv.
tang_up() {
  local name=$1
  tang_keygen "$W/$name.keys" >/dev/null || fail "tangd-keygen" || return
  PORT[$name]=$(free_port)
  tang_start "$name" "${PORT[$name]}" "$W/$name.keys" || fail "starting $name" || return
  fetch_adv "${PORT[$name]}" "$W/$name.adv" || fail "fetching $name's adv"
}

# root_disk IMG UUID TOKEN: a LUKS volume with a passphrase in $W/pass.
root_disk() {
  [[ -f $W/pass ]] || new_secret "$W/pass"
  disk_luks "$1" "$3" "$2" "$W/pass" || fail "making $1"
}

boot() {
  local append=$1
  shift
  vm_start "$W/vm" "$KERNEL_IMAGE" "$AGENT_INITRD" "$append" "$@"
}

note_phases() {
  local at
  for p in 'latchkey: network up' 'latchkey: key recovered'; do
    at=$(grep -aE -m1 "$p" "$W/vm/console.log" | sed 's/^\[ *\([0-9.]*\)\].*/\1/')
    [[ -n $at ]] && NOTES+=("'$p' at ${at}s")
  done
  return 0
}

# --- no agent -----------------------------------------------------------

# Proves the harness: modules, DHCP over restricted slirp, HTTP to a real
# tangd through guestfwd, virtio disks, the marker, poweroff.
t_standin() {
  local tok initrd=$OUT/standin-initrd.gz size
  tok=$(token)
  initrd_build "$initrd" "" || fail "building the initrd" || return
  tang_up tang1 || return
  size=$(stat -c %s "$W/tang1.adv")
  disk_plain "$W/plain.img" "$tok" || fail "making plain.img" || return
  root_disk "$W/luks.img" "$(uuid 0)" unused || return
  vm_start "$W/vm" "$KERNEL_IMAGE" "$initrd" "" \
    -d "$W/plain.img" -d "$W/luks.img" -f "10.0.2.100=${PORT[tang1]}" -t 60
  expect 'init: started' 30 || return
  NOTES+=("/init started at ${VM_AT}s")
  expect 'standin: dm_crypt loaded, xts\(aes\) and aesni available' 20 || return
  NOTES+=("modules loaded at ${VM_AT}s")
  expect 'standin: dhcp bound 10\.0\.2\.15/24' 20 || return
  NOTES+=("DHCP lease at ${VM_AT}s")
  expect "standin: fetched http://10\.0\.2\.100/adv \\($size bytes\\)" 20 || return
  NOTES+=("adv fetched at ${VM_AT}s")
  expect_root /dev/vda "$tok" 20 || return
  vm__text | grep -aq 'standin: LUKS header on /dev/vdb' || fail "no LUKS header seen on /dev/vdb" || return
  NOTES+=("QEMU ended at $(vm_elapsed)s")
}
