# shellcheck shell=bash source-path=SCRIPTDIR/..
# What a VM test run sources, from vm-tests/: the kernel, the test initramfs,
# Tang servers on loopback, disk images and QEMU.
# shellcheck source=lib/kernel.sh
source lib/kernel.sh
# shellcheck source=lib/initrd.sh
source lib/initrd.sh
# shellcheck source=lib/tang.sh
source lib/tang.sh
# shellcheck source=lib/disk.sh
source lib/disk.sh
# shellcheck source=lib/qemu.sh
source lib/qemu.sh
