#!/usr/bin/env python3
"""A switch port that speaks 802.1Q, between two QEMU UDP socket netdevs on
127.0.0.1: the guest's NIC is the trunk (only frames tagged with VID pass,
untagged on their way on), the other end sits on a QEMU hub with slirp
(frames from there are tagged with VID on their way to the guest). Nothing
else reaches the guest, so a guest that does not tag gets no DHCP and no Tang.

    vlan-peer.py VID PORTS_FILE

Picks four free UDP ports and writes them to PORTS_FILE as
"TRUNK_QEMU TRUNK_PEER HUB_QEMU HUB_PEER" (QEMU's local port, this script's
port): `-n udp:TRUNK_QEMU:TRUNK_PEER -n hub-udp:HUB_QEMU:HUB_PEER`.
Prints one line when the first tagged frame passes and when an untagged or
otherwise tagged frame is dropped.
"""
import os
import select
import socket
import struct
import sys

TPID = 0x8100


def udp(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    return s


def main():
    vid = int(sys.argv[1])
    trunk, hub = udp(), udp()
    # QEMU's two ports: free now, bound by QEMU when it starts.
    spare = [udp(), udp()]
    qemu_trunk, qemu_hub = (s.getsockname()[1] for s in spare)
    for s in spare:
        s.close()
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(f"{qemu_trunk} {trunk.getsockname()[1]} {qemu_hub} {hub.getsockname()[1]}\n")
    # Renamed into place: the reader never sees half a line.
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    said = set()

    def say(what):
        if what not in said:
            said.add(what)
            print(what, flush=True)

    while True:
        ready, _, _ = select.select([trunk, hub], [], [])
        for s in ready:
            frame = s.recv(65536)
            if len(frame) < 14:
                continue
            if s is trunk:
                tpid, tci = struct.unpack("!HH", frame[12:16]) if len(frame) >= 18 else (0, 0)
                if tpid == TPID and tci & 0x0FFF == vid:
                    say(f"vlan-peer: tagged frame for VLAN {vid} passed")
                    hub.sendto(frame[:12] + frame[16:], ("127.0.0.1", qemu_hub))
                else:
                    say(f"vlan-peer: dropped a frame not tagged for VLAN {vid}")
            else:
                tagged = frame[:12] + struct.pack("!HH", TPID, vid) + frame[12:]
                trunk.sendto(tagged, ("127.0.0.1", qemu_trunk))


if __name__ == "__main__":
    main()
