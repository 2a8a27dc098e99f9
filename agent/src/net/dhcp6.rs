//! A sans-IO DHCPv6 client (RFC 8415) for one interface: one address
//! (IA_NA) and the DNS servers (option 23), nothing else.
//!
//! ```text
//!   Soliciting ──SOLICIT──► ADVERTISE (best of the first RT, or preference 255)
//!       ▲  └── REPLY with Rapid Commit ──────────────────────────┐
//!       │                                                        ▼
//!       └── NoAddrsAvail, or no answer ── Requesting ──REQUEST──► REPLY ─► Bound
//! ```
//! Messages are UDP payloads: unlike DHCPv4 the client already has a
//! link-local address, so the caller sends them from a UDP socket bound to
//! it (port 546) to [`ALL_SERVERS`] port 547. The caller owns the socket and
//! the clock: [`Client::poll`] gives a message to send, [`Client::next_wakeup`]
//! when to call it again, and [`Client::handle`] takes every datagram.
//!
//! The address comes without a prefix length: it is used as a /128, and
//! the on-link prefix and the default route come from router
//! advertisements, which the kernel handles.

use std::fmt;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use latchkey_client::time::{Backoff, Jitter};

/// The client's UDP port.
pub const CLIENT_PORT: u16 = 546;
/// The servers' UDP port.
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (ff02::1:2).
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Longest message taken; a server's reply to one IA fits in far less.
pub const MAX_MESSAGE: usize = 1500;
/// Most options looked at in one message (top level and nested together).
pub const MAX_OPTIONS: usize = 64;
/// Most DNS servers kept from option 23.
pub const MAX_DNS: usize = 4;
/// Most addresses kept from one IA_NA.
const MAX_ADDRESSES: usize = 4;

const SOLICIT: u8 = 1;
const ADVERTISE: u8 = 2;
const REQUEST: u8 = 3;
const REPLY: u8 = 7;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_PREFERENCE: u16 = 7;
const OPT_ELAPSED_TIME: u16 = 8;
const OPT_STATUS_CODE: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
const OPT_DNS_SERVERS: u16 = 23;

/// RFC 8415 §7.6: SOL_TIMEOUT, SOL_MAX_RT; REQ_TIMEOUT, REQ_MAX_RT, REQ_MAX_RC.
const SOL_TIMEOUT: Duration = Duration::from_secs(1);
const SOL_MAX_RT: Duration = Duration::from_secs(3600);
const REQ_TIMEOUT: Duration = Duration::from_secs(1);
const REQ_MAX_RT: Duration = Duration::from_secs(30);
const REQ_MAX_RC: u32 = 10;
/// RFC 8415 §15: each retransmission time spread by ±10 %.
const RAND: f64 = 0.1;

/// A status code (option 13) other than Success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The code: 1 UnspecFail, 2 NoAddrsAvail, 3 NoBinding, 4 NotOnLink,
    /// 5 UseMulticast, ...
    pub code: u16,
    /// The server's message, printable characters only, at most 120.
    pub message: String,
}

/// NoAddrsAvail: the server has no address for this client.
pub const NO_ADDRS_AVAIL: u16 = 2;

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            1 => "UnspecFail",
            NO_ADDRS_AVAIL => "NoAddrsAvail",
            3 => "NoBinding",
            4 => "NotOnLink",
            5 => "UseMulticast",
            6 => "NoPrefixAvail",
            _ => "status",
        };
        write!(f, "{name} ({})", self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Why a datagram was not taken as a server's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// Shorter than its header, or an option runs past its end.
    Truncated,
    /// Longer than [`MAX_MESSAGE`].
    TooLong,
    /// More than [`MAX_OPTIONS`] options.
    TooManyOptions,
    /// Neither ADVERTISE nor REPLY.
    NotForClient,
    /// No server identifier, or a malformed fixed-size option.
    Malformed,
}

/// An IA_NA address (option 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaAddress {
    /// The address.
    pub address: Ipv6Addr,
    /// Preferred lifetime.
    pub preferred: u32,
    /// Valid lifetime; 0 means the server withdrew it.
    pub valid: u32,
}

/// An ADVERTISE or REPLY, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// 2 (ADVERTISE) or 7 (REPLY).
    pub kind: u8,
    /// Transaction id (24 bits).
    pub xid: u32,
    /// Client identifier (a DUID), if sent.
    pub client_id: Option<Vec<u8>>,
    /// Server identifier (a DUID).
    pub server_id: Vec<u8>,
    /// Server preference (option 7), 0 when absent.
    pub preference: u8,
    /// Whole-message status, when not Success.
    pub status: Option<Status>,
    /// Rapid Commit (option 14) present.
    pub rapid_commit: bool,
    /// The first IA_NA: its IAID.
    pub iaid: Option<u32>,
    /// Status inside that IA_NA, when not Success.
    pub ia_status: Option<Status>,
    /// Its addresses with a non-zero valid lifetime.
    pub addresses: Vec<IaAddress>,
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
}

/// The options in `b` as (code, value), each counted against `budget`.
fn options<'a>(mut b: &'a [u8], budget: &mut usize) -> Result<Vec<(u16, &'a [u8])>, Ignored> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if *budget == 0 {
            return Err(Ignored::TooManyOptions);
        }
        *budget -= 1;
        let (Some(head), Some(rest)) = (b.get(..4), b.get(4..)) else {
            return Err(Ignored::Truncated);
        };
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        out.push((code, rest.get(..len).ok_or(Ignored::Truncated)?));
        b = &rest[len..];
    }
    Ok(out)
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |a, &x| a << 8 | u32::from(x))
}

fn addr(b: &[u8]) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// A status code option's value; `None` for Success.
fn status(v: &[u8]) -> Result<Option<Status>, Ignored> {
    let code = v.get(..2).ok_or(Ignored::Malformed)?;
    let code = u16::from_be_bytes([code[0], code[1]]);
    if code == 0 {
        return Ok(None);
    }
    let message = String::from_utf8_lossy(&v[2..])
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    Ok(Some(Status { code, message }))
}

/// Parses a datagram from a server. Never panics; bounded by
/// [`MAX_MESSAGE`] and [`MAX_OPTIONS`].
pub fn parse(b: &[u8]) -> Result<Message, Ignored> {
    if b.len() > MAX_MESSAGE {
        return Err(Ignored::TooLong);
    }
    if b.len() < 4 {
        return Err(Ignored::Truncated);
    }
    if b[0] != ADVERTISE && b[0] != REPLY {
        return Err(Ignored::NotForClient);
    }
    let mut m = Message {
        kind: b[0],
        xid: be32(&[0, b[1], b[2], b[3]]),
        client_id: None,
        server_id: Vec::new(),
        preference: 0,
        status: None,
        rapid_commit: false,
        iaid: None,
        ia_status: None,
        addresses: Vec::new(),
        dns: Vec::new(),
    };
    let mut budget = MAX_OPTIONS;
    let mut ia: Option<&[u8]> = None;
    for (code, v) in options(&b[4..], &mut budget)? {
        match code {
            OPT_CLIENTID if m.client_id.is_none() => m.client_id = Some(v.to_vec()),
            OPT_SERVERID if m.server_id.is_empty() => m.server_id = v.to_vec(),
            OPT_PREFERENCE => m.preference = *v.first().ok_or(Ignored::Malformed)?,
            OPT_STATUS_CODE => m.status = status(v)?,
            OPT_RAPID_COMMIT => m.rapid_commit = true,
            OPT_IA_NA if ia.is_none() => ia = Some(v),
            OPT_DNS_SERVERS => {
                let room = MAX_DNS - m.dns.len();
                let usable = |a: &Ipv6Addr| !a.is_unspecified() && !a.is_multicast();
                m.dns.extend(
                    v.chunks_exact(16)
                        .filter_map(addr)
                        .filter(usable)
                        .take(room),
                );
            }
            _ => {}
        }
    }
    if m.server_id.is_empty() {
        return Err(Ignored::Malformed);
    }
    let Some(ia) = ia else { return Ok(m) };
    let fixed = ia.get(..12).ok_or(Ignored::Malformed)?;
    m.iaid = Some(be32(fixed));
    for (code, v) in options(&ia[12..], &mut budget)? {
        match code {
            OPT_STATUS_CODE => m.ia_status = status(v)?,
            OPT_IAADDR => {
                let a = addr(v).ok_or(Ignored::Malformed)?;
                let life = v.get(16..24).ok_or(Ignored::Malformed)?;
                let mut a_status = None;
                for (code, v) in options(&v[24..], &mut budget)? {
                    if code == OPT_STATUS_CODE {
                        a_status = status(v)?;
                    }
                }
                let (preferred, valid) = (be32(&life[..4]), be32(&life[4..]));
                if a_status.is_none()
                    && valid != 0
                    && preferred <= valid
                    && m.addresses.len() < MAX_ADDRESSES
                    && !a.is_multicast()
                    && !a.is_unspecified()
                    && !a.is_loopback()
                {
                    m.addresses.push(IaAddress {
                        address: a,
                        preferred,
                        valid,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

/// What a server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address (used as a /128).
    pub address: Ipv6Addr,
    /// Its valid lifetime; `None` for infinity.
    pub valid: Option<Duration>,
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// The server's DUID.
    pub server_id: Vec<u8>,
}

impl Message {
    fn lease(&self) -> Option<Lease> {
        let a = self.addresses.first()?;
        Some(Lease {
            address: a.address,
            valid: (a.valid != u32::MAX).then(|| Duration::from_secs(u64::from(a.valid))),
            dns: self.dns.clone(),
            server_id: self.server_id.clone(),
        })
    }

    /// The refusal this message carries, whole-message or for the IA.
    fn refusal(&self) -> Option<&Status> {
        self.status.as_ref().or(self.ia_status.as_ref())
    }
}

/// Client state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Sending SOLICIT; the best ADVERTISE so far, if any.
    Soliciting {
        /// The ADVERTISE to request once the first RT ends.
        best: Option<Box<Message>>,
    },
    /// Sending REQUEST for what `server` advertised.
    Requesting {
        /// The ADVERTISE being requested.
        advertise: Box<Message>,
        /// REQUESTs sent so far.
        sent: u32,
    },
    /// Got a REPLY with an address.
    Bound(Lease),
}

/// What [`Client::handle`] made of a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Not for us, or not useful.
    Ignored,
    /// An ADVERTISE of this address was kept.
    Advertised(Ipv6Addr),
    /// A server said no (e.g. NoAddrsAvail); the client goes on asking.
    Refused(Status),
    /// We have an address.
    Bound(Lease),
}

/// The DHCPv6 client state machine for one interface.
pub struct Client {
    duid: Vec<u8>,
    iaid: u32,
    xid: u32,
    state: State,
    backoff: Backoff,
    started: Instant,
    next_send: Instant,
    /// Whether the first SOLICIT's RT has passed (RFC 8415 §18.2.1: until
    /// then ADVERTISEs are collected, unless one has preference 255).
    first_rt_over: bool,
    /// Whether SOLICITs ask for Rapid Commit.
    rapid_commit: bool,
}

fn solicit_backoff() -> Backoff {
    Backoff::new(SOL_TIMEOUT, 2, SOL_MAX_RT).with_jitter(RAND)
}

fn request_backoff() -> Backoff {
    Backoff::new(REQ_TIMEOUT, 2, REQ_MAX_RT).with_jitter(RAND)
}

/// DUID-LL (RFC 8415 §11.4) from an Ethernet address: stable across
/// boots, and the same one the kernel's MAC gives every other tool.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

impl Client {
    /// A client for the interface with hardware address `mac`, using
    /// transaction id `xid` (random in production; 24 bits are used),
    /// starting at `now`.
    pub fn new(mac: [u8; 6], xid: u32, now: Instant) -> Client {
        Client {
            duid: duid_ll(mac),
            // One IA per interface: any stable value does.
            iaid: be32(&mac[2..]),
            xid: xid & 0x00ff_ffff,
            state: State::Soliciting { best: None },
            backoff: solicit_backoff(),
            started: now,
            next_send: now,
            first_rt_over: false,
            rapid_commit: true,
        }
    }

    /// Leaves Rapid Commit out of SOLICITs, so that a server answers with
    /// an ADVERTISE (tests use it to record the four-message exchange).
    #[cfg(test)]
    pub(crate) fn without_rapid_commit(mut self) -> Client {
        self.rapid_commit = false;
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

    /// When [`Client::poll`] next has something to do.
    pub fn next_wakeup(&self) -> Instant {
        self.next_send
    }

    /// The message to send at `now`, if one is due.
    pub fn poll(&mut self, now: Instant, jitter: &mut dyn Jitter) -> Option<Vec<u8>> {
        if now < self.next_send {
            return None;
        }
        match &mut self.state {
            State::Bound(_) => return None,
            State::Soliciting { best } => {
                // The first SOLICIT's elapsed time is 0 and starts the clock.
                if self.backoff.attempts() == 0 {
                    self.started = now;
                } else {
                    self.first_rt_over = true;
                }
                if self.first_rt_over
                    && let Some(adv) = best.take()
                {
                    self.request(adv, now);
                    return self.poll(now, jitter);
                }
            }
            State::Requesting { sent, .. } => {
                if *sent >= REQ_MAX_RC {
                    self.restart(now);
                    return self.poll(now, jitter);
                }
                *sent += 1;
            }
        }
        let msg = self.build(now);
        self.next_send = now + self.backoff.next_delay(jitter);
        Some(msg)
    }

    fn request(&mut self, advertise: Box<Message>, now: Instant) {
        self.state = State::Requesting { advertise, sent: 0 };
        self.xid = self.xid.wrapping_mul(0x0019_660d).wrapping_add(0x3c6e_f35f) & 0x00ff_ffff;
        self.backoff = request_backoff();
        self.started = now;
        self.next_send = now;
    }

    fn restart(&mut self, now: Instant) {
        self.state = State::Soliciting { best: None };
        // A new transaction, so late replies to the old one are ignored.
        self.xid = (self.xid.rotate_left(7) & 0x00ff_ffff) ^ 0x005b_d1e9;
        self.backoff = solicit_backoff();
        self.first_rt_over = false;
        self.next_send = now;
    }

    /// Processes a received UDP payload.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) -> Event {
        let Ok(msg) = parse(datagram) else {
            return Event::Ignored;
        };
        if msg.xid != self.xid || msg.client_id.as_deref() != Some(&self.duid) {
            return Event::Ignored;
        }
        let ours = msg.iaid == Some(self.iaid);
        match &mut self.state {
            State::Soliciting { best } => {
                if let Some(s) = msg.refusal() {
                    return Event::Refused(s.clone());
                }
                if !ours {
                    return Event::Ignored;
                }
                match msg.kind {
                    REPLY if msg.rapid_commit && self.rapid_commit => self.bind(&msg, now),
                    ADVERTISE => {
                        let Some(a) = msg.addresses.first().map(|a| a.address) else {
                            return Event::Ignored;
                        };
                        if best.as_ref().is_none_or(|b| msg.preference > b.preference) {
                            let top = msg.preference == 255;
                            *best = Some(Box::new(msg));
                            if top || self.first_rt_over {
                                self.next_send = now;
                                self.first_rt_over = true;
                            }
                        }
                        Event::Advertised(a)
                    }
                    _ => Event::Ignored,
                }
            }
            State::Requesting { advertise, .. } => {
                if msg.kind != REPLY || msg.server_id != advertise.server_id {
                    return Event::Ignored;
                }
                if let Some(s) = msg.refusal() {
                    let s = s.clone();
                    self.restart(now);
                    return Event::Refused(s);
                }
                if !ours {
                    return Event::Ignored;
                }
                self.bind(&msg, now)
            }
            State::Bound(_) => Event::Ignored,
        }
    }

    fn bind(&mut self, msg: &Message, now: Instant) -> Event {
        let Some(lease) = msg.lease() else {
            return Event::Ignored;
        };
        self.state = State::Bound(lease.clone());
        self.next_send = now + Duration::from_secs(86_400 * 365);
        Event::Bound(lease)
    }

    /// A SOLICIT or REQUEST.
    fn build(&self, now: Instant) -> Vec<u8> {
        let mut p = Vec::with_capacity(96);
        let kind = match self.state {
            State::Requesting { .. } => REQUEST,
            _ => SOLICIT,
        };
        p.push(kind);
        p.extend_from_slice(&self.xid.to_be_bytes()[1..]);
        push(&mut p, OPT_CLIENTID, &self.duid);
        let mut ia = Vec::with_capacity(40);
        ia.extend_from_slice(&self.iaid.to_be_bytes());
        // T1 and T2 0: the server chooses (RFC 8415 §21.4).
        ia.extend_from_slice(&[0; 8]);
        if let State::Requesting { advertise, .. } = &self.state {
            push(&mut p, OPT_SERVERID, &advertise.server_id);
            for a in &advertise.addresses {
                let mut v = a.address.octets().to_vec();
                v.extend_from_slice(&[0; 8]);
                push(&mut ia, OPT_IAADDR, &v);
            }
        }
        push(&mut p, OPT_IA_NA, &ia);
        push(&mut p, OPT_ORO, &OPT_DNS_SERVERS.to_be_bytes());
        let centis = now.saturating_duration_since(self.started).as_millis() / 10;
        push(
            &mut p,
            OPT_ELAPSED_TIME,
            &(centis.min(0xffff) as u16).to_be_bytes(),
        );
        if kind == SOLICIT && self.rapid_commit {
            push(&mut p, OPT_RAPID_COMMIT, &[]);
        }
        p
    }
}

fn push(p: &mut Vec<u8>, code: u16, v: &[u8]) {
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&(v.len() as u16).to_be_bytes());
    p.extend_from_slice(v);
}

#[cfg(test)]
#[path = "dhcp6_tests.rs"]
mod tests;
