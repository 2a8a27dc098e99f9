//! An `AF_PACKET` socket bound to one interface, for DHCPv4: it sends and
//! receives whole Ethernet frames, so it works before the interface has an
//! address. Frames are built and checked by the caller.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::{Error, Result};

const AF_PACKET: u16 = 17;
const ETH_P_IP: u16 = 0x0800;
const PACKET_OUTGOING: u8 = 4;

/// `struct sockaddr_ll` from `<linux/if_packet.h>`.
#[repr(C)]
struct SockaddrLl {
    family: u16,
    protocol: u16,
    ifindex: i32,
    hatype: u16,
    pkttype: u8,
    halen: u8,
    addr: [u8; 8],
}

struct LinkAddr {
    ifindex: u32,
}

// SAFETY: `with_sockaddr` hands `f` a pointer to a fully initialised
// `sockaddr_ll` on its own stack frame, valid for the length passed and for
// the duration of the call, which is what `bind(2)` on AF_PACKET expects.
unsafe impl SocketAddrArg for LinkAddr {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(*const SocketAddrOpaque, SocketAddrLen) -> R,
    ) -> R {
        let sa = SockaddrLl {
            family: AF_PACKET,
            protocol: ETH_P_IP.to_be(),
            ifindex: self.ifindex as i32,
            hatype: 0,
            pkttype: 0,
            halen: 0,
            addr: [0; 8],
        };
        f(
            (&raw const sa).cast(),
            size_of::<SockaddrLl>() as SocketAddrLen,
        )
    }
}

/// A raw packet socket receiving IPv4 frames on one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl PacketSocket {
    /// Opens a socket bound to interface `ifindex` for EtherType IPv4.
    pub fn open(ifindex: u32) -> Result<PacketSocket> {
        let err = |op| move |errno| Error::Packet { op, ifindex, errno };
        // Protocol 0 receives nothing until bind, so no frame from another
        // interface slips in between socket() and bind().
        let fd = rustix::net::socket_with(
            AddressFamily::PACKET,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(err("socket"))?;
        rustix::net::bind(&fd, &LinkAddr { ifindex }).map_err(err("bind"))?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// The interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one complete Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        rustix::net::send(&self.fd, frame, SendFlags::empty()).map_err(|errno| Error::Packet {
            op: "send",
            ifindex: self.ifindex,
            errno,
        })?;
        Ok(())
    }

    /// Waits up to `timeout` for an incoming frame (our own outgoing frames
    /// are skipped) and copies it into `buf`. `Ok(None)` on timeout.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        let err = |op| {
            move |errno| Error::Packet {
                op,
                ifindex: self.ifindex,
                errno,
            }
        };
        let start = std::time::Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let ts = Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(err("poll")(e)),
            }
            let (n, _, from) = match rustix::net::recvfrom(&self.fd, &mut *buf, RecvFlags::DONTWAIT)
            {
                Ok(r) => r,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(err("recv")(e)),
            };
            if from.is_some_and(|a| pkttype(&a) == Some(PACKET_OUTGOING)) {
                continue;
            }
            return Ok(Some(n));
        }
    }
}

/// `sll_pkttype` of a `sockaddr_ll` returned by `recvfrom`.
fn pkttype(sa: &rustix::net::SocketAddrAny) -> Option<u8> {
    if sa.address_family() != AddressFamily::PACKET || sa.addr_len() < 11 {
        return None;
    }
    // SAFETY: the kernel initialised `addr_len()` bytes of the storage, and
    // offset 10 (`sll_pkttype`) lies within them as checked above.
    Some(unsafe { *sa.as_ptr().cast::<u8>().add(10) })
}
