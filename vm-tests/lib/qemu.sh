# shellcheck shell=bash disable=SC2034 # VM_AT, VM_WHY: read by the caller
# One QEMU guest at a time, under TCG (the host's nested KVM cannot run a
# stock kernel), with its serial console on a pair of FIFOs so a test can
# both read it and type into it. The kernel skips its IO-APIC timer check
# (no_timer_check, as cloud images do): on a busy host TCG's timer looks
# broken to it and it panics.
#
#   vm_start DIR KERNEL INITRD APPEND [options]
#       -d IMG          a virtio disk (vda, vdb, ... in order)
#       -f IP=PORT      guestfwd: guest tcp IP:80 -> host 127.0.0.1:PORT
#       -N              no network card at all
#       -T STATEDIR     a TPM 2.0 (tpm-tis): swtpm on STATEDIR, which the
#                       host may have used before (tpm_host_start), so a key
#                       sealed there unseals in the guest. SeaBIOS starts
#                       the TPM and extends PCRs 0-7; 8 and up stay zero.
#       -6              an IPv6-only link (slirp: fec0::/64, router and host
#                       fec0::2, which reaches the host's ::1; no -f then)
#       -n NIC          instead of the one NIC on slirp, NICs in order (eth0,
#                       eth1, ...; devices nic0, nic1, ... for set_link), each
#                         hub         on a hub with slirp (and -f's guestfwd)
#                         udp:L:R     on a UDP socket: QEMU's end 127.0.0.1:L,
#                                     frames to and from 127.0.0.1:R
#                         tap:IFNAME  on the existing tap device IFNAME (with
#                                     -x: of that namespace); no slirp
#                       or, not a NIC: hub-udp:L:R, a UDP socket on that hub
#       -x NETNS        run QEMU in this network namespace (a path such as
#                       /proc/PID/ns/net, holding only a loopback): slirp is
#                       not restricted there, so the guest reaches that
#                       loopback at 10.0.2.2; -f still reaches this one
#       -L              the network card starts with its link down (no
#                       carrier) until `vm_monitor 'set_link nic0 on'`
#       -t SECONDS      hard limit for the whole boot (default 150)
#       -m MIB          guest memory (default 256)
#     DIR gets console.log (console lines stamped with
#     seconds since QEMU started), qemu.log, monitor.sock and swtpm.log.
#   vm_wait REGEX [SECONDS]  wait until the console matches (grep -E);
#                            sets VM_AT to the stamp of the matching line
#   vm_seen REGEX            the console so far matches REGEX
#   vm_send LINE             type LINE and Enter on the serial console
#   vm_monitor COMMAND       a QEMU monitor command (e.g. set_link nic1 off)
#   vm_wait_exit [SECONDS]   wait for QEMU to end; returns its status
#   vm_stop                  end QEMU now (and the console reader)
#   vm_elapsed               seconds since QEMU started, e.g. 4.213

VM_PID="" VM_STAMP_PID="" VM_DIR="" VM_RC="" VM_LIMIT="" VM_TPM_PID=""

vm_elapsed() {
  local us=$((${EPOCHREALTIME/./} - VM_T0US))
  printf '%d.%03d\n' $((us / 1000000)) $((us % 1000000 / 1000))
}

# vm__stamp PARTIAL: prefixes each console line with the time its first
# byte arrived. A line still without its newline (a prompt, or a line the
# guest is slow to finish) is kept whole in PARTIAL, never split in the log.
vm__stamp() {
  local partial=$1 line rc pending="" stamp=""
  while :; do
    line=
    IFS= read -r -t 0.2 line
    rc=$?
    if ((rc == 0)); then
      printf '[%8s] %s\n' "${stamp:-$(vm_elapsed)}" "$pending${line%$'\r'}"
      [[ -z $pending ]] || : >"$partial"
      pending="" stamp=""
    elif ((rc > 128)); then
      [[ -n $line ]] || continue
      [[ -n $pending ]] || stamp=$(vm_elapsed)
      pending+=$line
      printf '[%8s] %s\n' "$stamp" "$pending" >"$partial"
    else
      [[ -z $pending$line ]] || printf '[%8s] %s\n' "${stamp:-$(vm_elapsed)}" "$pending$line"
      break
    fi
  done
}

vm_start() {
  VM_DIR=$1
  local kernel=$2 initrd=$3 append=$4 opt nic=1 netdev limit=150 mem=256 tpmstate="" link_down=0 v6only=0
  local drives=() fwds="" tpm=() paused=() nics=() n spec hub=0 netns="" in_ns=() restrict=on fwd_cmd
  shift 4
  OPTIND=1
  while getopts '6d:f:Ln:NT:t:m:x:' opt; do
    case $opt in
      d) drives+=(-drive "file=$OPTARG,format=raw,if=virtio") ;;
      f) fwds+=",guestfwd=tcp:${OPTARG%%=*}:80-cmd:@NS@socat - TCP:127.0.0.1:${OPTARG#*=}" ;;
      6) v6only=1 ;;
      L) link_down=1 paused=(-S) ;;
      n) nics+=("$OPTARG") ;;
      N) nic=0 ;;
      T) tpmstate=$OPTARG ;;
      t) limit=$OPTARG ;;
      m) mem=$OPTARG ;;
      x) netns=$OPTARG ;;
      *) return 2 ;;
    esac
  done
  fwd_cmd=""
  if [[ -n $netns ]]; then
    in_ns=(nsenter "--net=$netns") restrict=off
    fwd_cmd="nsenter --net=/proc/$$/ns/net "
  fi
  fwds=${fwds//@NS@/$fwd_cmd}
  mkdir -p "$VM_DIR"
  if [[ -n $tpmstate ]]; then
    vm__swtpm "$tpmstate" "$limit" || return 1
    # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
    tpm=(-chardev "socket,id=chrtpm,path=$VM_DIR/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
      -device tpm-tis,tpmdev=tpm0)
  fi
  rm -f "$VM_DIR"/serial.{in,out} "$VM_DIR"/console.{log,partial} "$VM_DIR/monitor.sock"
  mkfifo "$VM_DIR/serial.in" "$VM_DIR/serial.out"
  : >"$VM_DIR/console.log"
  : >"$VM_DIR/console.partial"
  netdev=()
  if ((nic && v6only)); then
    # Not restricted: restrict=on would also cut the guest off from the
    # gateway's mapping to the host's loopback, the only way in without
    # guestfwd (which is IPv4 only). The guest dials nothing else.
    # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
    netdev=(-netdev "user,id=n0,ipv4=off,ipv6=on" -device virtio-net-pci,netdev=n0,id=nic0)
  elif ((nic && ${#nics[@]})); then
    # A speed and duplex to report: an 802.3ad bond aggregates only ports
    # whose speed it knows.
    local link=speed=1000,duplex=full
    n=0
    for spec in "${nics[@]}"; do
      IFS=: read -r -a spec <<<"$spec"
      case ${spec[0]} in
        hub) netdev+=(-netdev "hubport,id=n$n,hubid=0" -device "virtio-net-pci,netdev=n$n,id=nic$n,$link") hub=1 ;;
        udp) netdev+=(-netdev "socket,id=n$n,udp=127.0.0.1:${spec[2]},localaddr=127.0.0.1:${spec[1]}"
          -device "virtio-net-pci,netdev=n$n,id=nic$n,$link") ;;
        tap) netdev+=(-netdev "tap,id=n$n,ifname=${spec[1]},script=no,downscript=no"
          -device "virtio-net-pci,netdev=n$n,id=nic$n,$link") ;;
        hub-udp) netdev+=(-netdev "socket,id=x$n,udp=127.0.0.1:${spec[2]},localaddr=127.0.0.1:${spec[1]}"
          -netdev "hubport,id=h$n,hubid=0,netdev=x$n") hub=1 n=$((n - 1)) ;;
        *) return 2 ;;
      esac
      n=$((n + 1))
    done
    if ((hub)); then
      netdev+=(-netdev "user,id=u0,restrict=$restrict,ipv6=off$fwds" -netdev "hubport,id=hu,hubid=0,netdev=u0")
    fi
  elif ((nic)); then
    # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
    netdev=(-netdev "user,id=n0,restrict=$restrict,ipv6=off$fwds" -device virtio-net-pci,netdev=n0,id=nic0)
  fi
  VM_T0US=${EPOCHREALTIME/./}
  # The reader must open the FIFO before QEMU writes, and ends when QEMU
  # closes it (QEMU holds the only write end).
  (vm__stamp "$VM_DIR/console.partial" <"$VM_DIR/serial.out" >"$VM_DIR/console.log") &
  VM_STAMP_PID=$!
  "${in_ns[@]}" timeout -k 3 "$limit" qemu-system-x86_64 \
    -accel tcg -cpu max -m "$mem" -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 panic=-1 no_timer_check $append" \
    -chardev "pipe,id=s0,path=$VM_DIR/serial" -serial chardev:s0 \
    -monitor "unix:$VM_DIR/monitor.sock,server=on,wait=off" "${paused[@]}" \
    "${drives[@]}" "${netdev[@]}" "${tpm[@]}" \
    >"$VM_DIR/qemu.log" 2>&1 &
  VM_PID=$! VM_RC="" VM_LIMIT=$limit
  echo "$append" >"$VM_DIR/cmdline"
  if ((link_down)); then
    # Started paused (-S): the link goes down before the guest runs a
    # single instruction, so its driver never sees carrier at probe time.
    vm_monitor 'set_link nic0 off' && vm_monitor cont
  fi
}

vm_monitor() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S $VM_DIR/monitor.sock ]] && break
    sleep 0.05
  done
  printf '%s\n' "$1" | socat -t 1 - "UNIX-CONNECT:$VM_DIR/monitor.sock" >>"$VM_DIR/monitor.log" 2>&1
}

# vm__swtpm STATEDIR LIMIT: swtpm for QEMU's TPM emulator backend on a unix
# socket in VM_DIR; it ends when QEMU closes the control channel
# (--terminate), or at LIMIT + 10 s.
vm__swtpm() {
  local state=$1 limit=$2 i
  rm -f "$VM_DIR/swtpm.sock"
  mkdir -p "$state"
  timeout -k 3 $((limit + 10)) swtpm socket --tpm2 --tpmstate "dir=$state" --terminate \
    --ctrl "type=unixio,path=$VM_DIR/swtpm.sock" --log "file=$VM_DIR/swtpm.log" </dev/null &
  VM_TPM_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -S $VM_DIR/swtpm.sock ]] && return 0
    kill -0 "$VM_TPM_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "vm: swtpm did not create $VM_DIR/swtpm.sock: $(cat "$VM_DIR/swtpm.log" 2>/dev/null)" >&2
  vm__swtpm_stop
  return 1
}

vm__swtpm_stop() {
  [[ -n $VM_TPM_PID ]] || return 0
  kill "$VM_TPM_PID" 2>/dev/null
  wait "$VM_TPM_PID" 2>/dev/null
  VM_TPM_PID=""
  return 0
}

# The stamped log is what people read; matching happens on it too, minus the
# stamps, so a pattern never straddles a stamp.
vm__stamped() {
  cat "$VM_DIR/console.log" "$VM_DIR/console.partial" 2>/dev/null
}

vm__text() {
  vm__stamped | sed 's/^\[ *[0-9.]*\] //'
}

# vm_seen REGEX: the console so far has a line matching REGEX. (Not grep -q:
# quitting early would kill sed with SIGPIPE and fail under pipefail.)
vm_seen() {
  vm__text | grep -aE -- "$1" >/dev/null
}

# vm__at REGEX: the stamp of the first line matching REGEX.
vm__at() {
  local n
  n=$(vm__text | grep -anE -m1 -- "$1" | cut -d: -f1)
  [[ -n $n ]] || return 1
  VM_AT=$(vm__stamped | sed -n "${n}s/^\[ *\([0-9.]*\)\].*/\1/p")
}

vm_wait() {
  local re=$1 limit=${2:-60} end
  end=$((${EPOCHREALTIME/./} + limit * 1000000))
  while :; do
    vm__at "$re" && return 0
    if ! kill -0 "$VM_PID" 2>/dev/null; then
      # QEMU is gone; let the reader drain, then look once more.
      vm__drain
      vm__at "$re" && return 0
      vm__reap
      VM_WHY="VM ended without printing /$re/"
      ((VM_RC == 124 || VM_RC == 137)) && VM_WHY+=" (killed at its ${VM_LIMIT}s limit)"
      return 1
    fi
    if ((${EPOCHREALTIME/./} > end)); then
      VM_WHY="no /$re/ within ${limit}s"
      return 1
    fi
    sleep 0.1
  done
}

vm_send() {
  printf '%s\n' "$1" >"$VM_DIR/serial.in"
}

vm_wait_exit() {
  local limit=${1:-60} i
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$VM_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$VM_PID" 2>/dev/null; then
    VM_WHY="VM still running after ${limit}s"
    vm_stop
    return 124
  fi
  vm__reap
  vm__drain
  vm__swtpm_stop
  return "$VM_RC"
}

# vm__reap: QEMU's exit status (timeout's 124 or 137 at the time limit), once.
vm__reap() {
  [[ -n $VM_RC ]] && return 0
  wait "$VM_PID"
  VM_RC=$?
}

# vm__drain: the reader ends at EOF once QEMU is gone; if QEMU never opened
# the FIFO the reader still sits in open(), so give it a moment, then end it.
vm__drain() {
  local i
  for ((i = 0; i < 20; i++)); do
    kill -0 "$VM_STAMP_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill "$VM_STAMP_PID" 2>/dev/null
  wait "$VM_STAMP_PID" 2>/dev/null
  return 0
}

vm_stop() {
  [[ -n $VM_PID ]] || return 0
  if kill -0 "$VM_PID" 2>/dev/null; then
    kill "$VM_PID" 2>/dev/null
    wait "$VM_PID" 2>/dev/null
  fi
  vm__drain
  vm__swtpm_stop
}
