# shellcheck shell=bash
# The pieces of bench/boot: one timed boot and the table. Uses vm-tests/lib
# (kernel, disk, qemu; the root disk both initrds open is disk_root's) and
# the globals bench/boot sets: KERNEL_IMAGE, APPEND, OUT, TOKEN, LIMIT, and
# per set DISK (the root disk) and FWD (vm_start's -f options).
#
#   bench_boot WHO N INITRD START_REGEX NET_REGEX OPEN_REGEX
#       boots INITRD once, records when the initrd's first program spoke,
#       the network came up, the volume opened and the root was mounted, in
#       TIMES[WHO.start|net|open|root], and open minus net in TIMES[WHO.unlock]
#   bench_demo N
#       one boot of the demo scenario, latchkey only (no clevis runs there)
#   bench_table LATCHKEY_INITRD CLEVIS_INITRD
#       one table per set (latchkey-SET beside clevis-SET), the sizes, then
#       the demo's figure

declare -A TIMES=()
FAILED=0

# bench__at LOG REGEX: the stamp of the first console line matching REGEX.
bench__at() {
  grep -aE -m1 -- "^\[ *[0-9.]+\] .*($2)" "$1" | sed 's/^\[ *\([0-9.]*\)\].*/\1/'
}

# shellcheck disable=SC2153 # TOKEN, DISK, FWD, OUT: set by bench/boot
bench_boot() {
  local who=$1 n=$2 initrd=$3 start_re=$4 net_re=$5 open_re=$6 dir log start net open root why=""
  local fatal='agent failed rc=[0-9]+|Kernel panic|init: FAILED|ALERT!|\(initramfs\)'
  dir=$OUT/$who-$n
  vm_start "$dir" "$KERNEL_IMAGE" "$initrd" "$APPEND" -d "$DISK" "${FWD[@]}" -t "$LIMIT"
  if ! vm_wait "root mounted: /dev/mapper/cryptroot\$|$fatal" "$LIMIT"; then
    why=$VM_WHY
  elif ! vm_seen 'root mounted: /dev/mapper/cryptroot$'; then
    why="console says '$(vm__text | grep -aE -m1 -- "$fatal")'"
  elif ! vm_wait "^marker: $TOKEN\$" 20; then
    why="no marker: $VM_WHY"
  fi
  vm_wait_exit 30 >/dev/null 2>&1
  vm_stop
  log=$dir/console.log
  start=$(bench__at "$log" "$start_re")
  net=$(bench__at "$log" "$net_re")
  open=$(bench__at "$log" "$open_re")
  root=$(bench__at "$log" 'root mounted: /dev/mapper/cryptroot$')
  if [[ -n $why ]]; then
    FAILED=$((FAILED + 1))
    printf '  %-15s run %d: FAILED: %s (log: %s)\n' "$who" "$n" "$why" "$log"
    return 1
  fi
  TIMES[$who.start]+=" ${start:-}"
  TIMES[$who.net]+=" ${net:-}"
  TIMES[$who.open]+=" ${open:-}"
  TIMES[$who.root]+=" $root"
  [[ -z $net || -z $open ]] || TIMES[$who.unlock]+=" $(awk -v a="$net" -v b="$open" 'BEGIN { printf "%.3f", b - a }')"
  printf '  %-15s run %d: initrd running %7ss  network up %7ss  volume open %7ss  root mounted %7ss\n' \
    "$who" "$n" "${start:-?}" "${net:-?}" "${open:-?}" "$root"
}

# bench_demo N: boot N of the demo scenario (vm-tests/demo: latchkey's own
# busybox initrd, no udev, one Tang binding); the agent's own "all volumes
# open after" figure, which counts from its start.
bench_demo() {
  local n=$1 log=$OUT/demo-$1.log t
  if ! vm-tests/demo >"$log" 2>&1; then
    FAILED=$((FAILED + 1))
    printf '  %-15s run %d: FAILED (log: %s)\n' demo "$n" "$log"
    return 1
  fi
  t=$(grep -ao -m1 'latchkey: all volumes open after [0-9.]*s' "$log" | head -1 | grep -o '[0-9.]*s$' | tr -d s)
  TIMES[demo.all]+=" $t"
  printf '  %-15s run %d: agent start -> all volumes open %ss\n' demo "$n" "${t:-?}"
}

# bench__median VALUES...: the median, or "-" when there are none.
bench__median() {
  printf '%s\n' "$@" | sort -n | awk 'NF { v[n++] = $1 } END {
    if (!n) { print "-"; exit }
    printf "%.2f\n", n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}

bench__ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f\n", a / b }'
}

bench_table() {
  local ours=$1 theirs=$2 set k a b r s_ours s_theirs size_ratio
  local -A ratio=()
  for set in tang sss; do
    printf '\n%-36s %14s %14s %9s\n' "$set" "latchkey" "clevis" "ratio"
    for k in start:"QEMU start -> initrd running (s)" net:"QEMU start -> network up (s)" open:"QEMU start -> volume open (s)" \
      root:"QEMU start -> root mounted (s)" unlock:"network up -> volume open (s)"; do
      # shellcheck disable=SC2086 # word lists of times
      a=$(bench__median ${TIMES[latchkey-$set.${k%%:*}]:-})
      # shellcheck disable=SC2086
      b=$(bench__median ${TIMES[clevis-$set.${k%%:*}]:-})
      r=$(bench__ratio "$a" "$b")
      ratio[$set.${k%%:*}]=$r
      [[ ${k%%:*} != unlock ]] || ratio[$set.unlock_s]=$a
      printf '%-36s %14s %14s %9s\n' "median ${k#*:}" "$a" "$b" "$r"
    done
  done
  s_ours=$(stat -c %s "$ours") s_theirs=$(stat -c %s "$theirs")
  size_ratio=$(bench__ratio "$s_ours" "$s_theirs")
  printf '\n%-36s %14s %14s %9s\n' "initrd size (bytes)" "$s_ours" "$s_theirs" "$size_ratio"
  printf '\nboth: Debian 12 initramfs-tools + cryptsetup-initramfs; latchkey hook vs clevis-initramfs\n'
  printf 'network up: latchkey "latchkey: network up", clevis (klibc) "IP-Config: eth0 complete"\n'
  printf 'volume open: "latchkey: volume cryptroot open" / "cryptsetup: cryptroot: set up successfully"\n'
  printf 'root mounted: the volume'"'"'s own /sbin/init after switch_root (both)\n'
  printf 'target: root mounted (tang) at most 0.5x clevis'"'"'s time: %s\n' "$(bench__verdict "${ratio[tang.root]}" 0.5)"
  printf 'target: network up -> volume open (tang) at most 0.3 s: %s\n' "$(bench__verdict "${ratio[tang.unlock_s]}" 0.3)"
  # shellcheck disable=SC2086 # a word list of times
  a=$(bench__median ${TIMES[demo.all]:-})
  printf '\n%-52s %14s\n' "demo (vm-tests/demo: latchkey's own initrd, no udev)" "latchkey"
  printf '%-52s %14s\n' "median agent start -> all volumes open (s)" "$a"
  printf 'target: agent start -> all volumes open (demo) at most 0.3 s: %s\n' "$(bench__verdict "$a" 0.3)"
  ((FAILED == 0)) || { echo "bench/boot: $FAILED boot(s) failed"; return 1; }
}

bench__verdict() {
  awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "not measured"; else if (r <= t) print "met (" r ")"; else print "NOT met (" r ")" }'
}
