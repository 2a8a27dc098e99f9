#!/bin/bash
# dracut module: latchkey-agent unlocks LUKS volumes from Tang before
# systemd-cryptsetup (or dracut's crypt hook) would prompt.

# Only when asked for (dracut --add latchkey, or add_dracutmodules+=" latchkey ").
check() {
    require_binaries /usr/lib/latchkey/latchkey-agent || return 1
    return 255
}

depends() {
    echo crypt
    return 0
}

installkernel() {
    hostonly='' instmods dm_mod dm_crypt
    # NIC drivers, as the network module would pick them.
    hostonly='' instmods =drivers/net/ethernet =drivers/net/virtio_net.ko
}

install() {
    inst_simple /usr/lib/latchkey/latchkey-agent /usr/sbin/latchkey-agent
    if dracut_module_included "systemd"; then
        inst_simple "$moddir/latchkey-agent.service" "$systemdsystemunitdir/latchkey-agent.service"
        $SYSTEMCTL -q --root "$initdir" enable latchkey-agent.service
    else
        inst_hook initqueue/settled 50 "$moddir/latchkey-unlock.sh"
    fi
}
