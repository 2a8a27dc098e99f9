//! Bringing the network up for Tang: over rtnetlink and an `AF_PACKET`
//! socket, with no udev, no shell and no DHCP client program.
//!
//! ```text
//!   Plan (netconf) ─► links up ─► carrier? ─► DHCP (dhcp::Client) or static ─► address + default route
//!                                                                           └► /etc/resolv.conf
//! ```
//! If the initrd already configured an address and a default route,
//! nothing is touched. With several candidate interfaces, DHCP runs on all
//! of them at once and the first lease wins.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latchkey_sys::netlink::{Link, Netlink};
use latchkey_sys::packet::PacketSocket;

use crate::deadline::{Backoff, Deadline, Jitter};
use crate::dhcp::{self, Event};
use crate::kmsg_log::Log;
use crate::netconf::{Iface, Method, Plan};

/// What went wrong while bringing the network up.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// A kernel call failed.
    Sys(latchkey_sys::Error),
    /// No interface matched: the name, or MAC, that was looked for.
    NoInterface(String),
    /// None of these interfaces reported carrier before the deadline.
    NoCarrier(Vec<String>),
    /// No DHCP lease on these interfaces before the deadline.
    DhcpTimeout(Vec<String>),
    /// Writing the resolver configuration failed.
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Sys(e) => write!(f, "{e}"),
            NetError::NoInterface(what) => write!(f, "no network interface {what}"),
            NetError::NoCarrier(l) => write!(
                f,
                "no carrier on {} (is the cable plugged in?)",
                l.join(", ")
            ),
            NetError::DhcpTimeout(l) => {
                write!(f, "no DHCP lease on {} before the deadline", l.join(", "))
            }
            NetError::ResolvConf { path, source } => {
                write!(f, "writing {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for NetError {}

impl From<latchkey_sys::Error> for NetError {
    fn from(e: latchkey_sys::Error) -> NetError {
        NetError::Sys(e)
    }
}

/// Knobs that are not on the command line.
pub struct Options {
    /// Where to write name servers (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// How long to wait for carrier after setting links up.
    pub carrier_timeout: Duration,
    /// DHCP retransmission schedule.
    pub dhcp_backoff: Backoff,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            carrier_timeout: Duration::from_secs(10),
            dhcp_backoff: Backoff::new(Duration::from_millis(500), 2, Duration::from_secs(8))
                .with_jitter(0.25),
        }
    }
}

/// An interface that was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configured {
    /// Interface name.
    pub ifname: String,
    /// Address and prefix.
    pub address: Option<(Ipv4Addr, u8)>,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Name servers learnt.
    pub dns: Vec<IpAddr>,
}

/// The result of [`bring_up`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An address and a default route were already there.
    AlreadyConfigured,
    /// The plan was empty (`ip=off`).
    Disabled,
    /// These interfaces were configured.
    Configured(Vec<Configured>),
}

/// True when some non-loopback interface has a global address and a
/// default route exists: the initrd's own scripts did the work.
pub fn already_configured(nl: &mut Netlink) -> Result<bool, NetError> {
    let links = nl.links()?;
    let lo: Vec<u32> = links
        .iter()
        .filter(|l| l.is_loopback())
        .map(|l| l.index)
        .collect();
    let has_addr = nl
        .addresses()?
        .iter()
        .any(|a| !lo.contains(&a.index) && a.scope == 0);
    Ok(has_addr && nl.routes()?.iter().any(|r| r.is_default()))
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn candidates(links: &[Link], iface: &Iface) -> Vec<Link> {
    links
        .iter()
        .filter(|l| !l.is_loopback())
        .filter(|l| match iface {
            Iface::Name(n) => l.name == *n,
            Iface::Mac(m) => l.mac == Some(*m),
            Iface::AnyWithCarrier => l.mac.is_some(),
        })
        .cloned()
        .collect()
}

/// Carries out `plan`, bounded by `deadline`.
pub fn bring_up(
    plan: &Plan,
    opts: &Options,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<Outcome, NetError> {
    if plan.is_empty() {
        return Ok(Outcome::Disabled);
    }
    let mut nl = Netlink::open()?;
    if already_configured(&mut nl)? {
        log.info("network already configured; leaving it as it is");
        return Ok(Outcome::AlreadyConfigured);
    }
    if let Some(lo) = nl.links()?.iter().find(|l| l.is_loopback() && !l.is_up()) {
        nl.set_link_up(lo.index)?;
    }
    let mut done = Vec::new();
    for step in &plan.steps {
        let links = wait_for_links(&mut nl, &step.iface, opts, deadline)?;
        let r = match &step.method {
            Method::Static {
                address,
                prefix,
                gateway,
            } => {
                let link = &links[0];
                nl.add_address_v4(link.index, *address, *prefix)?;
                if let Some(g) = gateway {
                    nl.add_default_route_v4(link.index, *g)?;
                }
                log.info(&format!("{}: static address {address}/{prefix}", link.name));
                Configured {
                    ifname: link.name.clone(),
                    address: Some((*address, *prefix)),
                    gateway: *gateway,
                    dns: vec![],
                }
            }
            Method::Auto6 => {
                for l in &links {
                    latchkey_sys::netlink::enable_ipv6_autoconf(&l.name)?;
                }
                Configured {
                    ifname: links[0].name.clone(),
                    address: None,
                    gateway: None,
                    dns: vec![],
                }
            }
            Method::Dhcp => {
                let (link, lease) = run_dhcp(
                    &links,
                    plan.hostname.as_deref(),
                    opts,
                    deadline,
                    jitter,
                    log,
                )?;
                nl.add_address_v4(link.index, lease.address, lease.prefix)?;
                if let Some(r) = lease.router {
                    nl.add_default_route_v4(link.index, r)?;
                }
                log.info(&format!(
                    "{}: DHCP lease {}/{} from {}, router {}",
                    link.name,
                    lease.address,
                    lease.prefix,
                    lease.server,
                    lease.router.map_or("none".to_owned(), |r| r.to_string())
                ));
                Configured {
                    ifname: link.name.clone(),
                    address: Some((lease.address, lease.prefix)),
                    gateway: lease.router,
                    dns: lease.dns.iter().copied().map(IpAddr::V4).collect(),
                }
            }
        };
        done.push(r);
    }
    let mut dns = plan.nameservers.clone();
    for c in &done {
        for d in &c.dns {
            if !dns.contains(d) {
                dns.push(*d);
            }
        }
    }
    if !dns.is_empty() {
        write_resolv_conf(&opts.resolv_conf, &dns)?;
    }
    Ok(Outcome::Configured(done))
}

/// The links matching `iface`, set up; for `AnyWithCarrier` only those
/// with carrier. Waits for the interface to appear and for carrier.
fn wait_for_links(
    nl: &mut Netlink,
    iface: &Iface,
    opts: &Options,
    deadline: Deadline,
) -> Result<Vec<Link>, NetError> {
    let until = deadline.min(Deadline::after(Instant::now(), opts.carrier_timeout));
    let mut raised = Vec::new();
    loop {
        let links = candidates(&nl.links()?, iface);
        for l in &links {
            if !l.is_up() && !raised.contains(&l.index) {
                nl.set_link_up(l.index)?;
                raised.push(l.index);
            }
        }
        let with_carrier: Vec<Link> = links.iter().filter(|l| l.carrier).cloned().collect();
        if !with_carrier.is_empty() {
            return Ok(with_carrier);
        }
        if until.expired(Instant::now()) {
            if links.is_empty() {
                return Err(NetError::NoInterface(match iface {
                    Iface::Name(n) => n.clone(),
                    Iface::Mac(m) => format!("with MAC {}", mac_str(m)),
                    Iface::AnyWithCarrier => "with a MAC address".to_owned(),
                }));
            }
            return Err(NetError::NoCarrier(
                links.iter().map(|l| l.name.clone()).collect(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn xid_for(mac: &[u8; 6], jitter: &mut dyn Jitter) -> u32 {
    jitter.next_u32() ^ u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]])
}

/// Runs one DHCP client per link until one is bound.
fn run_dhcp(
    links: &[Link],
    hostname: Option<&str>,
    opts: &Options,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<(Link, dhcp::Lease), NetError> {
    let now = Instant::now();
    let mut clients = Vec::new();
    for l in links {
        let Some(mac) = l.mac else { continue };
        let sock = PacketSocket::open(l.index)?;
        let mut c = dhcp::Client::new(mac, xid_for(&mac, jitter), opts.dhcp_backoff.clone(), now);
        if let Some(h) = hostname {
            c = c.with_hostname(h);
        }
        clients.push((l, sock, c));
    }
    if clients.is_empty() {
        return Err(NetError::NoInterface(
            "with an Ethernet address for DHCP".to_owned(),
        ));
    }
    let mut buf = vec![0u8; 2048];
    // With several interfaces each socket gets a short slice in turn.
    let slice = Duration::from_millis(if clients.len() == 1 { 250 } else { 50 });
    while !deadline.expired(Instant::now()) {
        for (link, sock, client) in &mut clients {
            let now = Instant::now();
            if let Some(frame) = client.poll(now, jitter) {
                log.debug(&format!(
                    "{}: DHCP {:?} xid {:08x}",
                    link.name,
                    client.state(),
                    client.xid()
                ));
                if let Err(e) = sock.send(&frame) {
                    // A link that lost carrier may refuse; the others go on.
                    log.debug(&format!("{}: {e}", link.name));
                }
            }
            let wait = client
                .next_wakeup()
                .saturating_duration_since(now)
                .min(slice);
            let wait = deadline.cap(now, wait);
            if let Some(r) = sock.recv(&mut buf, wait)? {
                match client.handle_frame(&buf[..r.len], r.checksum_pending, Instant::now()) {
                    Event::Bound(lease) => return Ok(((*link).clone(), lease)),
                    Event::Offered(o) => log.debug(&format!(
                        "{}: offer {} from {}",
                        link.name, o.address, o.server
                    )),
                    Event::Nak => log.warn(&format!(
                        "{}: DHCP server refused the request; starting over",
                        link.name
                    )),
                    Event::Ignored => {}
                }
            }
        }
    }
    Err(NetError::DhcpTimeout(
        clients.iter().map(|(l, _, _)| l.name.clone()).collect(),
    ))
}

/// The text of `/etc/resolv.conf` for these servers.
pub fn resolv_conf_text(dns: &[IpAddr]) -> String {
    let mut s = String::from("# written by latchkey\n");
    for d in dns.iter().take(3) {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s
}

fn write_resolv_conf(path: &Path, dns: &[IpAddr]) -> Result<(), NetError> {
    std::fs::write(path, resolv_conf_text(dns)).map_err(|source| NetError::ResolvConf {
        path: path.to_owned(),
        source,
    })
}
