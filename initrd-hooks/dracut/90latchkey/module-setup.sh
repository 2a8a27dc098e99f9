#!/bin/bash
# shellcheck disable=SC2154 # initdir, moddir, systemdsystemunitdir, hostonly: dracut's
# dracut module: latchkey-agent unlocks LUKS volumes from Tang before
# systemd-cryptsetup (or dracut's crypt hook) would prompt. What it needs at
# boot is found now, so the kernel command line needs nothing of latchkey's:
# device-mapper, the TPM drivers (tpm_tis, tpm_crb: /dev/tpmrm0 for tpm2
# bindings; udev loads them), the network card drivers, and /etc/latchkey/initrd.conf
# (`latchkey-agent initrd-config`: the boot partition of the local key file, and
# the options of the system's own /etc/latchkey/initrd.conf). HTTPS to Tang:
# when that file has latchkey.ca= or latchkey.tls-pin=, the agent built with
# TLS goes in, and the CA bundle at the same path.

CONF=/etc/latchkey/initrd.conf
AGENT=/usr/lib/latchkey/latchkey-agent
if grep -qsE '^[[:space:]]*latchkey\.(ca|tls-pin)=' "${dracutsysrootdir:-}$CONF"; then
    AGENT=/usr/lib/latchkey/latchkey-agent-tls
fi

# Only when asked for (dracut --add latchkey, or add_dracutmodules+=" latchkey ").
check() {
    require_binaries "$AGENT" || return 1
    return 255
}

depends() {
    echo crypt
    return 0
}

installkernel() {
    hostonly='' instmods dm_mod dm_crypt tpm_tis tpm_crb
    if [[ $hostonly ]]; then
        # The cards of this machine, by what they are (their modalias), as
        # dracut matches host-only modules: found for the kernel the initrd
        # is for, even where the running kernel has the driver built in.
        local dev
        for dev in /sys/class/net/*/device; do
            [[ -r $dev/modalias ]] && hostonly='' instmods "$(<"$dev/modalias")"
        done
    else
        # Any card, as dracut's network modules pick them.
        instmods '=drivers/net/ethernet' virtio_net
    fi
    return 0
}

install() {
    inst_simple "$AGENT" /usr/sbin/latchkey-agent
    mkdir -p "$initdir/etc/latchkey"
    "$AGENT" initrd-config --root "${dracutsysrootdir:-/}" >"$initdir/etc/latchkey/initrd.conf"
    local ca
    ca=$(sed -n 's/^[[:space:]]*latchkey\.ca=//p' "${dracutsysrootdir:-}$CONF" 2>/dev/null | tail -n 1)
    [[ -z $ca ]] || inst_simple "${dracutsysrootdir:-}$ca" "$ca"
    if dracut_module_included "systemd"; then
        inst_simple "$moddir/latchkey-agent.service" "$systemdsystemunitdir/latchkey-agent.service"
        $SYSTEMCTL -q --root "$initdir" enable latchkey-agent.service
    else
        inst_hook initqueue/settled 50 "$moddir/latchkey-unlock.sh"
    fi
}
