#!/bin/sh
# dracut initqueue/settled hook (no systemd). dracut sources this file on
# every pass of its main loop, so it must never `exit`: that would end
# dracut's init itself. It runs the agent once; dracut's crypt module
# prompts for whatever is still locked afterwards.
if [ ! -e /run/latchkey.done ]; then
    : >/run/latchkey.done
    # device-mapper may not be loaded yet (nor the TPM drivers, without udev's
    # help).
    modprobe -a -q dm_mod dm_crypt tpm_tis tpm_crb
    /usr/sbin/latchkey-agent unlock --no-prompt || :
fi
