#!/usr/bin/env bash
# Runs the device-mapper and kmsg tests of latchkey-sys (tests/root.rs) in a QEMU
# guest, where device-mapper exists (the host has none), with an 8 MiB scratch
# disk and no network. Exits non-zero unless every test ran and passed, none skipped.
#   crates/sys/tests/vm.sh
exec "$(dirname "$0")/../../../vm-tests/cargo-test-in-vm" -N -d 8 \
  -e LATCHKEY_IN_VM=1 -e LATCHKEY_DM_SCRATCH_DEVICE=/dev/vda \
  latchkey-sys root root_device_mapper root_kmsg
