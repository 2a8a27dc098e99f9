#!/usr/bin/env bash
# Runs the agent's network bring-up (net::tests::root_bring_up_real_nic) in
# a QEMU guest on a virtio NIC against slirp's DHCP server, as a static musl
# test binary in the vm-tests initramfs. Exits non-zero unless it passed.
#   agent/tests/vm-net.sh
# No `set -e`: the vm-tests console reader relies on failing reads.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VMT_DIR=$ROOT/vm-tests
source "$VMT_DIR/lib/kernel.sh"
source "$VMT_DIR/lib/initrd.sh"
source "$VMT_DIR/lib/qemu.sh"

work=$(mktemp -d)
trap 'vm_stop 2>/dev/null || true; rm -rf "$work"' EXIT

bin=$(cd "$ROOT" && cargo test -p latchkey-agent --release --target x86_64-unknown-linux-musl \
  --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["profile"]["test"] and m["target"]["name"]=="latchkey_agent": print(m["executable"])' | tail -n1)
[[ -x $bin ]] || { echo "vm-net.sh: building the test binary failed" >&2; exit 1; }

cat >"$work/agent" <<'SCRIPT'
#!/bin/sh
mount -t tmpfs tmpfs /tmp
LATCHKEY_NET_TEST_IFACE=eth0 /bin/agent-tests --test-threads=1 --nocapture root_bring_up_real_nic
echo "NET-TESTS-EXIT $?"
ip -4 -o addr show dev eth0
ip -4 route
exit 1
SCRIPT
chmod 0755 "$work/agent"

kernel_fetch || exit 1
initrd_build "$work/initrd.gz" "$work/agent" "$bin=bin/agent-tests" || exit 1
vm_start "$work/vm" "$KERNEL_IMAGE" "$work/initrd.gz" "quiet" -t 120
vm_wait 'NET-TESTS-EXIT' 110 || { cat "$work/vm/console.log"; echo "vm-net.sh: $VM_WHY"; exit 1; }
sleep 1
vm_stop
sed -n '/running [0-9]* test/,$p' "$work/vm/console.log"
grep -q 'NET-TESTS-EXIT 0' "$work/vm/console.log" || exit 1
if grep -q 'skipped' "$work/vm/console.log"; then echo "vm-net.sh: the test skipped inside the VM"; exit 1; fi
