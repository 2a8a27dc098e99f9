//! `ip=dhcp6`: the DHCPv6 client ([`dhcp6::Client`]) on a UDP socket bound
//! to each link's link-local address, then the address as a /128 and a
//! bounded wait for the router advertisement that makes it useful (the
//! on-link prefix, the default route: the kernel takes them in, as for
//! `ip=auto6`).

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6, UdpSocket};

use rand_core::Rng;

use super::*;
use crate::net::dhcp6::{self, ALL_SERVERS, CLIENT_PORT, Event, MAX_MESSAGE, SERVER_PORT};

/// One link taking part.
struct Attempt {
    link: Link,
    sock: UdpSocket,
    client: dhcp6::Client,
}

/// Leases an address on one of `links` and configures it.
pub(super) fn configure(
    nl: &mut Netlink,
    links: &[Link],
    opts: &Options,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<Configured, NetError> {
    for l in links {
        latchkey_sys::netlink::set_ipv6_autoconf(&l.name, true)?;
    }
    let (link, lease) = lease(nl, links, deadline, jitter, log)?;
    let address = lease.address;
    added(nl.add_address(link.index, address.into(), 128))?;
    let until = deadline.min(Deadline::after(Instant::now(), opts.ipv6_timeout));
    wait_for_ipv6(nl, std::slice::from_ref(&link), Some(address), until)?;
    if !wait_for_route(nl, &link, address, until)? {
        log.warn(&format!(
            "{}: no router advertisement: only {address}/128 is reachable through it",
            link.name
        ));
    }
    let dns: Vec<String> = lease.dns.iter().map(|d| d.to_string()).collect();
    log.info(&format!(
        "{}: DHCPv6 lease {address}/128, DNS {}",
        link.name,
        if dns.is_empty() {
            "none".to_owned()
        } else {
            dns.join(" ")
        }
    ));
    Ok(Configured {
        ifname: link.name,
        address: Some((address.into(), 128)),
        gateway: None,
        dns: lease.dns.into_iter().map(IpAddr::V6).collect(),
    })
}

/// A route out of `link` that reaches beyond `address` itself: the
/// default route or an on-link prefix holding it. False once `until` passes.
fn wait_for_route(
    nl: &mut Netlink,
    link: &Link,
    address: Ipv6Addr,
    until: Deadline,
) -> Result<bool, NetError> {
    let covers = |dst: Option<IpAddr>, len: u8| match dst {
        None => true,
        Some(IpAddr::V6(net)) if len < 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(net) & mask == u128::from(address) & mask
        }
        _ => false,
    };
    loop {
        let found = nl.routes()?.iter().any(|r| {
            r.oif == Some(link.index)
                && (r.dst.is_none_or(|d| d.is_ipv6()) && r.gateway.is_none_or(|g| g.is_ipv6()))
                && (r.dst.is_some() || r.gateway.is_some())
                && covers(r.dst, r.dst_len)
        });
        if found {
            return Ok(true);
        }
        if until.expired(Instant::now()) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The link-local address of `link` once duplicate address detection
/// let it be used (before that the kernel will not bind to it).
fn link_local(nl: &mut Netlink, link: &Link) -> Result<Option<Ipv6Addr>, NetError> {
    Ok(nl.addresses()?.into_iter().find_map(|a| match a.addr {
        IpAddr::V6(v6)
            if a.index == link.index
                && a.scope == RT_SCOPE_LINK
                && a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0 =>
        {
            Some(v6)
        }
        _ => None,
    }))
}

fn start(link: &Link, local: Ipv6Addr) -> Result<Option<Attempt>, NetError> {
    let Some(mac) = link.mac else { return Ok(None) };
    let sock = UdpSocket::bind(SocketAddrV6::new(local, CLIENT_PORT, 0, link.index)).map_err(
        |source| NetError::Dhcp6Socket {
            ifname: link.name.clone(),
            source,
        },
    )?;
    let xid = latchkey_sys::rng::os().next_u32();
    Ok(Some(Attempt {
        link: link.clone(),
        sock,
        client: dhcp6::Client::new(mac, xid, Instant::now()),
    }))
}

/// Runs one client per link until one is bound.
fn lease(
    nl: &mut Netlink,
    links: &[Link],
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<(Link, dhcp6::Lease), NetError> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut refused = None;
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    while !deadline.expired(Instant::now()) {
        for l in links {
            if !attempts.iter().any(|a| a.link.index == l.index)
                && let Some(local) = link_local(nl, l)?
            {
                attempts.extend(start(l, local)?);
            }
        }
        if attempts.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let slice = Duration::from_millis(if attempts.len() == 1 { 250 } else { 50 });
        for Attempt { link, sock, client } in &mut attempts {
            let now = Instant::now();
            if let Some(m) = client.poll(now, jitter) {
                log.debug(&format!(
                    "{}: DHCPv6 {} xid {:06x}",
                    link.name,
                    if m[0] == 1 { "SOLICIT" } else { "REQUEST" },
                    client.xid()
                ));
                let to = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, link.index);
                if let Err(e) = sock.send_to(&m, to) {
                    log.debug(&format!("{}: {e}", link.name));
                }
            }
            let wait = client
                .next_wakeup()
                .saturating_duration_since(now)
                .min(slice);
            let wait = deadline.cap(now, wait).max(Duration::from_millis(1));
            let io = |source| NetError::Dhcp6Socket {
                ifname: link.name.clone(),
                source,
            };
            sock.set_read_timeout(Some(wait)).map_err(io)?;
            let n = match sock.recv_from(&mut buf) {
                Ok((n, from)) if n <= MAX_MESSAGE && from.port() == SERVER_PORT => n,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(io(e)),
            };
            match client.handle(&buf[..n], Instant::now()) {
                Event::Bound(lease) => return Ok((link.clone(), lease)),
                Event::Advertised(a) => log.debug(&format!("{}: DHCPv6 offer {a}", link.name)),
                Event::Refused(s) => {
                    log.warn(&format!("{}: DHCPv6 server refused: {s}", link.name));
                    refused = Some((link.name.clone(), s));
                }
                Event::Ignored => {}
            }
        }
    }
    Err(match refused {
        Some((ifname, status)) => NetError::Dhcp6Refused { ifname, status },
        None => NetError::Dhcp6Timeout(links.iter().map(|l| l.name.clone()).collect()),
    })
}
