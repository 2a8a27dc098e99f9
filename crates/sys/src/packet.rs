//! An `AF_PACKET` socket bound to one interface, for DHCPv4: it sends and
//! receives whole Ethernet frames, so it works before the interface has an
//! address. Frames are built and checked by the caller.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque};
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};

use crate::{Error, Result};

const AF_PACKET: u16 = 17;
const ETH_P_IP: u16 = 0x0800;
const PACKET_OUTGOING: u8 = 4;
const SOL_PACKET: libc::c_int = 263;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;

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
        enable_auxdata(&fd).map_err(err("setsockopt(PACKET_AUXDATA)"))?;
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
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<Received>> {
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
            match recv_frame(&self.fd, buf) {
                Ok(Some(r)) => return Ok(Some(r)),
                Ok(None) | Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(err("recv")(e)),
            }
        }
    }
}

/// One received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The kernel reports `TP_STATUS_CSUMNOTREADY`: the frame came from a
    /// local or offloading device and its transport checksum was never
    /// filled in, so it must not be verified.
    pub checksum_pending: bool,
}

/// `struct tpacket_auxdata` from `<linux/if_packet.h>`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

fn enable_auxdata(fd: &OwnedFd) -> rustix::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a valid open socket for the duration of the call and
    // the option value is a live `c_int` whose exact size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_AUXDATA,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(())
    }
}

/// `recvmsg` with the sender address and `PACKET_AUXDATA`; `Ok(None)` for
/// our own outgoing frames.
fn recv_frame(fd: &OwnedFd, buf: &mut [u8]) -> rustix::io::Result<Option<Received>> {
    let mut addr = SockaddrLl {
        family: 0,
        protocol: 0,
        ifindex: 0,
        hatype: 0,
        pkttype: 0,
        halen: 0,
        addr: [0; 8],
    };
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero `msghdr` is a valid value (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = size_of::<SockaddrLl>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live local (`addr`, `iov`,
    // `control`) or to `buf`, with the lengths set to their real sizes, and
    // all of them outlive the call.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &raw mut msg,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        return Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    if addr.pkttype == PACKET_OUTGOING {
        return Ok(None);
    }
    let mut checksum_pending = false;
    // SAFETY: `msg` was filled in by a successful `recvmsg`, so the CMSG
    // macros walk only the `msg_controllen` bytes of `control` the kernel
    // wrote, and each header they return lies within that buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            let hdr = &*c;
            if hdr.cmsg_level == SOL_PACKET
                && hdr.cmsg_type == PACKET_AUXDATA
                && hdr.cmsg_len as usize
                    >= libc::CMSG_LEN(size_of::<TpacketAuxdata>() as u32) as usize
            {
                let aux = libc::CMSG_DATA(c).cast::<TpacketAuxdata>().read_unaligned();
                checksum_pending = aux.tp_status & TP_STATUS_CSUMNOTREADY != 0;
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok(Some(Received {
        len: (n as usize).min(buf.len()),
        checksum_pending,
    }))
}
