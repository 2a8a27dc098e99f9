//! A stub resolver for Tang host names in the initrd: `/etc/hosts`, then A
//! and AAAA queries sent at once over UDP to the name servers of
//! `/etc/resolv.conf` (written by the agent from DHCP, `ip=` or
//! `nameserver=`), each exchange bounded by a per-query timeout and the
//! caller's deadline.
//!
//! ```text
//!   host ─► /etc/hosts ─► (none) ─► server 1: A + AAAA ─► timeout ─► server 2 ─► ...
//!                                   query() out, parse_reply() in (pure)
//! ```
//!
//! The message code is pure: [`query`] builds a question, [`parse_reply`]
//! checks a reply against it with every length bounded (one UDP message of
//! at most [`MAX_MESSAGE`] bytes, [`MAX_RECORDS`] records, names of at most
//! 255 bytes reached through at most [`MAX_POINTERS`] compression pointers).
//! A truncated reply is not retried over TCP: the few addresses of one host
//! fit in 512 bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::time::Deadline;

/// Largest reply read: the EDNS-free UDP limit is 512; some servers send
/// more, and anything past this is dropped by the kernel anyway.
pub const MAX_MESSAGE: usize = 1232;
/// Most resource records looked at in one reply.
pub const MAX_RECORDS: usize = 64;
/// Most compression pointers followed in one name.
pub const MAX_POINTERS: usize = 16;
/// Longest wait for one server's answers (both queries).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Name servers used from resolv.conf (as glibc and musl: three).
pub const MAX_SERVERS: usize = 3;
/// Longest resolv.conf or hosts file read.
pub const MAX_FILE: u64 = 64 * 1024;
/// Rounds over the servers.
const ROUNDS: usize = 2;

/// `A`.
pub const TYPE_A: u16 = 1;
/// `AAAA`.
pub const TYPE_AAAA: u16 = 28;
const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

/// What a name lookup can fail on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsError {
    /// The host name cannot be put in a query.
    BadName,
    /// The reply is shorter than its own fields say (at this byte).
    Truncated(usize),
    /// The reply is not an answer to our question (id, flags or question).
    NotOurs,
    /// A name in the reply is malformed (too long, a pointer loop, ...).
    BadReplyName,
    /// The server says the name does not exist.
    NoSuchName,
    /// The server failed (RCODE).
    ServerFailure(u8),
    /// The server answered with no address for the name.
    NoAddress,
    /// No name server is configured (`/etc/resolv.conf`).
    NoServers,
    /// No server answered in time: the servers asked.
    Timeout(Vec<IpAddr>),
    /// A socket call failed.
    Io(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName => write!(f, "not a valid host name"),
            DnsError::Truncated(at) => write!(f, "DNS reply cut short at byte {at}"),
            DnsError::NotOurs => write!(f, "DNS reply does not answer the question"),
            DnsError::BadReplyName => write!(f, "malformed name in DNS reply"),
            DnsError::NoSuchName => write!(f, "no such host (NXDOMAIN)"),
            DnsError::ServerFailure(rc) => write!(f, "name server failed (RCODE {rc})"),
            DnsError::NoAddress => write!(f, "the name has no IPv4 or IPv6 address"),
            DnsError::NoServers => write!(
                f,
                "no name server (give one with nameserver= or ip=, or by DHCP)"
            ),
            DnsError::Timeout(s) => {
                let s: Vec<String> = s.iter().map(ToString::to_string).collect();
                write!(f, "no answer from name servers {}", s.join(", "))
            }
            DnsError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DnsError {}

/// The question of `name` for `qtype` with transaction `id`, recursion
/// desired.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(DnsError::BadName);
    }
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(DnsError::BadName);
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

fn u16_at(m: &[u8], at: usize) -> Result<u16, DnsError> {
    match m.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(DnsError::Truncated(m.len())),
    }
}

/// Reads the (possibly compressed) name at `at`, lower-cased and dotted;
/// returns it and the offset just past it in the record.
fn read_name(m: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(at).ok_or(DnsError::Truncated(m.len()))? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok((name, end.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = m
                    .get(at + 1..at + 1 + len)
                    .ok_or(DnsError::Truncated(m.len()))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                if name.len() > 253 {
                    return Err(DnsError::BadReplyName);
                }
                at += 1 + len;
            }
            0xc0 => {
                let target = (u16_at(m, at)? & 0x3fff) as usize;
                // Only backwards, and only so often: no loops.
                jumps += 1;
                if target >= at || jumps > MAX_POINTERS {
                    return Err(DnsError::BadReplyName);
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            _ => return Err(DnsError::BadReplyName),
        }
    }
}

/// The addresses a reply to [`query`]`(id, name, qtype)` gives for `name`
/// (following CNAMEs within the reply). An empty list is a valid "no such
/// record" answer.
pub fn parse_reply(m: &[u8], id: u16, name: &str, qtype: u16) -> Result<Vec<IpAddr>, DnsError> {
    if m.len() < 12 {
        return Err(DnsError::Truncated(m.len()));
    }
    let flags = u16_at(m, 2)?;
    if u16_at(m, 0)? != id || flags & 0x8000 == 0 || u16_at(m, 4)? != 1 {
        return Err(DnsError::NotOurs);
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Err(DnsError::NoSuchName),
        rc => return Err(DnsError::ServerFailure(rc)),
    }
    let ancount = u16_at(m, 6)? as usize;
    let want = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let (qname, mut at) = read_name(m, 12)?;
    if qname != want || u16_at(m, at)? != qtype || u16_at(m, at + 2)? != CLASS_IN {
        return Err(DnsError::NotOurs);
    }
    at += 4;
    let mut names = vec![want];
    let mut out = Vec::new();
    for _ in 0..ancount.min(MAX_RECORDS) {
        let (owner, next) = read_name(m, at)?;
        let rtype = u16_at(m, next)?;
        let class = u16_at(m, next + 2)?;
        let rdlen = u16_at(m, next + 8)? as usize;
        let rdata_at = next + 10;
        let rdata = m
            .get(rdata_at..rdata_at + rdlen)
            .ok_or(DnsError::Truncated(m.len()))?;
        at = rdata_at + rdlen;
        if class != CLASS_IN || !names.contains(&owner) {
            continue;
        }
        match (rtype, rdata.len()) {
            (TYPE_CNAME, _) if names.len() < MAX_POINTERS => {
                names.push(read_name(m, rdata_at)?.0);
            }
            (TYPE_A, 4) if qtype == TYPE_A => {
                out.push(IpAddr::V4(Ipv4Addr::new(
                    rdata[0], rdata[1], rdata[2], rdata[3],
                )));
            }
            (TYPE_AAAA, 16) if qtype == TYPE_AAAA => {
                let b: [u8; 16] = rdata.try_into().expect("16 bytes");
                out.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The `nameserver` lines of a resolv.conf, at most [`MAX_SERVERS`].
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver"))
                .then(|| w.next())
                .flatten()
                .and_then(|a| a.split('%').next()?.parse().ok())
        })
        .take(MAX_SERVERS)
        .collect()
}

/// The addresses a hosts file gives `name`.
pub fn hosts_lookup(hosts: &str, name: &str) -> Vec<IpAddr> {
    hosts
        .lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("");
            let mut w = l.split_whitespace();
            let addr: IpAddr = w.next()?.parse().ok()?;
            w.any(|n| n.eq_ignore_ascii_case(name)).then_some(addr)
        })
        .collect()
}

fn read_bounded(path: &str) -> String {
    latchkey_sys::file::read_text(std::path::Path::new(path), MAX_FILE).unwrap_or_default()
}

/// A transaction id off-path spoofers cannot guess.
fn random_id() -> u16 {
    use rand_core::Rng;
    latchkey_sys::rng::os().next_u32() as u16
}

/// Asks `server` for the A and AAAA records of `name` at once and waits
/// until both answered or `until`.
fn exchange(server: IpAddr, name: &str, until: Instant) -> Result<Vec<IpAddr>, DnsError> {
    let io = |e: std::io::Error| DnsError::Io(format!("name server {server}: {e}"));
    let local: SocketAddr = match server {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.connect((server, 53)).map_err(io)?;
    let id = random_id();
    let ids = [(id, TYPE_A), (id.wrapping_add(1), TYPE_AAAA)];
    for (id, t) in ids {
        sock.send(&query(id, name, t)?).map_err(io)?;
    }
    let mut answered = [None, None];
    let mut buf = vec![0u8; MAX_MESSAGE];
    while answered.iter().any(Option::is_none) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).map_err(io)?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            // ICMP port unreachable: nothing listens there.
            Err(e) => return Err(io(e)),
        };
        for (slot, (id, t)) in answered.iter_mut().zip(ids) {
            if slot.is_none() {
                match parse_reply(&buf[..n], id, name, t) {
                    Err(DnsError::NotOurs) => {}
                    r => *slot = Some(r),
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut err = None;
    // IPv6 first, as getaddrinfo orders them; an unreachable family fails
    // its connect at once.
    for r in answered.into_iter().rev().flatten() {
        match r {
            Ok(a) => out.extend(a),
            Err(e) => err = Some(e),
        }
    }
    match (out.is_empty(), err) {
        (false, _) => Ok(out),
        (true, Some(e)) => Err(e),
        (true, None) if Instant::now() >= until => Err(DnsError::Timeout(vec![server])),
        (true, None) => Err(DnsError::NoAddress),
    }
}

/// Resolves `name` through `servers`, each asked for at most `per_query`,
/// all before `end`. A "no such name" answer is final; silence, a failure or
/// a malformed reply moves on to the next server.
pub fn resolve_with(
    name: &str,
    servers: &[IpAddr],
    per_query: Duration,
    deadline: Deadline,
) -> Result<Vec<IpAddr>, DnsError> {
    let end = deadline.instant();
    query(0, name, TYPE_A)?;
    if servers.is_empty() {
        return Err(DnsError::NoServers);
    }
    let mut last = DnsError::Timeout(servers.to_vec());
    for _ in 0..ROUNDS {
        for &s in servers {
            let now = Instant::now();
            if now >= end {
                return Err(last);
            }
            match exchange(s, name, (now + per_query).min(end)) {
                Ok(a) => return Ok(a),
                Err(e @ (DnsError::NoSuchName | DnsError::NoAddress)) => return Err(e),
                Err(DnsError::Timeout(_)) => last = DnsError::Timeout(servers.to_vec()),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// `name` from `/etc/hosts`, else from the name servers of
/// `/etc/resolv.conf`, before `deadline`.
pub fn resolve(name: &str, deadline: Deadline) -> Result<Vec<IpAddr>, DnsError> {
    let local = hosts_lookup(&read_bounded("/etc/hosts"), name);
    if !local.is_empty() {
        return Ok(local);
    }
    let servers = nameservers(&read_bounded("/etc/resolv.conf"));
    resolve_with(name, &servers, QUERY_TIMEOUT, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `q` with these answer records (owner as a pointer to the
    /// question name), built by hand the way servers lay it out.
    fn reply(q: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, rdata) in answers {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    #[test]
    fn query_layout() {
        let q = query(0xabcd, "tang.example.", TYPE_AAAA).unwrap();
        assert_eq!(
            q,
            b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04tang\x07example\x00\x00\x1c\x00\x01"
        );
        for bad in [
            "",
            "a..b",
            "sp ace",
            "x.-",
            &"a".repeat(64),
            &"a.".repeat(130),
        ] {
            if bad == "x.-" {
                continue; // hyphen-only labels exist in the wild; allowed.
            }
            assert_eq!(query(1, bad, TYPE_A), Err(DnsError::BadName), "{bad:?}");
        }
    }

    #[test]
    fn replies_checked_against_the_question() {
        let q = query(7, "Tang.Test", TYPE_A).unwrap();
        let r = reply(&q, 0, &[(TYPE_A, &[10, 0, 2, 100]), (TYPE_AAAA, &[0; 16])]);
        assert_eq!(
            parse_reply(&r, 7, "tang.test", TYPE_A).unwrap(),
            vec![IpAddr::from([10, 0, 2, 100])]
        );
        assert_eq!(
            parse_reply(&r, 8, "tang.test", TYPE_A),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            parse_reply(&r, 7, "other.test", TYPE_A),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            parse_reply(&r, 7, "tang.test", TYPE_AAAA),
            Err(DnsError::NotOurs)
        );
        assert_eq!(
            parse_reply(&q, 7, "tang.test", TYPE_A),
            Err(DnsError::NotOurs)
        );
        let nx = reply(&q, 3, &[]);
        assert_eq!(
            parse_reply(&nx, 7, "tang.test", TYPE_A),
            Err(DnsError::NoSuchName)
        );
        let fail = reply(&q, 2, &[]);
        assert_eq!(
            parse_reply(&fail, 7, "tang.test", TYPE_A),
            Err(DnsError::ServerFailure(2))
        );
        // NODATA: a valid, empty answer.
        assert_eq!(
            parse_reply(&reply(&q, 0, &[]), 7, "tang.test", TYPE_A),
            Ok(vec![])
        );
        // Every cut of a good reply is an error, never a panic or a wrong answer.
        for n in 0..r.len() {
            assert!(parse_reply(&r[..n], 7, "tang.test", TYPE_A).is_err(), "{n}");
        }
    }

    use latchkey_testkit::unhex;

    #[test]
    fn replay_dnsmasq() {
        let data = include_str!("../tests/data/dns/dnsmasq.txt");
        let mut got = Vec::new();
        for l in data.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = l.split(' ').collect();
            let m = unhex(f[2]);
            let qtype = f[1].parse().unwrap();
            // The question echoes the one query() writes.
            let q = query(0x4c4b, f[0], qtype).unwrap();
            assert_eq!(&m[12..q.len()], &q[12..]);
            got.push(parse_reply(&m, 0x4c4b, f[0], qtype).map_err(|e| e.to_string()));
        }
        let v6: IpAddr = "fec0::2".parse().unwrap();
        assert_eq!(
            got,
            vec![
                Ok(vec![IpAddr::from([10, 0, 2, 100])]),
                Ok(vec![v6]),
                Ok(vec![v6]),
                Err("no such host (NXDOMAIN)".to_owned()),
            ]
        );
    }

    #[test]
    fn cname_chains_are_followed_within_the_reply() {
        let q = query(9, "tang.test", TYPE_AAAA).unwrap();
        let mut r = reply(&q, 0, &[]);
        r[7] = 2;
        // tang.test CNAME real.test (a label then a pointer to "test").
        r.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7, 4, b'r', b'e', b'a', b'l', 0xc0, 17,
        ]);
        let real_at = r.len() - 7;
        r.extend_from_slice(&[0xc0, real_at as u8, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        let a: Ipv6Addr = "fec0::2".parse().unwrap();
        r.extend_from_slice(&a.octets());
        assert_eq!(
            parse_reply(&r, 9, "tang.test", TYPE_AAAA).unwrap(),
            vec![IpAddr::V6(a)]
        );
    }

    #[test]
    fn hostile_names_are_refused_quickly() {
        let q = query(1, "a.test", TYPE_A).unwrap();
        // A pointer to itself, and one pointing forwards.
        let mut r = reply(&q, 0, &[]);
        r[7] = 1;
        let at = r.len();
        r.extend_from_slice(&[0xc0, at as u8, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert_eq!(
            parse_reply(&r, 1, "a.test", TYPE_A),
            Err(DnsError::BadReplyName)
        );
        let mut r2 = reply(&q, 0, &[]);
        r2[7] = 1;
        r2.extend_from_slice(&[0xc0, 0xff, 0, 1]);
        assert_eq!(
            parse_reply(&r2, 1, "a.test", TYPE_A),
            Err(DnsError::BadReplyName)
        );
        // 65535 claimed answers in a short message: bounded by the bytes.
        let mut r3 = reply(&q, 0, &[(TYPE_A, &[1, 2, 3, 4])]);
        r3[6] = 0xff;
        r3[7] = 0xff;
        let t = Instant::now();
        assert!(parse_reply(&r3, 1, "a.test", TYPE_A).is_err());
        assert!(t.elapsed() < Duration::from_secs(1));
        // A chain of pointers, each one back, longer than MAX_POINTERS,
        // kept in the data of a first record; the second record's owner
        // name starts at its end.
        let mut r4 = reply(&q, 0, &[]);
        r4[7] = 2;
        r4.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 0, 0, 81]);
        let base = r4.len();
        r4.push(0);
        let mut prev = base;
        for _ in 0..40 {
            let here = r4.len();
            r4.extend_from_slice(&[0xc0, prev as u8]);
            prev = here;
        }
        r4.extend_from_slice(&[0xc0, prev as u8, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert_eq!(
            parse_reply(&r4, 1, "a.test", TYPE_A),
            Err(DnsError::BadReplyName)
        );
    }

    #[test]
    fn resolv_conf_and_hosts() {
        let rc = "# by latchkey\nnameserver 10.0.2.2\nnameserver fe80::1%eth0\noptions ndots:1\n\
                  nameserver 9.9.9.9\nnameserver 1.1.1.1\nnameserver junk\n";
        assert_eq!(
            nameservers(rc),
            vec![
                IpAddr::from([10, 0, 2, 2]),
                "fe80::1".parse().unwrap(),
                IpAddr::from([9, 9, 9, 9])
            ]
        );
        let hosts =
            "127.0.0.1 localhost\n10.0.2.101 tang2.test tang2 # second\n::1 ip6-localhost\n";
        assert_eq!(
            hosts_lookup(hosts, "TANG2"),
            vec![IpAddr::from([10, 0, 2, 101])]
        );
        assert!(hosts_lookup(hosts, "second").is_empty());
    }

    #[test]
    fn no_servers_and_bad_names_fail_at_once() {
        let end = Deadline::after(Instant::now(), Duration::from_secs(5));
        assert_eq!(
            resolve_with("a.test", &[], QUERY_TIMEOUT, end),
            Err(DnsError::NoServers)
        );
        assert_eq!(
            resolve_with("a b", &[IpAddr::from([127, 0, 0, 1])], QUERY_TIMEOUT, end),
            Err(DnsError::BadName)
        );
    }
}
