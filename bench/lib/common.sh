# shellcheck shell=bash
# What the side-by-side benchmarks share: scratch space and Tang servers on
# 127.0.0.1, stopped when the script exits, and the median of the rounds. The
# script sets BENCH (its name, for messages) and, to start Tang servers,
# KEYGEN, TANGD (Debian's) and OUR_TANGD.
#
#   bench_work TAG       $work: a new scratch dir, removed on exit with every
#                        process in $pids killed
#   port_free PORT       nothing listens on 127.0.0.1:PORT
#   free_pair            a port P with P and P+1 both free
#   wait_port PORT       waits up to 5 s for a listener on PORT, or exits
#   start_tang NAME      fresh keys in $work/NAME served on a free port by our
#                        tangd (SERVER=tangd, the default when it is built) or
#                        Debian's tang behind socat (SERVER=tang); sets URL
#   median               the median of the microsecond figures on stdin, in ms

bench_work() {
  work=$(mktemp -d "/tmp/latchkey-bench-$1.XXXXXX")
  pids=()
  trap bench__cleanup EXIT
}

bench__cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_pair() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    port_free "$p" && port_free $((p + 1)) && { echo "$p"; return; }
  done
}

wait_port() {
  for _ in $(seq 500); do port_free "$1" || return 0; sleep 0.01; done
  echo "$BENCH: nothing listens on $1" >&2
  exit 1
}

start_tang() {
  local db=$work/$1 port
  mkdir -p "$db"
  "$KEYGEN" "$db" >/dev/null
  port=$(free_pair)
  if [ "${SERVER:-}" = tangd ] || { [ -z "${SERVER:-}" ] && [ -x "$OUR_TANGD" ]; }; then
    "$OUR_TANGD" serve --listen "127.0.0.1:$port" --keys "$db" </dev/null >/dev/null 2>&1 &
  else
    socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" EXEC:"$TANGD $db" </dev/null >/dev/null 2>&1 &
  fi
  pids+=($!)
  wait_port "$port"
  # shellcheck disable=SC2034 # read by the script that sources this one
  URL=http://127.0.0.1:$port
}

median() { sort -n | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.2f", m / 1e3}'; }
