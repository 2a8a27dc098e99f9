//! A sans-IO DHCPv4 client (RFC 2131/2132) for one interface: it builds
//! and parses whole Ethernet/IPv4/UDP frames, because before it has an
//! address the agent can only talk through an `AF_PACKET` socket.
//!
//! ```text
//!   Init ──DISCOVER──► Selecting ──OFFER──► Requesting ──REQUEST──► ACK ─► Bound
//!     ▲                                        │
//!     └───────────── NAK, or no answer ────────┘
//! ```
//! The caller owns the socket and the clock: it calls [`Client::poll`] to
//! get a frame to send, waits until [`Client::next_wakeup`] for frames,
//! and hands every received frame to [`Client::handle`].

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use latchkey_client::time::{Backoff, Jitter};

const ETH_HDR: usize = 14;
const IP_HDR: usize = 20;
const UDP_HDR: usize = 8;
const BOOTP_FIXED: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
/// Old BOOTP relays drop messages shorter than a BOOTP packet.
const MIN_BOOTP: usize = 300;

/// Message types (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// 1
    Discover = 1,
    /// 2
    Offer = 2,
    /// 3
    Request = 3,
    /// 4
    Decline = 4,
    /// 5
    Ack = 5,
    /// 6
    Nak = 6,
    /// 7
    Release = 7,
    /// 8
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// What a server offered or acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Our address (`yiaddr`).
    pub address: Ipv4Addr,
    /// Prefix length from the subnet mask (option 1), else classful.
    pub prefix: u8,
    /// First router (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Server identifier (option 54).
    pub server: Ipv4Addr,
    /// Lease time (option 51); `None` for infinite or absent.
    pub lease_time: Option<Duration>,
    /// Host name (option 12).
    pub hostname: Option<String>,
    /// Domain name (option 15).
    pub domain: Option<String>,
}

/// A parsed DHCP message addressed to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Option 53.
    pub kind: MessageType,
    /// Transaction id.
    pub xid: u32,
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// Options as (code, value), in order, without pad and end.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Message {
    /// The value of option `code`, if present.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    fn addr_option(&self, code: u8) -> Option<Ipv4Addr> {
        let v = self.option(code)?;
        (v.len() >= 4).then(|| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
    }

    /// The lease this message describes (for OFFER and ACK).
    pub fn lease(&self) -> Option<Lease> {
        let server = self.addr_option(54)?;
        if self.yiaddr.is_unspecified() {
            return None;
        }
        let prefix = match self.addr_option(1) {
            Some(mask) => {
                let m = u32::from(mask);
                let ones = m.leading_ones();
                if m.checked_shl(ones).unwrap_or(0) != 0 {
                    return None;
                }
                ones as u8
            }
            None => classful_prefix(self.yiaddr),
        };
        let dns = self
            .option(6)
            .map(|v| {
                v.chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect()
            })
            .unwrap_or_default();
        let lease_time = self.option(51).and_then(|v| {
            let s = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
            (s != u32::MAX).then(|| Duration::from_secs(u64::from(s)))
        });
        let text = |code| {
            self.option(code)
                .map(|v| String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
        };
        Some(Lease {
            address: self.yiaddr,
            prefix,
            router: self.addr_option(3).filter(|r| !r.is_unspecified()),
            dns,
            server,
            lease_time,
            hostname: text(12),
            domain: text(15),
        })
    }
}

fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// RFC 1071 Internet checksum over `data`, starting from `sum`.
pub fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], udp_len: u16) -> u32 {
    let mut s = 0u32;
    for w in [src, dst] {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]))
            + u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    s + 17 + u32::from(udp_len)
}

/// Wraps a UDP payload into Ethernet + IPv4 + UDP with both checksums.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = (UDP_HDR + payload.len()) as u16;
    let ip_len = IP_HDR as u16 + udp_len;
    let mut f = Vec::with_capacity(ETH_HDR + ip_len as usize);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0x00]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let ipsum = checksum(&f[ip_start..ip_start + IP_HDR], 0);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ipsum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut usum = checksum(
        &f[udp_start..],
        pseudo_header_sum(src.octets(), dst.octets(), udp_len),
    );
    if usum == 0 {
        usum = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&usum.to_be_bytes());
    f
}

/// Why a received frame was not taken as a DHCP reply. Most frames on the
/// wire are not for us; these reasons matter only for debugging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not IPv4/UDP, or not to port 68.
    NotDhcp,
    /// Lengths inconsistent or truncated.
    Truncated,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// UDP checksum wrong.
    BadUdpChecksum,
    /// Not a BOOTREPLY with the DHCP magic cookie.
    NotBootReply,
    /// No or unknown option 53.
    NoMessageType,
}

/// Extracts the UDP payload to port 68 from an Ethernet frame, checking
/// the IPv4 and UDP checksums.
pub fn udp_payload_to_client(frame: &[u8], verify_udp: bool) -> Result<&[u8], Ignored> {
    if frame.len() < ETH_HDR + IP_HDR + UDP_HDR || frame[12..14] != [0x08, 0x00] {
        return Err(Ignored::NotDhcp);
    }
    let ip = &frame[ETH_HDR..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IP_HDR || ip[9] != 17 {
        return Err(Ignored::NotDhcp);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ihl + UDP_HDR || total > ip.len() {
        return Err(Ignored::Truncated);
    }
    // Fragments cannot be reassembled here; DHCP replies fit in one frame.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(Ignored::NotDhcp);
    }
    if checksum(&ip[..ihl], 0) != 0 {
        return Err(Ignored::BadIpChecksum);
    }
    let udp = &ip[ihl..total];
    if u16::from_be_bytes([udp[2], udp[3]]) != CLIENT_PORT {
        return Err(Ignored::NotDhcp);
    }
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen < UDP_HDR || ulen > udp.len() {
        return Err(Ignored::Truncated);
    }
    let udp = &udp[..ulen];
    if verify_udp && udp[6..8] != [0, 0] {
        let src: [u8; 4] = ip[12..16].try_into().expect("4");
        let dst: [u8; 4] = ip[16..20].try_into().expect("4");
        if checksum(udp, pseudo_header_sum(src, dst, ulen as u16)) != 0 {
            return Err(Ignored::BadUdpChecksum);
        }
    }
    Ok(&udp[UDP_HDR..])
}

/// Parses a BOOTREPLY.
pub fn parse_reply(payload: &[u8]) -> Result<Message, Ignored> {
    if payload.len() < BOOTP_FIXED + 4
        || payload[0] != 2
        || payload[BOOTP_FIXED..BOOTP_FIXED + 4] != MAGIC
    {
        return Err(Ignored::NotBootReply);
    }
    let xid = u32::from_be_bytes(payload[4..8].try_into().expect("4"));
    let yiaddr = Ipv4Addr::new(payload[16], payload[17], payload[18], payload[19]);
    let chaddr: [u8; 6] = payload[28..34].try_into().expect("6");
    let mut options = Vec::new();
    parse_options(&payload[BOOTP_FIXED + 4..], &mut options)?;
    // Option 52 lets a server continue its options in `file` (1) and `sname` (2).
    if let Some((_, v)) = options.iter().find(|(c, _)| *c == 52) {
        let overload = v.first().copied().unwrap_or(0);
        if overload & 1 != 0 {
            parse_options(&payload[108..236], &mut options)?;
        }
        if overload & 2 != 0 {
            parse_options(&payload[44..108], &mut options)?;
        }
    }
    let kind = options
        .iter()
        .find(|(c, _)| *c == 53)
        .and_then(|(_, v)| MessageType::from_u8(*v.first()?))
        .ok_or(Ignored::NoMessageType)?;
    Ok(Message {
        kind,
        xid,
        chaddr,
        yiaddr,
        options,
    })
}

fn parse_options(mut o: &[u8], out: &mut Vec<(u8, Vec<u8>)>) -> Result<(), Ignored> {
    while let Some((&code, rest)) = o.split_first() {
        match code {
            0 => o = rest,
            255 => return Ok(()),
            _ => {
                let (&len, rest) = rest.split_first().ok_or(Ignored::Truncated)?;
                let len = usize::from(len);
                if rest.len() < len {
                    return Err(Ignored::Truncated);
                }
                // RFC 3396: a repeated option continues the earlier one.
                match out.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, v)) => v.extend_from_slice(&rest[..len]),
                    None => out.push((code, rest[..len].to_vec())),
                }
                o = &rest[len..];
            }
        }
    }
    Ok(())
}

/// Client state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Sending DISCOVER, waiting for an OFFER.
    Selecting,
    /// Sending REQUEST for `offer`, waiting for ACK or NAK.
    Requesting {
        /// The offer being requested.
        offer: Lease,
        /// REQUESTs sent so far.
        sent: u32,
    },
    /// Got an ACK.
    Bound(Lease),
}

/// What [`Client::handle`] made of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Not for us or not useful.
    Ignored,
    /// An offer was accepted; a REQUEST is due now.
    Offered(Lease),
    /// The server refused; back to DISCOVER.
    Nak,
    /// We have a lease.
    Bound(Lease),
}

/// The DHCPv4 client state machine for one interface.
pub struct Client {
    mac: [u8; 6],
    xid: u32,
    hostname: Option<String>,
    state: State,
    backoff: Backoff,
    started: Instant,
    next_send: Instant,
    /// REQUESTs without an answer before falling back to DISCOVER.
    max_requests: u32,
}

/// Parameters asked for in option 55.
const PARAMS: [u8; 8] = [1, 3, 6, 12, 15, 28, 51, 54];

impl Client {
    /// A client for interface hardware address `mac`, using transaction id
    /// `xid` (random in production), starting at `now`. Retransmissions
    /// follow `backoff` (RFC 2131 suggests 4 s doubling with ±1 s; an
    /// initrd wants faster first tries).
    pub fn new(mac: [u8; 6], xid: u32, backoff: Backoff, now: Instant) -> Client {
        Client {
            mac,
            xid,
            hostname: None,
            state: State::Selecting,
            backoff,
            started: now,
            next_send: now,
            max_requests: 4,
        }
    }

    /// A client already holding `offer`, about to REQUEST it (tests use it
    /// to provoke a NAK).
    #[cfg(test)]
    pub(crate) fn requesting(
        mac: [u8; 6],
        xid: u32,
        offer: Lease,
        backoff: Backoff,
        now: Instant,
    ) -> Client {
        let mut c = Client::new(mac, xid, backoff, now);
        c.state = State::Requesting { offer, sent: 0 };
        c
    }

    /// Sends option 12 with `name`.
    pub fn with_hostname(mut self, name: &str) -> Client {
        self.hostname = Some(name.to_owned());
        self
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The transaction id in use.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// When [`Client::poll`] next has something to send (far future once bound).
    pub fn next_wakeup(&self) -> Instant {
        self.next_send
    }

    /// The lease, once bound.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(l) => Some(l),
            _ => None,
        }
    }

    /// The frame to send at `now`, if one is due; schedules the next
    /// retransmission with jitter from `jitter`.
    pub fn poll(&mut self, now: Instant, jitter: &mut dyn Jitter) -> Option<Vec<u8>> {
        if now < self.next_send || matches!(self.state, State::Bound(_)) {
            return None;
        }
        let exhausted =
            matches!(&self.state, State::Requesting { sent, .. } if *sent >= self.max_requests);
        if exhausted {
            self.restart(now);
        }
        let frame = match &mut self.state {
            State::Selecting => self.build(MessageType::Discover, None, now),
            State::Requesting { offer, sent } => {
                *sent += 1;
                let offer = offer.clone();
                self.build(MessageType::Request, Some(&offer), now)
            }
            State::Bound(_) => return None,
        };
        self.next_send = now + self.backoff.next_delay(jitter);
        Some(frame)
    }

    fn restart(&mut self, now: Instant) {
        self.state = State::Selecting;
        // A new transaction, so late replies to the old one are ignored.
        self.xid = self.xid.rotate_left(7) ^ 0x5bd1_e995;
        self.backoff.reset();
        self.next_send = now;
    }

    /// Processes a received Ethernet frame.
    pub fn handle(&mut self, frame: &[u8], now: Instant) -> Event {
        self.handle_frame(frame, false, now)
    }

    /// [`Client::handle`] for a frame whose UDP checksum the kernel says
    /// was never filled in (`checksum_pending`, offloading devices).
    pub fn handle_frame(&mut self, frame: &[u8], checksum_pending: bool, now: Instant) -> Event {
        let Ok(msg) = udp_payload_to_client(frame, !checksum_pending).and_then(parse_reply) else {
            return Event::Ignored;
        };
        if msg.xid != self.xid || msg.chaddr != self.mac {
            return Event::Ignored;
        }
        match (&self.state, msg.kind) {
            (State::Selecting, MessageType::Offer) => match msg.lease() {
                Some(offer) => {
                    self.state = State::Requesting {
                        offer: offer.clone(),
                        sent: 0,
                    };
                    self.backoff.reset();
                    self.next_send = now;
                    Event::Offered(offer)
                }
                None => Event::Ignored,
            },
            (State::Requesting { offer, .. }, MessageType::Ack) => {
                let Some(lease) = msg.lease() else {
                    return Event::Ignored;
                };
                if lease.server != offer.server {
                    return Event::Ignored;
                }
                self.state = State::Bound(lease.clone());
                self.next_send = now + Duration::from_secs(86_400 * 365);
                Event::Bound(lease)
            }
            (State::Requesting { offer, .. }, MessageType::Nak) => {
                if msg.option(54).is_some_and(|s| s != offer.server.octets()) {
                    return Event::Ignored;
                }
                self.restart(now);
                Event::Nak
            }
            _ => Event::Ignored,
        }
    }

    /// A DISCOVER or REQUEST frame, broadcast from 0.0.0.0.
    fn build(&self, kind: MessageType, offer: Option<&Lease>, now: Instant) -> Vec<u8> {
        let mut p = vec![0u8; BOOTP_FIXED];
        p[0] = 1; // BOOTREQUEST
        p[1] = 1; // Ethernet
        p[2] = 6;
        p[4..8].copy_from_slice(&self.xid.to_be_bytes());
        let secs = now
            .saturating_duration_since(self.started)
            .as_secs()
            .min(0xffff) as u16;
        p[8..10].copy_from_slice(&secs.to_be_bytes());
        // Broadcast flag: we cannot take unicast IP before we have an address
        // on every stack; the packet socket would, but relays may need it.
        p[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
        p[28..34].copy_from_slice(&self.mac);
        p.extend_from_slice(&MAGIC);
        p.extend_from_slice(&[53, 1, kind as u8]);
        let mut client_id = vec![1u8];
        client_id.extend_from_slice(&self.mac);
        push_option(&mut p, 61, &client_id);
        if let Some(o) = offer {
            push_option(&mut p, 50, &o.address.octets());
            push_option(&mut p, 54, &o.server.octets());
        }
        push_option(&mut p, 57, &1500u16.to_be_bytes());
        if let Some(h) = &self.hostname {
            push_option(&mut p, 12, &h.as_bytes()[..h.len().min(255)]);
        }
        push_option(&mut p, 55, &PARAMS);
        p.push(255);
        if p.len() < MIN_BOOTP {
            p.resize(MIN_BOOTP, 0);
        }
        udp_frame(
            self.mac,
            [0xff; 6],
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            CLIENT_PORT,
            SERVER_PORT,
            &p,
        )
    }
}

fn push_option(p: &mut Vec<u8>, code: u8, v: &[u8]) {
    p.push(code);
    p.push(v.len() as u8);
    p.extend_from_slice(v);
}

#[cfg(test)]
#[path = "dhcp_tests.rs"]
mod tests;
