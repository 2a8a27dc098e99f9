#!/usr/bin/env bash
# Runs the agent's network bring-up (root_bring_up_real_nic) in a QEMU guest on
# a virtio NIC against slirp's DHCP server, then shows the address and routes it
# left. Exits non-zero unless it passed.
#   agent/tests/vm-net.sh
exec "$(dirname "$0")/../../vm-tests/cargo-test-in-vm" -e LATCHKEY_NET_TEST_IFACE=eth0 \
  -a 'ip -4 -o addr show dev eth0; ip -4 route' \
  latchkey-agent lib root_bring_up_real_nic
