# shellcheck shell=bash disable=SC2034 # TPM_TCTI: read by the caller
# Servers on the host's loopback (TANG_HOST: 127.0.0.1, or ::1 for a guest on
# an IPv6-only link) that the guest reaches through QEMU's guestfwd, or
# through slirp's gateway address, which slirp maps to the host's loopback.
#
#   tang_keygen DIR              new Tang keys in DIR
#   tang_start NAME PORT DIR     serve DIR with the command in TANG_CMD
#   tang_rotate DIR              tangd-rotate-keys: old keys hidden, still served
#   blackhole_start NAME PORT    accepts connections and never answers
#   hostile_start NAME PORT MODE MODE: offcurve (a JWK whose point is not on
#                                P-521) or garbage (a body that is not JSON)
#   swtpm_start NAME STATEDIR    a software TPM on STATEDIR for host tools
#                                (tpm2-tools, clevis): sets TPM_TCTI, the
#                                TPM2TOOLS_TCTI value naming it; its state
#                                outlives server_stop, for vm_start -T
#   server_stop NAME / servers_stop_all
#   free_port                    prints a free TCP port on TANG_HOST
#   free_port_pair               two: the one printed and the one above
#
# TANG_CMD is the server command, with @PORT@, @KEYS@, @HOST@ (TANG_HOST,
# bracketed when IPv6) and @TCP@ (socat's TCP4 or TCP6) replaced; the default
# is Debian's tangd behind socat. Another tangd is swapped in by setting it:
#   TANG_CMD=(target/release/tangd serve --listen @HOST@:@PORT@ --keys @KEYS@)
# Every server runs in its own session, so stopping it ends its children too.
# With TANG_NETNS set (a path such as /proc/PID/ns/net) servers run, and are
# reached, in that network namespace instead of this one.

TANG_LIBEXEC=${TANG_LIBEXEC:-/usr/libexec}
SERVERS_DIR=${SERVERS_DIR:-${TMPDIR:-/tmp}/latchkey-vm-servers.$$}
if ! declare -p TANG_CMD >/dev/null 2>&1; then
  TANG_CMD=(socat "@TCP@-LISTEN:@PORT@,bind=@HOST@,reuseaddr,fork" "EXEC:$TANG_LIBEXEC/tangd @KEYS@")
fi
TANG_HOST=127.0.0.1
TANG_NETNS=""

# tang__in CMD...: CMD, in TANG_NETNS when set.
tang__in() {
  if [[ -n $TANG_NETNS ]]; then nsenter "--net=$TANG_NETNS" "$@"; else "$@"; fi
}

# tang__host: TANG_HOST as it goes in a URL or socat address.
tang__host() {
  if [[ $TANG_HOST == *:* ]]; then echo "[$TANG_HOST]"; else echo "$TANG_HOST"; fi
}

free_port() {
  tang__in python3 -c 'import socket, sys; h = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET); s.bind((h, 0)); print(s.getsockname()[1])' "$TANG_HOST"
}

free_port_pair() {
  python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass'
}

tang_keygen() {
  mkdir -p "$1" && "$TANG_LIBEXEC/tangd-keygen" "$1"
}

tang_rotate() {
  "$TANG_LIBEXEC/tangd-rotate-keys" -d "$1" >/dev/null
}

# server_run NAME PORT CMD...: start CMD in a new session, wait for the port.
server_run() {
  local name=$1 port=$2 i
  shift 2
  mkdir -p "$SERVERS_DIR"
  setsid ${TANG_NETNS:+nsenter "--net=$TANG_NETNS"} "$@" >"$SERVERS_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$SERVERS_DIR/$name.pid"
  echo "$port" >"$SERVERS_DIR/$name.port"
  for ((i = 0; i < 100; i++)); do
    # shellcheck disable=SC2016 # expanded by the inner bash
    if tang__in bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$TANG_HOST" "$port" 2>/dev/null; then return 0; fi
    kill -0 "$(cat "$SERVERS_DIR/$name.pid")" 2>/dev/null || break
    sleep 0.05
  done
  echo "server $name did not listen on $(tang__host):$port: $(cat "$SERVERS_DIR/$name.log")" >&2
  return 1
}

tang_start() {
  local name=$1 port=$2 keys=$3 cmd=() a tcp=TCP4 host
  host=$(tang__host)
  [[ $TANG_HOST != *:* ]] || tcp=TCP6
  for a in "${TANG_CMD[@]}"; do
    a=${a//@PORT@/$port}
    a=${a//@HOST@/$host}
    a=${a//@TCP@/$tcp}
    cmd+=("${a//@KEYS@/$keys}")
  done
  server_run "$name" "$port" "${cmd[@]}"
}

swtpm_start() {
  local name=$1 state=$2 port
  port=$(free_port_pair)
  mkdir -p "$state"
  TPM_TCTI=swtpm:host=127.0.0.1,port=$port
  server_run "$name" "$port" swtpm socket --tpm2 --tpmstate "dir=$state" \
    --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
    --flags not-need-init,startup-clear
}

blackhole_start() {
  server_run "$1" "$2" socat "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork" "EXEC:sleep 600"
}

hostile_start() {
  server_run "$1" "$2" python3 "$(dirname "${BASH_SOURCE[0]}")/hostile-tang.py" "$2" "$3"
}

server_stop() {
  local pidf=$SERVERS_DIR/$1.pid pid
  [[ -f $pidf ]] || return 0
  pid=$(cat "$pidf")
  # setsid made the server a session and group leader: end the group.
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$pidf"
}

servers_stop_all() {
  local f
  for f in "$SERVERS_DIR"/*.pid; do
    [[ -e $f ]] && server_stop "$(basename "$f" .pid)"
  done
  return 0
}

# fetch_adv PORT FILE: the advertisement clevis binds against offline.
fetch_adv() {
  tang__in curl -fsS -o "$2" "http://$(tang__host):$1/adv"
}
