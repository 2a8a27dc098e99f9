#!/usr/bin/env bash
# Runs the device-mapper and kmsg tests of latchkey-sys (tests/root.rs) in a QEMU
# guest, where device-mapper exists (the host has none), as a static musl
# test binary in the vm-tests initramfs. Prints the guest's test output and
# exits non-zero unless every test ran and passed, none skipped.
#   crates/sys/tests/vm.sh
# No `set -e`: the vm-tests console reader relies on failing reads.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
VMT_DIR=$ROOT/vm-tests
source "$VMT_DIR/lib/kernel.sh"
source "$VMT_DIR/lib/initrd.sh"
source "$VMT_DIR/lib/qemu.sh"

work=$(mktemp -d)
trap 'vm_stop 2>/dev/null || true; rm -rf "$work"' EXIT

bin=$(cd "$ROOT" && cargo test -p latchkey-sys --test root --release --target x86_64-unknown-linux-musl \
  --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["profile"]["test"] and m["target"]["name"]=="root": print(m["executable"])' | tail -n1)
[[ -x $bin ]] || { echo "vm.sh: building the test binary failed" >&2; exit 1; }

cat >"$work/agent" <<'SCRIPT'
#!/bin/sh
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
LATCHKEY_IN_VM=1 LATCHKEY_DM_SCRATCH_DEVICE=/dev/vda /bin/sys-root-tests --test-threads=1 --nocapture root_device_mapper root_kmsg
echo "SYS-TESTS-EXIT $?"
exit 1
SCRIPT
chmod 0755 "$work/agent"
truncate -s 8M "$work/scratch.img"

kernel_fetch || exit 1
initrd_build "$work/initrd.gz" "$work/agent" "$bin=bin/sys-root-tests" || exit 1
vm_start "$work/vm" "$KERNEL_IMAGE" "$work/initrd.gz" "quiet" -N -t 120 -d "$work/scratch.img"
vm_wait 'SYS-TESTS-EXIT' 110 || { cat "$work/vm/console.log"; echo "vm.sh: $VM_WHY"; exit 1; }
vm_stop
sed -n '/running [0-9]* tests/,/SYS-TESTS-EXIT/p' "$work/vm/console.log"
grep -q 'SYS-TESTS-EXIT 0' "$work/vm/console.log" || exit 1
if grep -q 'skipped' "$work/vm/console.log"; then echo "vm.sh: a test skipped inside the VM"; exit 1; fi
