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
#   latchkey: tpm2 (PCRS): unsealed   (kmsg, a tpm2 pin's TPM step done;
#                                  PCRS is bank:ids or "no PCR policy")
# and /init prints `root mounted: /dev/mapper/NAME`, `volume mounted: ...`,
# `marker: TOKEN` and `agent failed rc=N`.

SCENARIOS=(
  standin tang-dhcp static-ip sss-one-down sss-blackhole quorum-lost
  degraded-local-key rotated-keys luks1-luksmeta hostile-offcurve
  hostile-garbage argon2-4k-local-key two-volumes nbde-degraded nbde-tang
  nbde-quorum nbde-quorum-lost offline-codes tpm2-alone tpm2-tang-sss
  tpm2-pcr-changed late-carrier ipv6-static ipv6-auto6 vlan bond bond-lacp
  dns-name dhcp6 https-tang partuuid-local-key
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
  local want=$1 limit=${2:-90} fatal=${3-$FATAL} line
  vm_wait "($want)${fatal:+|$fatal}" "$limit" || fail "$VM_WHY" || return
  if ! vm_seen "$want"; then
    line=$(vm__text | grep -aE -m1 -- "$fatal")
    fail "console says '$line' before /$want/"
    return
  fi
}

# expect_root DEV TOKEN [SECONDS]: /init mounted DEV, found TOKEN, powered off.
expect_root() {
  expect "root mounted: $1\$" "${3:-90}" || return
  NOTES+=("root mounted at ${VM_AT}s after QEMU start")
  expect "^marker: $2\$" 5 || return
  local rc
  vm_wait_exit 20
  rc=$?
  ((rc == 0)) || fail "QEMU did not end cleanly after the marker (status $rc)" || return
  vm_seen 'reboot: Power down' || fail "no 'reboot: Power down' on the console"
}

# lacking WHY: a scenario cannot run; fails under CI, is skipped elsewhere.
lacking() {
  if [[ -n ${CI:-} ]]; then fail "$1"; else SKIP_WHY=$1; return 2; fi
}

# need_agent: builds the agent initrd once per run, or skips/fails without it.
need_agent() {
  if [[ $AGENT == none ]]; then
    lacking "AGENT=none"
    return
  elif [[ ! -x $AGENT ]]; then
    lacking "no agent at $AGENT (make agent)"
    return
  fi
  if [[ -z ${AGENT_INITRD:-} ]]; then
    AGENT_INITRD=$OUT/agent-initrd.gz
    local extra=()
    [[ -z ${AGENT_EXTRA:-} ]] || mapfile -t extra <"$AGENT_EXTRA"
    initrd_build "$AGENT_INITRD" "$AGENT" "${extra[@]}" || { AGENT_INITRD=""; fail "building the agent initrd"; return; }
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

# tang_root_disk UUID TOKEN: tang1 up and $W/root.img (root_disk; DISK_TYPE as
# disk_luks takes it) bound to it by clevis as http://10.0.2.100:80.
tang_root_disk() {
  tang_up tang1 || return
  root_disk "$W/root.img" "$1" "$2" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind"
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
# tangd through guestfwd, virtio disks, the TPM (swtpm), the marker, poweroff.
t_standin() {
  local tok initrd=$OUT/standin-initrd.gz size
  tok=$(token)
  initrd_build "$initrd" "" || fail "building the initrd" || return
  tang_up tang1 || return
  size=$(stat -c %s "$W/tang1.adv")
  disk_plain "$W/plain.img" "$tok" || fail "making plain.img" || return
  root_disk "$W/luks.img" "$(uuid 0)" unused || return
  vm_start "$W/vm" "$KERNEL_IMAGE" "$initrd" "" \
    -d "$W/plain.img" -d "$W/luks.img" -f "10.0.2.100=${PORT[tang1]}" -T "$W/tpm" -t 60
  expect 'init: started' 30 || return
  NOTES+=("/init started at ${VM_AT}s")
  expect 'standin: dm_crypt loaded, xts\(aes\) and aesni available' 20 || return
  NOTES+=("modules loaded at ${VM_AT}s")
  expect 'standin: TPM at /dev/tpmrm0' 5 || return
  expect 'standin: dhcp bound 10\.0\.2\.15/24' 20 || return
  NOTES+=("DHCP lease at ${VM_AT}s")
  expect "standin: fetched http://10\.0\.2\.100/adv \\($size bytes\\)" 20 || return
  NOTES+=("adv fetched at ${VM_AT}s")
  expect_root /dev/vda "$tok" 20 || return
  vm_seen 'standin: LUKS header on /dev/vdb' || fail "no LUKS header seen on /dev/vdb" || return
  NOTES+=("QEMU ended at $(vm_elapsed)s")
}

# --- with the agent -------------------------------------------------------

# 1: one Tang, address from DHCP.
t_tang_dhcp() {
  local u tok
  need_agent || return
  u=$(uuid 1) tok=$(token)
  tang_root_disk "$u" "$tok" || return
  boot "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}"
  expect 'latchkey: network up after [0-9.]+s' || return
  expect 'latchkey: key recovered' || return
  expect "latchkey: volume luks-$u open" || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
  note_phases
}

# 2: static address from ip=, no DHCP server needed.
t_static_ip() {
  local u tok
  need_agent || return
  u=$(uuid 2) tok=$(token)
  tang_root_disk "$u" "$tok" || return
  boot "rd.luks.name=$u=cryptroot ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:none" \
    -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}"
  expect 'latchkey: network up after [0-9.]+s' || return
  expect "latchkey: volume cryptroot open" || return
  expect_root /dev/mapper/cryptroot "$tok" || return
  note_phases
}

# sss_disk N: root.img bound with Shamir 2-of-3 over tang1..tang3
# (10.0.2.100..102); all three serving afterwards.
sss_disk() {
  SSS_UUID=$(uuid "$1") SSS_TOKEN=$(token)
  tang_up tang1 && tang_up tang2 && tang_up tang3 || return
  root_disk "$W/root.img" "$SSS_UUID" "$SSS_TOKEN" || return
  disk_bind_sss "$W/root.img" "$W/pass" 2 \
    "http://10.0.2.100:80=$W/tang1.adv" "http://10.0.2.101:80=$W/tang2.adv" \
    "http://10.0.2.102:80=$W/tang3.adv" || fail "clevis luks bind sss" || return
}

# sss_boot [OPTION...]: boot root.img, extra kernel command line options.
sss_boot() {
  boot "rd.luks.uuid=$SSS_UUID ip=dhcp${1:+ $*}" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" \
    -f "10.0.2.101=${PORT[tang2]}" -f "10.0.2.102=${PORT[tang3]}"
}

# 3a: 2-of-3 with the third server stopped (connections refused).
t_sss_one_down() {
  need_agent || return
  sss_disk 3 || return
  server_stop tang3
  sss_boot
  expect_root "/dev/mapper/luks-$SSS_UUID" "$SSS_TOKEN" || return
  note_phases
}

# 3b: 2-of-3 with the third server accepting and never answering. With
# latchkey.timeout=20 an agent that waits for that server needs 20 s; the
# quorum of the other two must open the volume well before.
t_sss_blackhole() {
  local net took
  need_agent || return
  sss_disk 3 || return
  server_stop tang3
  blackhole_start tang3 "${PORT[tang3]}" || fail "starting the blackhole" || return
  sss_boot latchkey.timeout=20
  expect 'latchkey: network up' || return
  net=$VM_AT
  expect_root "/dev/mapper/luks-$SSS_UUID" "$SSS_TOKEN" || return
  took=$(secs_between "$net" "$VM_AT")
  NOTES+=("root mounted ${took}s after network up")
  less_than "$took" 8 || fail "root mounted ${took}s after network up: waited for the blackholed server"
}

# 4: quorum lost (two of three down). With latchkey.deadline=30 the agent
# names each failing URL within the deadline and prompts on the console
# (the prompt may come earlier, beside the network attempt); the
# passphrase typed there opens the volume.
t_quorum_lost() {
  local net url
  need_agent || return
  sss_disk 4 || return
  server_stop tang2
  server_stop tang3
  sss_boot latchkey.deadline=30
  expect 'latchkey: network up' || return
  net=$VM_AT
  for url in http://10.0.2.101:80 http://10.0.2.102:80; do
    # The failure line (not the plan printed before the network) must name the dead server.
    expect "of 3 shares.*${url//./\\.}: " 45 '' || fail "failing URL $url not reported: $FAIL_WHY" || return
    NOTES+=("$url reported $(secs_between "$net" "$VM_AT")s after network up")
    less_than "$(secs_between "$net" "$VM_AT")" 35 || fail "$url reported after the 30 s deadline" || return
  done
  expect '[Pp]assphrase' 60 '' || return
  NOTES+=("prompt $(secs_between "$net" "$VM_AT")s after network up")
  vm_send "$(cat "$W/pass")"
  expect_root "/dev/mapper/luks-$SSS_UUID" "$SSS_TOKEN" 60 || return
}

# local_key_disk N: root.img (bound to tang1, which the guest cannot reach)
# with a second keyslot opened by the key file on the boot disk boot.img.
local_key_disk() {
  LK_UUID=$(uuid "$1") LK_TOKEN=$(token)
  tang_root_disk "$LK_UUID" "$LK_TOKEN" || return
  new_secret "$W/local-boot.key"
  disk_add_key "$W/root.img" "$W/pass" "$W/local-boot.key" || fail "luksAddKey local-boot.key" || return
  disk_boot "$W/boot.img" nbdeboot "$W/local-boot.key" || fail "making boot.img" || return
}

# 5: degraded mode: no network card, the local key file opens the volume.
t_degraded_local_key() {
  need_agent || return
  local_key_disk 5 || return
  boot "rd.luks.uuid=$LK_UUID ip=dhcp latchkey.boot=LABEL=nbdeboot" -d "$W/root.img" -d "$W/boot.img" -N
  expect_root "/dev/mapper/luks-$LK_UUID" "$LK_TOKEN" || return
}

# 29: degraded mode with the key's partition named by PARTUUID, as
# /etc/fstab often names /boot: boot and root are partitions of one GPT disk.
t_partuuid_local_key() {
  local guid
  need_agent || return
  local_key_disk 29 || return
  guid=$(uuid 29 2)
  disk_gpt "$W/disk.img" "$guid" "$W/boot.img" "$W/root.img" || fail "making the GPT disk" || return
  boot "rd.luks.uuid=$LK_UUID latchkey.boot=PARTUUID=${guid^^}" -d "$W/disk.img" -N
  expect_root "/dev/mapper/luks-$LK_UUID" "$LK_TOKEN" || return
}

# 6: the server's keys were rotated after binding; the old key still answers.
t_rotated_keys() {
  local u tok i
  need_agent || return
  u=$(uuid 6) tok=$(token)
  tang_root_disk "$u" "$tok" || return
  tang_rotate "$W/tang1.keys" || fail "tangd-rotate-keys" || return
  # A server may notice the new keys a moment later (ours polls the folder).
  for ((i = 0; i < 50; i++)); do
    fetch_adv "${PORT[tang1]}" "$W/tang1.adv.new" || fail "fetching the rotated adv" || return
    cmp -s "$W/tang1.adv" "$W/tang1.adv.new" || break
    sleep 0.1
  done
  ! cmp -s "$W/tang1.adv" "$W/tang1.adv.new" || fail "adv unchanged 5 s after rotation" || return
  boot "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}"
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
}

# 7: LUKS1 with the clevis JWE in LUKSMeta.
t_luks1_luksmeta() {
  local u tok
  need_agent || return
  u=$(uuid 7) tok=$(token)
  DISK_TYPE=luks1 tang_root_disk "$u" "$tok" || return
  luksmeta show -d "$W/root.img" | grep -q 'cb6e8904-81ff-40da-a84a-07ab9ab5715e' ||
    fail "clevis left no LUKSMeta slot" || return
  boot "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}"
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
}

# hostile MODE N ERROR: bound to a real Tang, answered at boot by an impostor.
# The agent must print ERROR (a regex: the specific complaint) naming the
# server within 15 s of network up (the answer comes at once; nothing to wait
# for), then exit non-zero ("agent failed rc=N") or prompt; never mount.
hostile() {
  local u tok net url='http://10\.0\.2\.100:80' err=$3
  need_agent || return
  u=$(uuid "$2") tok=$(token)
  tang_root_disk "$u" "$tok" || return
  server_stop tang1
  hostile_start tang1 "${PORT[tang1]}" "$1" || fail "starting the hostile server" || return
  boot "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}"
  expect 'latchkey: network up' || return
  net=$VM_AT
  expect "$err.*$url|$url.*$err" 45 'root mounted' || return
  NOTES+=("error $(secs_between "$net" "$VM_AT")s after network up: $(vm__text | grep -aE -m1 "$err.*$url|$url.*$err")")
  less_than "$(secs_between "$net" "$VM_AT")" 15 || fail "error only $(secs_between "$net" "$VM_AT")s after network up" || return
  expect 'agent failed rc=[1-9][0-9]*|[Pp]assphrase' 60 'root mounted' || return
}

# 8: hostile Tang: a JWK off the curve, then a body that is not JSON.
t_hostile_offcurve() { hostile offcurve 8 'invalid EC point'; }
t_hostile_garbage() { hostile garbage 9 'not valid JSON'; }

# 9: LUKS2 argon2id keyslots (64 MiB), 4096-byte sectors, local key file.
t_argon2_4k_local_key() {
  need_agent || return
  DISK_PBKDF=argon2id DISK_SECTOR=4096 local_key_disk 10 || return
  boot "rd.luks.uuid=$LK_UUID ip=dhcp latchkey.boot=LABEL=nbdeboot" -d "$W/root.img" -d "$W/boot.img" -N
  expect_root "/dev/mapper/luks-$LK_UUID" "$LK_TOKEN" 90 || return
}

# 10: two volumes, different bindings: root on tang1 by address, data on a
# 2-of-2 Shamir over tang2 and tang3 by name (/etc/hosts in the initrd).
t_two_volumes() {
  local u1 u2 t1 t2
  need_agent || return
  u1=$(uuid 11 1) u2=$(uuid 11 2) t1=$(token) t2=$(token)
  tang_up tang1 && tang_up tang2 && tang_up tang3 || return
  root_disk "$W/root.img" "$u1" "$t1" || return
  root_disk "$W/data.img" "$u2" "$t2" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind root" || return
  disk_bind_sss "$W/data.img" "$W/pass" 2 "http://tang2.test:80=$W/tang2.adv" \
    "http://tang3.test:80=$W/tang3.adv" || fail "clevis luks bind data" || return
  boot "rd.luks.name=$u1=root rd.luks.name=$u2=data ip=dhcp" -d "$W/root.img" -d "$W/data.img" \
    -f "10.0.2.100=${PORT[tang1]}" -f "10.0.2.101=${PORT[tang2]}" -f "10.0.2.102=${PORT[tang3]}"
  expect 'latchkey: volume root open' || return
  expect 'latchkey: volume data open' || return
  expect "^marker: $t2\$" || return
  expect_root /dev/mapper/root "$t1" || return
  vm_seen 'volume mounted: /dev/mapper/data$' || fail "data not mounted"
}

# --- disks bound by `latchkey nbde apply` ---------------------------------

LATCHKEY=${LATCHKEY:-$(dirname "$VMT_DIR")/target/release/latchkey}

# need_latchkey: `latchkey nbde apply` can run (and unshare a network
# namespace), or a skip/failure as need_agent.
need_latchkey() {
  local why=""
  if [[ ! -x $LATCHKEY ]]; then
    why="no latchkey at $LATCHKEY (make build)"
  elif ((EUID != 0)); then
    why="latchkey nbde apply runs in a network namespace: needs root"
  fi
  [[ -n $why ]] || return 0
  lacking "$why"
}

# nbde__serve OUTER_NETNS ADDR=PORT... -- CMD...: run in a network namespace
# of its own. Each ADDR:80 on its loopback reaches 127.0.0.1:PORT in
# OUTER_NETNS, as guestfwd does for the guest, while CMD runs.
nbde__serve() {
  local outer=$1 a pids=() rc i
  shift
  busybox ip link set lo up || return 1
  while [[ $1 != -- ]]; do
    a=$1
    shift
    busybox ip addr add "${a%%=*}/32" dev lo || return 1
    socat "TCP-LISTEN:80,bind=${a%%=*},reuseaddr,fork" \
      "EXEC:nsenter --net=$outer socat - TCP\\:127.0.0.1\\:${a#*=}" &
    pids+=($!)
    for ((i = 0; i < 100; i++)); do
      (exec 3<>"/dev/tcp/${a%%=*}/80") 2>/dev/null && break
      sleep 0.05
    done
  done
  shift
  "$@"
  rc=$?
  ((${#pids[@]} == 0)) || { kill "${pids[@]}"; wait "${pids[@]}"; } 2>/dev/null
  return "$rc"
}

# nbde_apply IMG N ARGS...: `latchkey nbde apply ARGS --json` on IMG with
# the recovery secret $W/pass and the boot directory $W/boot, given the
# first N of tang1..tang5 by the addresses the guest dials
# (http://10.0.2.100:80 .. .104:80), which reach the same servers here as in
# the guest. Its document in $W/apply.json.
nbde_apply() {
  local img=$1 n=$2 i fwd=() tang=()
  shift 2
  for ((i = 1; i <= n; i++)); do
    fwd+=("10.0.2.$((99 + i))=${PORT[tang$i]}")
    tang+=(--tang "http://10.0.2.$((99 + i)):80")
  done
  mkdir -p "$W/boot"
  # shellcheck disable=SC2016 # expanded by the inner bash
  unshare -n bash -c "$(declare -f nbde__serve)"'; nbde__serve "$@"' nbde__serve \
    "/proc/$$/ns/net" "${fwd[@]}" -- "$LATCHKEY" nbde apply -d "$img" --recovery-key-file "$W/pass" \
    --boot-dir "$W/boot" "${tang[@]}" "$@" --json >"$W/apply.json" ||
    fail "latchkey nbde apply ${tang[*]} $* failed (test.log)"
}

# nbde_check MODE T N: apply.json says it moved to MODE: a local key, or one
# binding with threshold T over N servers.
nbde_check() {
  python3 - "$W/apply.json" "$@" <<'PY' || fail "latchkey nbde apply: $(cat "$W/apply.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
mode, t, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
b = doc["bindings"]
ok = doc["mode"] == mode and doc["converged"] and doc["changed"]
if mode == "degraded":
    ok = ok and doc["localBootKeyPresent"] and b == []
else:
    ok = ok and not doc["localBootKeyPresent"] and len(b) == 1
    ok = ok and b[0]["threshold"] == int(t) and len(b[0]["tang"]) == n
sys.exit(0 if ok else 1)
PY
}

# nbde_disk N SERVERS MODE T [ARGS...]: root.img, moved to MODE (threshold
# T) by `latchkey nbde apply ARGS` over tang1..tangSERVERS, all serving.
nbde_disk() {
  local n=$2 mode=$3 t=$4 i
  NB_UUID=$(uuid "$1") NB_TOKEN=$(token)
  shift 4
  need_latchkey || return
  for ((i = 1; i <= n; i++)); do tang_up "tang$i" || return; done
  root_disk "$W/root.img" "$NB_UUID" "$NB_TOKEN" || return
  nbde_apply "$W/root.img" "$n" "$@" || return
  nbde_check "$mode" "$t" "$n"
}

# nbde_boot N [OPTION...]: boot root.img with tang1..tangN forwarded (a
# stopped one refuses connections), extra kernel command line options.
nbde_boot() {
  local n=$1 i fwd=()
  shift
  for ((i = 1; i <= n; i++)); do fwd+=(-f "10.0.2.$((99 + i))=${PORT[tang$i]}"); done
  boot "rd.luks.uuid=$NB_UUID ip=dhcp${1:+ $*}" -d "$W/root.img" "${fwd[@]}"
}

# 12: degraded: the local key apply wrote, on the boot disk, opens the volume
# in a VM without a network card.
t_nbde_degraded() {
  need_agent || return
  nbde_disk 12 0 degraded - || return
  disk_boot "$W/boot.img" nbdeboot "$W/boot/nbde/local-boot.key" || fail "making boot.img" || return
  boot "rd.luks.uuid=$NB_UUID ip=dhcp latchkey.boot=LABEL=nbdeboot" -d "$W/root.img" -d "$W/boot.img" -N
  expect "latchkey: volume luks-$NB_UUID open" || return
  expect_root "/dev/mapper/luks-$NB_UUID" "$NB_TOKEN" || return
}

# 13: tang: any one of three servers opens it; two are stopped.
t_nbde_tang() {
  need_agent || return
  nbde_disk 13 3 tang 1 || return
  server_stop tang1
  server_stop tang3
  nbde_boot 3
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$NB_UUID" "$NB_TOKEN" || return
  note_phases
}

# 14: quorum, 3 of 5, with exactly three up.
t_nbde_quorum() {
  need_agent || return
  nbde_disk 14 5 quorum 3 --threshold 3 || return
  server_stop tang2
  server_stop tang4
  nbde_boot 5
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$NB_UUID" "$NB_TOKEN" || return
  note_phases
}

# 15: quorum, 3 of 5, with two up: the agent names each failing server,
# recovers no key and prompts; the passphrase typed there opens the volume.
t_nbde_quorum_lost() {
  local url
  need_agent || return
  nbde_disk 15 5 quorum 3 --threshold 3 || return
  server_stop tang2
  server_stop tang4
  server_stop tang5
  nbde_boot 5 latchkey.deadline=20
  for url in http://10.0.2.101:80 http://10.0.2.103:80 http://10.0.2.104:80; do
    expect "of 5 shares.*${url//./\\.}: " 60 'root mounted' || fail "failing URL $url not reported: $FAIL_WHY" || return
  done
  expect '[Pp]assphrase' 60 'root mounted' || return
  NOTES+=("prompt at ${VM_AT}s after QEMU start")
  ! vm_seen 'latchkey: key recovered' || fail "a key recovered from two of five servers" || return
  vm_send "$(cat "$W/pass")"
  expect_root "/dev/mapper/luks-$NB_UUID" "$NB_TOKEN" 60 || return
}

# tangd recover comes from the host's build of our tangd.
TANGD_BIN=${TANGD_BIN:-$(dirname "$VMT_DIR")/target/release/tangd}

# 16: no network at all (no network card): the root is bound by Debian's
# clevis to tang1, which the guest cannot reach. Once the deadline has passed
# the console shows the recovery code; the host answers it with
# `tangd recover` from tang1's key directory and types the answer in, first
# with a typo in group 2, which is named, and the prompt asks again.
t_offline_codes() {
  local u tok code answer typo c
  need_agent || return
  if [[ ! -x $TANGD_BIN ]]; then
    lacking "no tangd at $TANGD_BIN (make build)"
    return
  fi
  u=$(uuid 16) tok=$(token)
  tang_root_disk "$u" "$tok" || return
  server_stop tang1
  boot "rd.luks.uuid=$u ip=dhcp latchkey.deadline=10 latchkey.prompt-delay=600" -d "$W/root.img" -N -t 300
  expect ', or a recovery answer: ' 150 || return
  NOTES+=("code shown at ${VM_AT}s after QEMU start")
  code=$(vm__text | grep -a -A3 -m1 '^code 1 of 1: http://10\.0\.2\.100:80$' | tail -n 3)
  [[ $(wc -l <<<"$code") == 3 ]] || fail "no code under 'code 1 of 1: http://10.0.2.100:80'" || return
  ! vm__text | grep -a 'latchkey:' | grep -aF -- "${code:0:11}" >/dev/null || fail "the code is in the kernel log" || return
  answer=$("$TANGD_BIN" recover --keys "$W/tang1.keys" <<<"$code" | grep -v '^#' | tr '\n' ' ')
  [[ ${#answer} -gt 130 ]] || fail "tangd recover gave no answer" || return
  c=${answer:14:1}
  typo=${answer:0:14}$([[ $c == Z ]] && echo Y || echo Z)${answer:15}
  vm_send "$typo"
  expect 'group 2 does not check' 60 || return
  vm_send "$answer"
  expect "latchkey: volume luks-$u open" 120 || return
  vm_seen "recovery codes for clevis token 0 \\(keyslot 1\\)" || fail "the volume was not opened by the recovery codes" || return
  expect_root "/dev/mapper/luks-$u" "$tok" 60 || return
}

# --- the TPM (swtpm attached to the guest) -------------------------------

# tpm_bind IMG PIN CONFIG: `clevis luks bind` (its tpm2 pin through tpm2-tools)
# against $W/tpm, the TPM the guest gets with -T, served to the host by a
# swtpm that is stopped again before the boot. With TPM_EXTEND="PCR..." those
# sha256 PCRs are extended first.
tpm_bind() {
  local img=$1 pin=$2 cfg=$3 pcr rc=0
  swtpm_start hosttpm "$W/tpm" || fail "starting swtpm" || return
  for pcr in ${TPM_EXTEND:-}; do
    TPM2TOOLS_TCTI=$TPM_TCTI tpm2_pcrextend "$pcr:sha256=$(printf '01%.0s' {1..32})" || rc=1
  done
  ((rc == 0)) && TPM2TOOLS_TCTI=$TPM_TCTI clevis luks bind -y -d "$img" -k "$W/pass" "$pin" "$cfg" || rc=1
  server_stop hosttpm
  ((rc == 0)) || fail "clevis luks bind $pin $cfg"
}

# 17: root bound with clevis tpm2 alone, to PCR 15 (which SeaBIOS leaves at
# zero, as it was on the host), in a guest with no network card: opened from
# the TPM, the network never tried.
t_tpm2_alone() {
  local u tok
  need_agent || return
  u=$(uuid 17) tok=$(token)
  root_disk "$W/root.img" "$u" "$tok" || return
  tpm_bind "$W/root.img" tpm2 '{"pcr_bank":"sha256","pcr_ids":"15"}' || return
  boot "rd.luks.uuid=$u" -d "$W/root.img" -N -T "$W/tpm"
  expect 'latchkey: tpm2 \(sha256:15\): unsealed' || return
  NOTES+=("unsealed at ${VM_AT}s after QEMU start")
  expect 'latchkey: key recovered' || return
  expect "latchkey: volume luks-$u open" || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
  ! vm_seen 'latchkey: .*network' || fail "the agent went for the network: $(vm__text | grep -a -m1 'latchkey: .*network')"
}

# tpm_sss_disk N T TPM2_CONFIG: root.img bound with Shamir T of {tpm2, tang1}.
tpm_sss_disk() {
  TS_UUID=$(uuid "$1") TS_TOKEN=$(token)
  tang_up tang1 || return
  root_disk "$W/root.img" "$TS_UUID" "$TS_TOKEN" || return
  tpm_bind "$W/root.img" sss "{\"t\":$2,\"pins\":{\"tpm2\":$3,\"tang\":[{\"url\":\"http://10.0.2.100:80\",\"adv\":\"$W/tang1.adv\"}]}}"
}

tpm_sss_boot() {
  boot "rd.luks.uuid=$TS_UUID ip=dhcp${1:+ $*}" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" -T "$W/tpm"
}

# 18: the node share sealed in the TPM and the cluster share from Tang, both
# needed (t=2): opens with Tang up; with Tang down the agent names the server,
# recovers no key and prompts, and the passphrase typed there opens the volume.
t_tpm2_tang_sss() {
  need_agent || return
  tpm_sss_disk 18 2 '{}' || return
  tpm_sss_boot
  expect 'latchkey: tpm2 \(no PCR policy\): unsealed' || return
  NOTES+=("unsealed at ${VM_AT}s after QEMU start")
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$TS_UUID" "$TS_TOKEN" || return
  note_phases
  server_stop tang1
  tpm_sss_boot latchkey.deadline=20
  expect 'latchkey: tpm2 \(no PCR policy\): unsealed' || return
  expect 'of 2 shares.*10\.0\.2\.100:80: ' 60 'root mounted' || fail "the dead Tang not reported: $FAIL_WHY" || return
  expect '[Pp]assphrase' 60 'root mounted' || return
  NOTES+=("Tang down: prompt at ${VM_AT}s after QEMU start")
  ! vm_seen 'latchkey: key recovered' || fail "a key recovered without Tang" || return
  vm_send "$(cat "$W/pass")"
  expect_root "/dev/mapper/luks-$TS_UUID" "$TS_TOKEN" 60 || return
}

# 19: t=1 of {tpm2 bound to PCR 15, tang}, sealed to a PCR 15 the guest's boot
# does not reproduce (extended on the host before sealing: PCRs start from
# zero at every power-on, so this is how a changed boot chain looks to the
# TPM): the TPM share is refused by name and Tang opens the volume.
t_tpm2_pcr_changed() {
  need_agent || return
  TPM_EXTEND=15 tpm_sss_disk 19 1 '{"pcr_bank":"sha256","pcr_ids":"15"}' || return
  tpm_sss_boot
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$TS_UUID" "$TS_TOKEN" || return
  ! vm_seen 'tpm2 \(sha256:15\): unsealed' || fail "the TPM unsealed against a changed PCR 15" || return
  # The refusal is logged when the TPM answers before Tang's share completes
  # the quorum; when Tang is first, the TPM step is cancelled unanswered. The
  # refusal itself is proven against swtpm on the host (crates/tpm2/tests).
  if vm_seen 'latchkey: .*tpm2 \(sha256:15\): PCR sha256:15 policy does not match'; then
    NOTES+=("TPM share refused before Tang's share came")
  else
    NOTES+=("Tang's share came first; the TPM step was cancelled unanswered")
  fi
  note_phases
}

# --- networks ---------------------------------------------------------------

# The NIC's carrier appears 15 s after the agent starts, past the agent's
# first 10 s wait for it: the failed attempt is not final, the link is
# used once it comes up, well within the 60 s deadline.
t_late_carrier() {
  local u tok up
  need_agent || return
  u=$(uuid 20) tok=$(token)
  tang_root_disk "$u" "$tok" || return
  boot "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" -L
  expect "latchkey: found luks-$u" 60 || return
  sleep 15
  vm_monitor 'set_link nic0 on' || fail "QEMU monitor: set_link nic0 on" || return
  up=$(vm_elapsed)
  NOTES+=("carrier raised at ${up}s")
  vm_seen 'no carrier on eth0' || fail "the agent did not report the missing carrier before it came" || return
  vm_seen 'latchkey: network up' && fail "network up before the carrier" && return
  expect 'latchkey: network up after [0-9.]+s' 60 || return
  NOTES+=("network up $(secs_between "$up" "$VM_AT")s after the carrier")
  expect "latchkey: volume luks-$u open" 30 || return
  expect_root "/dev/mapper/luks-$u" "$tok" 30
}

# ipv6_disk N: root.img bound to tang1, which serves on the host's ::1 and
# is dialled by the guest at slirp's IPv6 gateway (an IPv6 literal URL).
ipv6_disk() {
  V6_UUID=$(uuid "$1") V6_TOKEN=$(token)
  tang_up tang1 || return
  root_disk "$W/root.img" "$V6_UUID" "$V6_TOKEN" || return
  disk_bind_tang "$W/root.img" "$W/pass" "http://[fec0::2]:${PORT[tang1]}" "$W/tang1.adv" ||
    fail "clevis luks bind" || return
}

# A static IPv6 address in dracut's bracketed ip= form on a link with no
# IPv4 at all; Tang by IPv6 literal.
t_ipv6_static() {
  local TANG_HOST=::1
  need_agent || return
  ipv6_disk 21 || return
  boot "rd.luks.uuid=$V6_UUID ip=[fec0::15]::[fec0::2]:64::eth0:none" -d "$W/root.img" -6
  expect 'latchkey: eth0: static address fec0::15/64' || return
  expect 'latchkey: network up after [0-9.]+s' || return
  expect "latchkey: key recovered" || return
  expect_root "/dev/mapper/luks-$V6_UUID" "$V6_TOKEN" || return
  note_phases
}

# ip=auto6: an address from slirp's router advertisements (SLAAC), waited
# for before Tang is dialled.
t_ipv6_auto6() {
  local TANG_HOST=::1
  need_agent || return
  ipv6_disk 22 || return
  boot "rd.luks.uuid=$V6_UUID ip=auto6" -d "$W/root.img" -6
  expect 'latchkey: eth0: address fec0::[0-9a-f:]+/64 from router advertisements' || return
  expect 'latchkey: network up after [0-9.]+s' || return
  expect "latchkey: key recovered" || return
  expect_root "/dev/mapper/luks-$V6_UUID" "$V6_TOKEN" || return
  note_phases
}

# need_netdev_agent: need_agent, and an agent initrd that also loads the
# kernel's 802.1Q and bonding modules (AGENT_INITRD set to it in the
# caller's scope).
need_netdev_agent() {
  need_agent || return
  if [[ -z ${NETDEV_INITRD:-} ]]; then
    local KERNEL_WANT_MODULES=("${KERNEL_WANT_MODULES[@]}" 8021q bonding) extra=()
    [[ -z ${AGENT_EXTRA:-} ]] || mapfile -t extra <"$AGENT_EXTRA"
    NETDEV_INITRD=$OUT/agent-netdev-initrd.gz
    initrd_build "$NETDEV_INITRD" "$AGENT" "${extra[@]}" || { NETDEV_INITRD=""; fail "building the netdev initrd"; return; }
  fi
  AGENT_INITRD=$NETDEV_INITRD
}

# tang_disk N: root.img bound to tang1 at http://10.0.2.100:80.
tang_disk() {
  TD_UUID=$(uuid "$1") TD_TOKEN=$(token)
  tang_up tang1 || return
  root_disk "$W/root.img" "$TD_UUID" "$TD_TOKEN" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://10.0.2.100:80 "$W/tang1.adv" || fail "clevis luks bind"
}

# vlan_peer VID: lib/vlan-peer.py between the guest's eth0 (a trunk that
# passes only VLAN VID) and slirp; VP_NICS are vm_start's NIC options.
vlan_peer() {
  local i tq tp hq hp
  mkdir -p "$SERVERS_DIR"
  setsid python3 "$VMT_DIR/lib/vlan-peer.py" "$1" "$W/vlan-ports" >"$SERVERS_DIR/vlan-peer.log" 2>&1 </dev/null &
  echo $! >"$SERVERS_DIR/vlan-peer.pid"
  for ((i = 0; i < 100; i++)); do
    [[ -s $W/vlan-ports ]] && break
    sleep 0.05
  done
  read -r tq tp hq hp <"$W/vlan-ports" || return
  VP_NICS=(-n "udp:$tq:$tp" -n "hub-udp:$hq:$hp")
}

# A VLAN-tagged link: `vlan=eth0.5:eth0`, DHCP and Tang on VLAN 5 only
# (the peer drops untagged frames).
t_vlan() {
  local AGENT_INITRD=${AGENT_INITRD:-}
  need_netdev_agent || return
  tang_disk 23 || return
  vlan_peer 5 || fail "starting the VLAN peer" || return
  boot "rd.luks.uuid=$TD_UUID vlan=eth0.5:eth0 ip=eth0.5:dhcp" -d "$W/root.img" \
    -f "10.0.2.100=${PORT[tang1]}" "${VP_NICS[@]}"
  expect 'latchkey: eth0.5: VLAN 5 on eth0' || return
  expect 'latchkey: eth0.5: DHCP lease 10\.0\.2\.15/24' || return
  expect 'latchkey: network up after [0-9.]+s' || return
  expect_root "/dev/mapper/luks-$TD_UUID" "$TD_TOKEN" || return
  grep -q 'tagged frame for VLAN 5 passed' "$SERVERS_DIR/vlan-peer.log" ||
    fail "the peer saw no frame tagged for VLAN 5" || return
  note_phases
}

# An active-backup bond with miimon over two NICs on one hub with slirp,
# the first (the bond's first slave) without carrier from before the agent
# starts: the bond runs on the second.
t_bond() {
  local AGENT_INITRD=${AGENT_INITRD:-}
  need_netdev_agent || return
  tang_disk 24 || return
  boot "rd.luks.uuid=$TD_UUID bond=bond0:eth0,eth1:mode=active-backup,miimon=100 ip=bond0:dhcp" \
    -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" -n "udp:$(free_port):$(free_port)" -n hub -L
  expect 'latchkey: bond0: bond \(active-backup\) of eth0, eth1' || return
  expect 'latchkey: bond0: DHCP lease 10\.0\.2\.15/24' || return
  expect 'latchkey: network up after [0-9.]+s' || return
  expect_root "/dev/mapper/luks-$TD_UUID" "$TD_TOKEN" || return
  vm_seen 'bond0: \(slave eth0\): Enslaving as a backup interface with a down link' ||
    fail "the kernel did not take eth0 as a down backup" || return
  vm_seen 'bond0: \(slave eth1\): making interface the new active one' ||
    fail "the kernel did not make eth1 the active slave" || return
  note_phases
}

# An 802.3ad bond with miimon and fast LACP over two NICs on one hub with
# slirp, which speaks no LACP: the bond still carries DHCP and Tang on one
# aggregator, as a switch port without LACP would leave it. The NICs report
# a speed (802.3ad aggregates only ports whose speed it knows).
t_bond_lacp() {
  local AGENT_INITRD=${AGENT_INITRD:-}
  need_netdev_agent || return
  tang_disk 25 || return
  # Held up 10 s after the root is mounted: LACP complains a few seconds in,
  # which can be after a fast boot's end.
  boot "rd.luks.uuid=$TD_UUID bond=bond0:eth0,eth1:mode=802.3ad,miimon=100,lacp_rate=fast ip=bond0:dhcp test.hold=10" \
    -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" -n hub -n hub
  expect 'latchkey: bond0: bond \(802\.3ad\) of eth0, eth1' || return
  expect 'latchkey: bond0: DHCP lease 10\.0\.2\.15/24' || return
  # LACP's own complaints, from bond_3ad.c alone: no partner answers, or
  # the other port (on the same hub) hears this system's LACPDUs.
  expect 'bond0: .*(No 802\.3ad response from the link partner|An illegal loopback occurred)' 20 ||
    fail "the kernel's bond sent no LACPDU: $FAIL_WHY" || return
  expect_root "/dev/mapper/luks-$TD_UUID" "$TD_TOKEN" || return
  note_phases
}

# netns_up: a network namespace with only its loopback up, held by a sleep
# we started (stopped with the servers); NETNS is its path.
netns_up() {
  mkdir -p "$SERVERS_DIR"
  setsid unshare -n sleep 900 </dev/null >/dev/null 2>&1 &
  echo $! >"$SERVERS_DIR/netns.pid"
  NETNS=/proc/$!/ns/net
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(readlink "$NETNS") != "$(readlink /proc/$$/ns/net)" ]] && break
    sleep 0.05
  done
  nsenter "--net=$NETNS" ip link set lo up
}

# A Tang URL by name (not in the initrd's /etc/hosts): the agent asks the
# name server of nameserver=10.0.2.2, a dnsmasq on the loopback of the
# namespace QEMU runs in (slirp maps 10.0.2.2 to it), for A and AAAA.
t_dns_name() {
  local u tok
  need_agent || return
  u=$(uuid 26) tok=$(token)
  tang_up tang1 || return
  root_disk "$W/root.img" "$u" "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" http://tang.by-dns.test:80 "$W/tang1.adv" || fail "clevis luks bind" || return
  netns_up || fail "making a network namespace" || return
  setsid nsenter "--net=$NETNS" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --user=root --bind-interfaces --listen-address=127.0.0.1 --port=53 --local=/test/ \
    --address=/tang.by-dns.test/10.0.2.100 --log-queries --log-facility=- \
    </dev/null >"$SERVERS_DIR/dnsmasq.log" 2>&1 &
  echo $! >"$SERVERS_DIR/dnsmasq.pid"
  boot "rd.luks.uuid=$u ip=dhcp nameserver=10.0.2.2" -d "$W/root.img" -f "10.0.2.100=${PORT[tang1]}" -x "$NETNS"
  expect 'latchkey: network up after [0-9.]+s' || return
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
  grep -q 'query\[A\] tang\.by-dns\.test from' "$SERVERS_DIR/dnsmasq.log" &&
    grep -q 'query\[AAAA\] tang\.by-dns\.test from' "$SERVERS_DIR/dnsmasq.log" ||
    fail "dnsmasq was not asked for A and AAAA of tang.by-dns.test" || return
  note_phases
}

# ip=dhcp6 on an IPv6-only link: QEMU's NIC on a tap in a bridge inside a
# namespace of the test's own, with no IPv4 address anywhere in it; dnsmasq
# there is the DHCPv6 server (stateful: its router advertisements carry the
# on-link prefix but no SLAAC flag) and Tang listens on the bridge's
# address, bound by IPv6 literal.
t_dhcp6() {
  local u tok net=fd6c:6c6b:6 v4
  local TANG_HOST=$net::1 TANG_NETNS
  need_agent || return
  command -v dnsmasq >/dev/null || { lacking "dnsmasq not installed (dnsmasq-base)"; return; }
  u=$(uuid 27) tok=$(token)
  netns_up || fail "making a network namespace" || return
  TANG_NETNS=$NETNS
  # A dummy port keeps the bridge's carrier (and its addresses) up before
  # QEMU opens the tap.
  nsenter "--net=$NETNS" bash -ec "
    ip link add br0 type bridge
    ip link add d0 type dummy && ip link set d0 master br0 && ip link set d0 up
    ip tuntap add dev tap0 mode tap && ip link set tap0 master br0 && ip link set tap0 up
    ip addr add $net::1/64 dev br0 nodad && ip link set br0 up" || fail "making the bridge and tap" || return
  tang_up tang1 || return
  root_disk "$W/root.img" "$u" "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" "http://[$net::1]:${PORT[tang1]}" "$W/tang1.adv" || fail "clevis luks bind" || return
  setsid nsenter "--net=$NETNS" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --port=0 --user=root --bind-interfaces --interface=br0 --enable-ra \
    "--dhcp-range=$net::100,$net::1ff,64,1h" "--dhcp-option=option6:dns-server,[$net::53]" \
    "--dhcp-leasefile=$W/dnsmasq.leases" --log-dhcp --log-facility=- \
    </dev/null >"$SERVERS_DIR/dnsmasq.log" 2>&1 &
  echo $! >"$SERVERS_DIR/dnsmasq.pid"
  boot "rd.luks.uuid=$u ip=dhcp6" -d "$W/root.img" -n tap:tap0 -x "$NETNS"
  expect "latchkey: eth0: DHCPv6 lease $net::1[0-9a-f]{2}/128, DNS $net::53\$" || return
  expect 'latchkey: network up after [0-9.]+s' || return
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
  vm_seen 'DHCP lease' && fail "the agent got an IPv4 lease on an IPv6-only link" && return
  v4=$(nsenter "--net=$NETNS" ip -4 -o addr show scope global)
  [[ -z $v4 ]] || fail "the namespace has IPv4 addresses: $v4" || return
  grep -qE "DHCPREPLY\(br0\) $net::1[0-9a-f]{2} " "$SERVERS_DIR/dnsmasq.log" ||
    fail "dnsmasq logged no DHCPv6 reply with an address" || return
  note_phases
}

# 33: HTTPS Tang: tangd behind a TLS front (socat) whose certificate a test
# CA issued for 10.0.2.100. The TLS agent, with the CA bundle in the initrd
# and latchkey.ca= recorded in its initrd.conf as the initrd hooks record it,
# opens the root; booted again with latchkey.ca= naming an unrelated CA on
# the kernel command line (which wins), it names the URL and the unknown
# issuer and falls back to the prompt, where the passphrase opens the root.
t_https_tang() {
  local u tok pki=$W/pki url=https://10.0.2.100:80 initrd=$W/agent-tls-initrd.gz
  [[ $AGENT == none ]] && { lacking "AGENT=none"; return; }
  [[ -x $AGENT_TLS ]] || { lacking "no TLS agent at $AGENT_TLS (make agent-tls)"; return; }
  u=$(uuid 33) tok=$(token)
  tang_up tang1 || return
  "$VMT_DIR/../crates/testkit/test-ca" "$pki" IP:10.0.2.100 || fail "making the test CA" || return
  PORT[tls]=$(free_port)
  server_run tls "${PORT[tls]}" socat \
    "OPENSSL-LISTEN:${PORT[tls]},bind=127.0.0.1,reuseaddr,fork,verify=0,cert=$pki/server.pem,key=$pki/server.key" \
    "TCP:127.0.0.1:${PORT[tang1]}" || fail "starting the TLS front" || return
  root_disk "$W/root.img" "$u" "$tok" || return
  disk_bind_tang "$W/root.img" "$W/pass" "$url" "$W/tang1.adv" || fail "clevis luks bind" || return
  echo "latchkey.ca=/etc/latchkey/tang-ca.pem" >"$W/initrd.conf"
  initrd_build "$initrd" "$AGENT_TLS" "$W/initrd.conf=etc/latchkey/initrd.conf" \
    "$pki/ca.pem=etc/latchkey/tang-ca.pem" "$pki/other-ca.pem=etc/latchkey/other-ca.pem" ||
    fail "building the TLS agent initrd" || return

  vm_start "$W/vm" "$KERNEL_IMAGE" "$initrd" "rd.luks.uuid=$u ip=dhcp" -d "$W/root.img" -f "10.0.2.100=${PORT[tls]}"
  expect 'latchkey: key recovered' || return
  expect_root "/dev/mapper/luks-$u" "$tok" || return
  note_phases

  vm_start "$W/vm-wrong-ca" "$KERNEL_IMAGE" "$initrd" "rd.luks.uuid=$u ip=dhcp latchkey.ca=/etc/latchkey/other-ca.pem" \
    -d "$W/root.img" -f "10.0.2.100=${PORT[tls]}"
  expect "${url//./\\.}: /rec/[^ ]*: TLS: unknown issuer: the server's certificate is not signed by a CA in /etc/latchkey/other-ca\\.pem" 60 'root mounted' || return
  NOTES+=("wrong CA at ${VM_AT}s: $(vm__text | grep -aoE -m1 'https:[^ ]*: /rec/[^ ]*: TLS: .*')")
  expect '[Pp]assphrase' 60 '' || return
  vm_send "$(cat "$W/pass")"
  expect_root "/dev/mapper/luks-$u" "$tok" 60 || return
}
