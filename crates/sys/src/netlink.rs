//! rtnetlink (`NETLINK_ROUTE`) for what an initrd needs: list links,
//! addresses and routes, set a link up, add an IPv4 or IPv6 address and a
//! default route, create VLAN and bond interfaces and enslave to a bond. Messages are encoded and decoded here in safe code; the socket
//! calls come from rustix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::{Error, Result};

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VLAN_ID: u16 = 1;
const IFLA_BOND_MODE: u16 = 1;
const IFLA_BOND_MIIMON: u16 = 3;
const IFLA_BOND_UPDELAY: u16 = 4;
const IFLA_BOND_DOWNDELAY: u16 = 5;
const IFLA_BOND_PRIMARY: u16 = 11;
const IFLA_BOND_AD_LACP_RATE: u16 = 21;
const IFLA_CARRIER: u16 = 33;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;
/// `IFF_LOWER_UP`: the driver reports carrier.
pub const IFF_LOWER_UP: u32 = 0x10000;

/// `IFA_F_DADFAILED`: duplicate address detection found another holder.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: duplicate address detection has not finished; the
/// address cannot be used as a source yet.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_OPTIMISTIC`: tentative, but usable while duplicate address
/// detection runs (RFC 4429).
pub const IFA_F_OPTIMISTIC: u32 = 0x04;

/// RFC 2863 operational state as reported in `IFLA_OPERSTATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperState {
    /// 0: unknown (many virtual devices stay here while working).
    Unknown,
    /// 1: not present.
    NotPresent,
    /// 2: down.
    Down,
    /// 3: lower layer down.
    LowerLayerDown,
    /// 4: testing.
    Testing,
    /// 5: dormant.
    Dormant,
    /// 6: up.
    Up,
}

impl OperState {
    fn from_u8(v: u8) -> OperState {
        match v {
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_CARRIER` (falls back to `IFF_LOWER_UP` when absent).
    pub carrier: bool,
    /// `IFLA_OPERSTATE`.
    pub operstate: OperState,
    /// Hardware address when it is a 6-byte Ethernet MAC.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_MASTER`: the bond (or bridge) this interface is enslaved to.
    pub master: Option<u32>,
}

impl Link {
    /// Administratively up.
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
    /// The loopback device.
    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }
}

/// An address assigned to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// The address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS` for IPv6).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Scope (0 universe, 253 link, 254 host).
    pub scope: u8,
    /// `IFA_F_*` flags (`IFA_FLAGS` when present, else the header's 8 bits).
    pub flags: u32,
}

/// A route in the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination, `None` for a default route.
    pub dst: Option<IpAddr>,
    /// Destination prefix length (0 for a default route).
    pub dst_len: u8,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

impl Route {
    /// A default route (`0.0.0.0/0` or `::/0`).
    pub fn is_default(&self) -> bool {
        self.dst_len == 0
    }
}

/// How a new bond behaves (the bonding driver's `IFLA_BOND_*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BondSettings {
    /// Mode number (0 balance-rr, 1 active-backup, ..., 4 802.3ad).
    pub mode: u8,
    /// Link monitoring interval, ms.
    pub miimon: Option<u32>,
    /// Delay before a slave that came up is used, ms.
    pub updelay: Option<u32>,
    /// Delay before a slave that went down is dropped, ms.
    pub downdelay: Option<u32>,
    /// 802.3ad: LACPDUs every second (true) or every 30 s.
    pub lacp_fast: Option<bool>,
    /// MTU of the bond.
    pub mtu: Option<u32>,
}

fn bond_data(settings: &BondSettings) -> Msg {
    let mut data = Msg::attrs().attr(IFLA_BOND_MODE, &[settings.mode]);
    for (kind, v) in [
        (IFLA_BOND_MIIMON, settings.miimon),
        (IFLA_BOND_UPDELAY, settings.updelay),
        (IFLA_BOND_DOWNDELAY, settings.downdelay),
    ] {
        if let Some(v) = v {
            data = data.attr(kind, &v.to_ne_bytes());
        }
    }
    if let Some(fast) = settings.lacp_fast {
        data = data.attr(IFLA_BOND_AD_LACP_RATE, &[u8::from(fast)]);
    }
    data
}

/// An rtnetlink socket.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// Builds one netlink message: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, fixed: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(fixed);
        pad4(&mut buf);
        Msg { buf }
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad4(&mut self.buf);
        self
    }

    /// An attribute holding attributes (`IFLA_LINKINFO`, `IFLA_INFO_DATA`).
    fn nested(self, kind: u16, inner: Msg) -> Msg {
        self.attr(kind, &inner.buf)
    }

    /// An empty list of attributes, to be nested.
    fn attrs() -> Msg {
        Msg { buf: Vec::new() }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn ifinfomsg(family: u8, index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = family;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// Iterates `(type, payload)` over the attributes in `data`.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    core::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        data = &data[len.next_multiple_of(4).min(data.len())..];
        Some((kind, payload))
    })
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match (family, b.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (AF_INET6, 16) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

fn parse_link(body: &[u8]) -> Option<Link> {
    if body.len() < 16 {
        return None;
    }
    let index = u32::from_ne_bytes(body[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(body[8..12].try_into().ok()?);
    let mut link = Link {
        index,
        name: String::new(),
        flags,
        carrier: flags & IFF_LOWER_UP != 0,
        operstate: OperState::Unknown,
        mac: None,
        master: None,
    };
    for (kind, p) in attrs(&body[16..]) {
        match kind {
            IFLA_IFNAME => {
                let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
                link.name = String::from_utf8_lossy(&p[..end]).into_owned();
            }
            IFLA_ADDRESS if p.len() == 6 => link.mac = p.try_into().ok(),
            IFLA_OPERSTATE if !p.is_empty() => link.operstate = OperState::from_u8(p[0]),
            IFLA_CARRIER if !p.is_empty() => link.carrier = p[0] != 0,
            IFLA_MASTER if p.len() == 4 => {
                link.master = Some(u32::from_ne_bytes(p.try_into().ok()?)).filter(|m| *m != 0)
            }
            _ => {}
        }
    }
    Some(link)
}

fn parse_addr(body: &[u8]) -> Option<Address> {
    if body.len() < 8 {
        return None;
    }
    let family = body[0];
    let prefix = body[1];
    let mut flags = u32::from(body[2]);
    let scope = body[3];
    let index = u32::from_ne_bytes(body[4..8].try_into().ok()?);
    let (mut local, mut address) = (None, None);
    for (kind, p) in attrs(&body[8..]) {
        match kind {
            IFA_LOCAL => local = ip_from(family, p),
            IFA_ADDRESS => address = ip_from(family, p),
            IFA_FLAGS if p.len() == 4 => flags = u32::from_ne_bytes(p.try_into().ok()?),
            _ => {}
        }
    }
    Some(Address {
        index,
        addr: local.or(address)?,
        prefix,
        scope,
        flags,
    })
}

fn parse_route(body: &[u8]) -> Option<Route> {
    if body.len() < 12 {
        return None;
    }
    let family = body[0];
    let dst_len = body[1];
    let mut table = u32::from(body[4]);
    let kind = body[7];
    let mut route = Route {
        dst: None,
        dst_len,
        gateway: None,
        oif: None,
    };
    for (k, p) in attrs(&body[12..]) {
        match k {
            RTA_DST => route.dst = ip_from(family, p),
            RTA_GATEWAY => route.gateway = ip_from(family, p),
            RTA_OIF if p.len() == 4 => route.oif = Some(u32::from_ne_bytes(p.try_into().ok()?)),
            RTA_TABLE if p.len() == 4 => table = u32::from_ne_bytes(p.try_into().ok()?),
            _ => {}
        }
    }
    (table == u32::from(RT_TABLE_MAIN) && kind == RTN_UNICAST).then_some(route)
}

impl Netlink {
    /// Opens and binds an rtnetlink socket.
    pub fn open() -> Result<Netlink> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )
        .map_err(Error::NetlinkSocket)?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0)).map_err(Error::NetlinkSocket)?;
        Ok(Netlink { fd, seq: 1 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, msg: &[u8], op: &'static str, ifindex: u32) -> Result<()> {
        rustix::net::sendto(
            &self.fd,
            msg,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|errno| Error::Netlink { op, ifindex, errno })?;
        Ok(())
    }

    /// Reads replies to `seq`, handing each message's `(type, body)` to `f`,
    /// until `NLMSG_DONE` or the final `NLMSG_ERROR` (ack).
    fn receive(
        &self,
        seq: u32,
        op: &'static str,
        ifindex: u32,
        mut f: impl FnMut(u16, &[u8]),
    ) -> Result<()> {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())
                .map_err(|errno| Error::Netlink { op, ifindex, errno })?;
            let mut data = &buf[..n];
            while data.len() >= NLMSG_HDR {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4")) as usize;
                if len < NLMSG_HDR || len > data.len() {
                    return Err(Error::NetlinkReply("message length out of bounds"));
                }
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes(data[8..12].try_into().expect("4"));
                let body = &data[NLMSG_HDR..len];
                data = &data[len.next_multiple_of(4).min(data.len())..];
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        if body.len() < 4 {
                            return Err(Error::NetlinkReply("short NLMSG_ERROR"));
                        }
                        let code = i32::from_ne_bytes(body[0..4].try_into().expect("4"));
                        if code == 0 {
                            return Ok(());
                        }
                        let errno = Errno::from_raw_os_error(-code);
                        return Err(Error::Netlink { op, ifindex, errno });
                    }
                    _ => f(kind, body),
                }
            }
        }
    }

    fn request(
        &mut self,
        op: &'static str,
        ifindex: u32,
        build: impl FnOnce(u32) -> Vec<u8>,
    ) -> Result<()> {
        let seq = self.next_seq();
        self.send(&build(seq), op, ifindex)?;
        self.receive(seq, op, ifindex, |_, _| {})
    }

    fn dump<T>(
        &mut self,
        op: &'static str,
        kind: u16,
        fixed: &[u8],
        want: u16,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>> {
        let seq = self.next_seq();
        let msg = Msg::new(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, fixed).finish();
        self.send(&msg, op, 0)?;
        let mut out = Vec::new();
        self.receive(seq, op, 0, |k, body| {
            if k == want {
                out.extend(parse(body));
            }
        })?;
        Ok(out)
    }

    /// All network interfaces.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        self.dump(
            "RTM_GETLINK",
            RTM_GETLINK,
            &ifinfomsg(AF_UNSPEC, 0, 0, 0),
            RTM_NEWLINK,
            parse_link,
        )
    }

    /// All addresses, IPv4 and IPv6.
    pub fn addresses(&mut self) -> Result<Vec<Address>> {
        self.dump(
            "RTM_GETADDR",
            RTM_GETADDR,
            &[AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0],
            RTM_NEWADDR,
            parse_addr,
        )
    }

    /// Unicast routes of the main table, IPv4 and IPv6.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        self.dump(
            "RTM_GETROUTE",
            RTM_GETROUTE,
            &[AF_UNSPEC; 12],
            RTM_NEWROUTE,
            parse_route,
        )
    }

    /// Sets `IFF_UP` on interface `index`.
    pub fn set_link_up(&mut self, index: u32) -> Result<()> {
        self.request("RTM_NEWLINK", index, |seq| {
            Msg::new(
                RTM_NEWLINK,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                &ifinfomsg(AF_UNSPEC, index, IFF_UP, IFF_UP),
            )
            .finish()
        })
    }

    /// Clears `IFF_UP` on interface `index`.
    pub fn set_link_down(&mut self, index: u32) -> Result<()> {
        self.request("RTM_NEWLINK", index, |seq| {
            Msg::new(
                RTM_NEWLINK,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                &ifinfomsg(AF_UNSPEC, index, 0, IFF_UP),
            )
            .finish()
        })
    }

    /// Creates the 802.1Q interface `name` with VLAN `id` on `parent`.
    pub fn add_vlan(&mut self, name: &str, parent: u32, id: u16) -> Result<()> {
        self.create_link(
            name,
            parent,
            "vlan",
            Msg::attrs().attr(IFLA_VLAN_ID, &id.to_ne_bytes()),
            None,
        )
    }

    /// Creates the bond `name` with `settings`.
    pub fn add_bond(&mut self, name: &str, settings: &BondSettings) -> Result<()> {
        self.create_link(name, 0, "bond", bond_data(settings), settings.mtu)
    }

    /// Applies `settings` to the existing bond `index` (one the bonding
    /// driver made itself when loaded: `bond0` unless `max_bonds=0`). The
    /// mode can change only while the bond has no slaves.
    pub fn change_bond(&mut self, index: u32, settings: &BondSettings) -> Result<()> {
        let mut kind_z = b"bond".to_vec();
        kind_z.push(0);
        self.request("RTM_NEWLINK", index, |seq| {
            let info = Msg::attrs()
                .attr(IFLA_INFO_KIND, &kind_z)
                .nested(IFLA_INFO_DATA, bond_data(settings));
            let mut m = Msg::new(
                RTM_NEWLINK,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                &ifinfomsg(AF_UNSPEC, index, 0, 0),
            );
            if let Some(mtu) = settings.mtu {
                m = m.attr(IFLA_MTU, &mtu.to_ne_bytes());
            }
            m.nested(IFLA_LINKINFO, info).finish()
        })
    }

    fn create_link(
        &mut self,
        name: &str,
        parent: u32,
        kind: &str,
        data: Msg,
        mtu: Option<u32>,
    ) -> Result<()> {
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        let mut kind_z = kind.as_bytes().to_vec();
        kind_z.push(0);
        self.request("RTM_NEWLINK", parent, |seq| {
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            let mut m = Msg::new(RTM_NEWLINK, flags, seq, &ifinfomsg(AF_UNSPEC, 0, 0, 0))
                .attr(IFLA_IFNAME, &ifname);
            if parent != 0 {
                m = m.attr(IFLA_LINK, &parent.to_ne_bytes());
            }
            if let Some(mtu) = mtu {
                m = m.attr(IFLA_MTU, &mtu.to_ne_bytes());
            }
            let info = Msg::attrs()
                .attr(IFLA_INFO_KIND, &kind_z)
                .nested(IFLA_INFO_DATA, data);
            m.nested(IFLA_LINKINFO, info).finish()
        })
    }

    /// Enslaves interface `index` to the bond `master` (the kernel wants
    /// the slave down for that).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        self.request("RTM_NEWLINK", index, |seq| {
            Msg::new(
                RTM_NEWLINK,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                &ifinfomsg(AF_UNSPEC, index, 0, 0),
            )
            .attr(IFLA_MASTER, &master.to_ne_bytes())
            .finish()
        })
    }

    /// Makes the slave `primary` the bond's preferred one.
    pub fn set_bond_primary(&mut self, bond: u32, primary: u32) -> Result<()> {
        let mut kind_z = b"bond".to_vec();
        kind_z.push(0);
        self.request("RTM_NEWLINK", bond, |seq| {
            let info = Msg::attrs().attr(IFLA_INFO_KIND, &kind_z).nested(
                IFLA_INFO_DATA,
                Msg::attrs().attr(IFLA_BOND_PRIMARY, &primary.to_ne_bytes()),
            );
            Msg::new(
                RTM_NEWLINK,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                &ifinfomsg(AF_UNSPEC, bond, 0, 0),
            )
            .nested(IFLA_LINKINFO, info)
            .finish()
        })
    }

    /// Adds `addr/prefix` to interface `index` (an IPv4 address with its
    /// broadcast address).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        self.add_address_flags(index, addr, prefix, 0)
    }

    /// [`Netlink::add_address`] with `IFA_F_*` flags (`IFA_FLAGS`), such as
    /// [`IFA_F_OPTIMISTIC`].
    pub fn add_address_flags(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
        ifa_flags: u32,
    ) -> Result<()> {
        let (family, bytes, prefix, brd) = match addr {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                let brd = Ipv4Addr::from(u32::from(a) | !mask);
                let brd = (prefix < 31).then_some(brd.octets());
                (AF_INET, a.octets().to_vec(), prefix, brd)
            }
            IpAddr::V6(a) => (AF_INET6, a.octets().to_vec(), prefix.min(128), None),
        };
        self.request("RTM_NEWADDR", index, |seq| {
            let mut fixed = [family, prefix, 0, RT_SCOPE_UNIVERSE, 0, 0, 0, 0];
            fixed[4..8].copy_from_slice(&index.to_ne_bytes());
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            let m = Msg::new(RTM_NEWADDR, flags, seq, &fixed)
                .attr(IFA_LOCAL, &bytes)
                .attr(IFA_ADDRESS, &bytes);
            let m = match ifa_flags {
                0 => m,
                f => m.attr(IFA_FLAGS, &f.to_ne_bytes()),
            };
            match brd {
                Some(b) => m.attr(IFA_BROADCAST, &b),
                None => m,
            }
            .finish()
        })
    }

    /// Adds the default route (IPv4 or IPv6, as `gateway` is) via `gateway`
    /// out of interface `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: IpAddr) -> Result<()> {
        let (family, bytes) = match gateway {
            IpAddr::V4(g) => (AF_INET, g.octets().to_vec()),
            IpAddr::V6(g) => (AF_INET6, g.octets().to_vec()),
        };
        self.request("RTM_NEWROUTE", index, |seq| {
            let fixed = [
                family,
                0,
                0,
                0,
                RT_TABLE_MAIN,
                RTPROT_BOOT,
                RT_SCOPE_UNIVERSE,
                RTN_UNICAST,
                0,
                0,
                0,
                0,
            ];
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            Msg::new(RTM_NEWROUTE, flags, seq, &fixed)
                .attr(RTA_GATEWAY, &bytes)
                .attr(RTA_OIF, &index.to_ne_bytes())
                .finish()
        })
    }
}

/// Turns the kernel's IPv6 stateless autoconfiguration on `ifname` on
/// (accept router advertisements, form addresses from their prefixes) or
/// off (a static configuration stays as it was given).
pub fn set_ipv6_autoconf(ifname: &str, on: bool) -> Result<()> {
    for knob in ["accept_ra", "autoconf"] {
        set_ipv6_conf(ifname, knob, on)?;
    }
    Ok(())
}

/// Writes `net.ipv6.conf.IFNAME.KNOB`.
fn set_ipv6_conf(ifname: &str, knob: &str, on: bool) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/{knob}");
    std::fs::write(&path, if on { b"1" } else { b"0" })
        .map_err(|source| Error::File { path, source })
}

/// Lets IPv6 addresses on `ifname` be used while duplicate address
/// detection runs (RFC 4429: `optimistic_dad`, and `use_optimistic` for
/// source selection); takes effect for addresses made afterwards, so before
/// the link goes up for its link-local one. False when the kernel lacks
/// `CONFIG_IPV6_OPTIMISTIC_DAD` (no such knobs): DAD then runs as always.
pub fn set_optimistic_dad(ifname: &str) -> Result<bool> {
    for knob in ["optimistic_dad", "use_optimistic"] {
        match set_ipv6_conf(ifname, knob, true) {
            Ok(()) => {}
            Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_encoding() {
        let m = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            &ifinfomsg(0, 3, 1, 1),
        )
        .attr(IFLA_IFNAME, b"eth0\0")
        .finish();
        assert_eq!(m.len(), 16 + 16 + 12);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 44);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        let parsed: Vec<_> = attrs(&m[32..]).collect();
        assert_eq!(parsed, vec![(IFLA_IFNAME, &b"eth0\0"[..])]);
    }

    #[test]
    fn link_parsing() {
        let m = Msg::new(
            RTM_NEWLINK,
            0,
            0,
            &ifinfomsg(0, 2, IFF_UP | IFF_LOWER_UP, 0),
        )
        .attr(IFLA_IFNAME, b"en0\0")
        .attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 1])
        .attr(IFLA_OPERSTATE, &[6])
        .attr(IFLA_CARRIER, &[1])
        .finish();
        let l = parse_link(&m[16..]).unwrap();
        assert_eq!(l.index, 2);
        assert_eq!(l.name, "en0");
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(l.operstate, OperState::Up);
        assert!(l.carrier && l.is_up() && !l.is_loopback());
    }

    #[test]
    fn address_parsing_reads_extended_flags() {
        let mut fixed = [AF_INET6, 64, 0, 0, 0, 0, 0, 0];
        fixed[4..8].copy_from_slice(&3u32.to_ne_bytes());
        let a: Ipv6Addr = "fec0::15".parse().unwrap();
        let m = Msg::new(RTM_NEWADDR, 0, 0, &fixed)
            .attr(IFA_ADDRESS, &a.octets())
            .attr(IFA_FLAGS, &(IFA_F_TENTATIVE | 0x100).to_ne_bytes())
            .finish();
        let got = parse_addr(&m[16..]).unwrap();
        assert_eq!(got.addr, IpAddr::V6(a));
        assert_eq!((got.index, got.prefix), (3, 64));
        assert_eq!(got.flags, IFA_F_TENTATIVE | 0x100);
    }

    #[test]
    fn nested_link_info() {
        let m = Msg::new(RTM_NEWLINK, 0, 1, &ifinfomsg(0, 0, 0, 0))
            .attr(IFLA_IFNAME, b"eth0.5\0")
            .nested(
                IFLA_LINKINFO,
                Msg::attrs().attr(IFLA_INFO_KIND, b"vlan\0").nested(
                    IFLA_INFO_DATA,
                    Msg::attrs().attr(IFLA_VLAN_ID, &5u16.to_ne_bytes()),
                ),
            )
            .finish();
        let top: Vec<_> = attrs(&m[32..]).collect();
        assert_eq!(top.len(), 2);
        assert_eq!(top[1].0, IFLA_LINKINFO);
        let info: Vec<_> = attrs(top[1].1).collect();
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"vlan\0"[..]));
        let data: Vec<_> = attrs(info[1].1).collect();
        assert_eq!(data, vec![(IFLA_VLAN_ID, &5u16.to_ne_bytes()[..])]);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
    }

    #[test]
    fn attrs_stop_on_garbage() {
        assert_eq!(attrs(&[200, 0, 1, 0, 1]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
    }
}
