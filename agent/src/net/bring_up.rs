//! Bringing the network up: over rtnetlink and an `AF_PACKET`
//! socket, with no udev, no shell and no DHCP client program.
//!
//! ```text
//!   Plan (plan) ─► bonds, VLANs ─► links up ─► carrier? ─► DHCP (dhcp::Client), static ─► address + default route
//!                                                        or router advertisements    └► /etc/resolv.conf
//! ```
//! An IPv6 address is used only once duplicate address detection has
//! passed (before that the kernel will not send from it).
//! Nothing waits for the kernel to mark a configured link operational: a
//! first SYN it drops meanwhile is sent again by the Tang client within
//! 150 ms.
//! If the initrd already configured an address and a default route,
//! nothing is touched. With several candidate interfaces, DHCP runs on all
//! of them at once and the first lease wins.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latchkey_sys::netlink::{IFA_F_DADFAILED, IFA_F_OPTIMISTIC, IFA_F_TENTATIVE, Link, Netlink};
use latchkey_sys::packet::PacketSocket;

use super::dhcp::{self, Event};
#[path = "dhcp6_run.rs"]
mod dhcp6_run;
use super::plan::{Iface, Method, Plan};
use crate::kmsg_log::Log;
use latchkey_client::time::{Backoff, Deadline, Jitter};

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
    /// No usable global IPv6 address from router advertisements on these
    /// interfaces in time.
    NoRouterAdvertisement(Vec<String>),
    /// Duplicate address detection found this IPv6 address in use on the
    /// link.
    DuplicateAddress {
        /// The interface.
        ifname: String,
        /// The address.
        address: Ipv6Addr,
    },
    /// No DHCPv6 lease on these interfaces before the deadline.
    Dhcp6Timeout(Vec<String>),
    /// The DHCPv6 server on this interface refused (NoAddrsAvail, ...)
    /// and none gave an address before the deadline.
    Dhcp6Refused {
        /// The interface.
        ifname: String,
        /// What the server said.
        status: super::dhcp6::Status,
    },
    /// The DHCPv6 client's socket on this interface failed.
    Dhcp6Socket {
        /// The interface.
        ifname: String,
        /// The error.
        source: std::io::Error,
    },
    /// The deadline passed before a bring-up could even start.
    NotTried,
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
            NetError::NoRouterAdvertisement(l) => write!(
                f,
                "no IPv6 address from router advertisements on {} in time",
                l.join(", ")
            ),
            NetError::DuplicateAddress { ifname, address } => write!(
                f,
                "{ifname}: {address} is already in use on the link (duplicate address detection)"
            ),
            NetError::Dhcp6Timeout(l) => {
                write!(f, "no DHCPv6 lease on {} before the deadline", l.join(", "))
            }
            NetError::Dhcp6Refused { ifname, status } => {
                write!(f, "{ifname}: the DHCPv6 server gave no address: {status}")
            }
            NetError::Dhcp6Socket { ifname, source } => {
                write!(f, "{ifname}: DHCPv6 socket: {source}")
            }
            NetError::NotTried => {
                write!(f, "the deadline passed before the network was brought up")
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
    /// How long to wait for router advertisements, and for duplicate
    /// address detection, to give a usable IPv6 address.
    pub ipv6_timeout: Duration,
    /// DHCP retransmission schedule.
    pub dhcp_backoff: Backoff,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            carrier_timeout: Duration::from_secs(10),
            ipv6_timeout: Duration::from_secs(10),
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
    pub address: Option<(IpAddr, u8)>,
    /// Default gateway.
    pub gateway: Option<IpAddr>,
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
fn already_configured(nl: &mut Netlink, links: &[Link]) -> Result<bool, NetError> {
    let lo: Vec<u32> = links
        .iter()
        .filter(|l| l.is_loopback())
        .map(|l| l.index)
        .collect();
    let has_addr = nl
        .addresses()?
        .iter()
        .any(|a| !lo.contains(&a.index) && a.scope < RT_SCOPE_LINK);
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
        // A bond's slave carries the bond's traffic, not its own.
        .filter(|l| l.master.is_none() || matches!(iface, Iface::Name(_)))
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
    let links = nl.links()?;
    if already_configured(&mut nl, &links)? {
        log.info("network already configured; leaving it as it is");
        return Ok(Outcome::AlreadyConfigured);
    }
    // Up before anything else: the kernel tells a connect that its server's
    // address never answered ARP ("Host is unreachable") with an ICMP error
    // to itself, which goes over the loopback; without it the connect only
    // times out.
    if let Some(lo) = links.iter().find(|l| l.is_loopback() && !l.is_up()) {
        nl.set_link_up(lo.index)?;
    }
    create_virtual_links(&mut nl, plan, opts, deadline, log)?;
    let mut done = Vec::new();
    for step in &plan.steps {
        let optimistic = matches!(step.method, Method::Dhcp6);
        let links = wait_for_links(&mut nl, &step.iface, optimistic, opts, deadline)?;
        let r = match &step.method {
            Method::Static {
                address,
                prefix,
                gateway,
            } => {
                let link = &links[0];
                if address.is_ipv6() {
                    // Static means static: no addresses or routes from
                    // router advertisements beside the ones given.
                    latchkey_sys::netlink::set_ipv6_autoconf(&link.name, false)?;
                }
                added(nl.add_address(link.index, *address, *prefix))?;
                if let IpAddr::V6(a) = address {
                    let until = deadline.min(Deadline::after(Instant::now(), opts.ipv6_timeout));
                    wait_for_ipv6(&mut nl, std::slice::from_ref(link), Some(*a), false, until)?;
                }
                if let Some(g) = gateway {
                    added(nl.add_default_route(link.index, *g))?;
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
                    latchkey_sys::netlink::set_ipv6_autoconf(&l.name, true)?;
                }
                let until = deadline.min(Deadline::after(Instant::now(), opts.ipv6_timeout));
                let (link, address, prefix) = wait_for_ipv6(&mut nl, &links, None, false, until)?;
                log.info(&format!(
                    "{}: address {address}/{prefix} from router advertisements",
                    link.name
                ));
                Configured {
                    ifname: link.name,
                    address: Some((address.into(), prefix)),
                    gateway: None,
                    dns: vec![],
                }
            }
            Method::Dhcp6 => {
                dhcp6_run::configure(&mut nl, &step.iface, links, opts, deadline, jitter, log)?
            }
            Method::Dhcp => {
                let (link, lease) = run_dhcp(
                    &mut nl,
                    &step.iface,
                    &links,
                    plan.hostname.as_deref(),
                    opts,
                    deadline,
                    jitter,
                    log,
                )?;
                added(nl.add_address(link.index, lease.address.into(), lease.prefix))?;
                if let Some(r) = lease.router {
                    added(nl.add_default_route(link.index, r.into()))?;
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
                    address: Some((lease.address.into(), lease.prefix)),
                    gateway: lease.router.map(IpAddr::V4),
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

/// The interface named `name`, waited for (a NIC whose driver is still
/// probing) until the carrier timeout.
fn link_named(
    nl: &mut Netlink,
    name: &str,
    opts: &Options,
    deadline: Deadline,
) -> Result<Link, NetError> {
    let until = deadline.min(Deadline::after(Instant::now(), opts.carrier_timeout));
    loop {
        if let Some(l) = nl.links()?.into_iter().find(|l| l.name == name) {
            return Ok(l);
        }
        if until.expired(Instant::now()) {
            return Err(NetError::NoInterface(name.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates the plan's bonds (enslaving their NICs) and then its VLANs.
/// What an earlier attempt created is kept.
fn create_virtual_links(
    nl: &mut Netlink,
    plan: &Plan,
    opts: &Options,
    deadline: Deadline,
    log: &Log,
) -> Result<(), NetError> {
    for b in &plan.bonds {
        let settings = latchkey_sys::netlink::BondSettings {
            mode: b.mode as u8,
            miimon: b.miimon,
            updelay: b.updelay,
            downdelay: b.downdelay,
            lacp_fast: b.lacp_fast,
            mtu: b.mtu,
        };
        match nl.add_bond(&b.name, &settings) {
            // The bonding driver makes bond0 itself when it loads; an
            // earlier attempt of ours may have made this one and enslaved
            // its NICs already (then it has our settings).
            Err(e) if e.errno() == Some(rustix::io::Errno::EXIST) => {
                let bond = link_named(nl, &b.name, opts, deadline)?;
                if !nl.links()?.iter().any(|l| l.master == Some(bond.index)) {
                    nl.set_link_down(bond.index)?;
                    nl.change_bond(bond.index, &settings)?;
                }
            }
            r => r?,
        }
        let bond = link_named(nl, &b.name, opts, deadline)?;
        for s in &b.slaves {
            let slave = link_named(nl, s, opts, deadline)?;
            if slave.master != Some(bond.index) {
                // The bonding driver takes only slaves that are down.
                nl.set_link_down(slave.index)?;
                nl.set_master(slave.index, bond.index)?;
            }
            if b.primary.as_ref() == Some(s) {
                nl.set_bond_primary(bond.index, slave.index)?;
            }
        }
        log.info(&format!(
            "{}: bond ({}) of {}",
            b.name,
            b.mode.name(),
            b.slaves.join(", ")
        ));
    }
    for v in &plan.vlans {
        let parent = link_named(nl, &v.parent, opts, deadline)?;
        added(nl.add_vlan(&v.name, parent.index, v.id))?;
        // The VLAN has carrier only while its parent is up.
        if !parent.is_up() {
            nl.set_link_up(parent.index)?;
        }
        log.info(&format!("{}: VLAN {} on {}", v.name, v.id, v.parent));
    }
    Ok(())
}

/// `RT_SCOPE_LINK`: addresses of this scope or narrower reach no router.
const RT_SCOPE_LINK: u8 = 253;

/// Adding what an earlier, failed attempt already added is no error.
fn added(r: Result<(), latchkey_sys::Error>) -> Result<(), NetError> {
    match r {
        Err(e) if e.errno() == Some(rustix::io::Errno::EXIST) => Ok(()),
        r => Ok(r?),
    }
}

/// What duplicate address detection allows of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dad {
    /// Cleared, or optimistic (RFC 4429) where the link was set up for it.
    Usable,
    /// Still tentative.
    Pending,
    /// Another machine holds it.
    Duplicate,
}

/// [`Dad`] of an address with these `IFA_F_*` flags; `optimistic`: its
/// link was set up to use optimistic addresses (`set_optimistic_dad`).
fn dad(flags: u32, optimistic: bool) -> Dad {
    if flags & IFA_F_DADFAILED != 0 {
        Dad::Duplicate
    } else if flags & IFA_F_TENTATIVE == 0 || (optimistic && flags & IFA_F_OPTIMISTIC != 0) {
        Dad::Usable
    } else {
        Dad::Pending
    }
}

/// Waits until one of `links` holds a global IPv6 address (`want`, or any)
/// that duplicate address detection lets be used (see [`dad`]).
fn wait_for_ipv6(
    nl: &mut Netlink,
    links: &[Link],
    want: Option<Ipv6Addr>,
    optimistic: bool,
    until: Deadline,
) -> Result<(Link, Ipv6Addr, u8), NetError> {
    loop {
        for a in nl.addresses()? {
            let (IpAddr::V6(addr), Some(link)) =
                (a.addr, links.iter().find(|l| l.index == a.index))
            else {
                continue;
            };
            // Global or site scope (fec0::/10, still handed out by some
            // routers and by QEMU's user network); not link or host.
            if a.scope >= RT_SCOPE_LINK || want.is_some_and(|w| w != addr) {
                continue;
            }
            match dad(a.flags, optimistic) {
                Dad::Duplicate => {
                    return Err(NetError::DuplicateAddress {
                        ifname: link.name.clone(),
                        address: addr,
                    });
                }
                Dad::Usable => return Ok((link.clone(), addr, a.prefix)),
                Dad::Pending => {}
            }
        }
        if until.expired(Instant::now()) {
            return Err(NetError::NoRouterAdvertisement(
                links.iter().map(|l| l.name.clone()).collect(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The links matching `iface`, set up; for `AnyWithCarrier` only those
/// with carrier. Waits for the interface to appear and for carrier.
/// `optimistic`: links this raises use optimistic DAD (their link-local
/// address is usable at once), where the kernel offers it.
fn wait_for_links(
    nl: &mut Netlink,
    iface: &Iface,
    optimistic: bool,
    opts: &Options,
    deadline: Deadline,
) -> Result<Vec<Link>, NetError> {
    let until = deadline.min(Deadline::after(Instant::now(), opts.carrier_timeout));
    let mut raised = Vec::new();
    loop {
        let links = candidates(&nl.links()?, iface);
        let mut raising = false;
        for l in &links {
            if !l.is_up() && !raised.contains(&l.index) {
                if optimistic {
                    latchkey_sys::netlink::set_optimistic_dad(&l.name)?;
                }
                nl.set_link_up(l.index)?;
                raised.push(l.index);
                raising = true;
            }
        }
        if raising {
            // A NIC with carrier reports it as soon as it is up: look again at once.
            continue;
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

/// One interface taking part in DHCP.
struct Attempt {
    link: Link,
    sock: PacketSocket,
    client: dhcp::Client,
}

fn start_attempt(
    link: &Link,
    hostname: Option<&str>,
    opts: &Options,
    jitter: &mut dyn Jitter,
) -> Result<Option<Attempt>, NetError> {
    let Some(mac) = link.mac else { return Ok(None) };
    let sock = PacketSocket::open(link.index)?;
    let mut client = dhcp::Client::new(
        mac,
        xid_for(&mac, jitter),
        opts.dhcp_backoff.clone(),
        Instant::now(),
    );
    if let Some(h) = hostname {
        client = client.with_hostname(h);
    }
    Ok(Some(Attempt {
        link: link.clone(),
        sock,
        client,
    }))
}

/// How often interfaces that had no carrier yet are looked at again.
const RESCAN: Duration = Duration::from_millis(500);

/// Interfaces matching a step's `iface` that gain carrier after the first
/// wait, so that DHCP (v4 or v6) on them joins in while the deadline
/// allows. A named interface was waited for already: nothing to add.
struct Rescan<'a> {
    iface: &'a Iface,
    next: Instant,
}

impl<'a> Rescan<'a> {
    fn new(iface: &'a Iface) -> Rescan<'a> {
        Rescan {
            iface,
            next: Instant::now() + RESCAN,
        }
    }

    /// The links with carrier that `known` does not hold, at most once a
    /// [`RESCAN`]; empty in between.
    fn joining(
        &mut self,
        nl: &mut Netlink,
        known: impl Fn(u32) -> bool,
    ) -> Result<Vec<Link>, NetError> {
        if matches!(self.iface, Iface::Name(_)) || Instant::now() < self.next {
            return Ok(Vec::new());
        }
        self.next = Instant::now() + RESCAN;
        Ok(candidates(&nl.links()?, self.iface)
            .into_iter()
            .filter(|l| l.carrier && !known(l.index))
            .collect())
    }
}

/// Runs one DHCP client per link until one is bound. For `AnyWithCarrier`
/// and `Mac`, interfaces that gain carrier later join in.
fn run_dhcp(
    nl: &mut Netlink,
    iface: &Iface,
    links: &[Link],
    hostname: Option<&str>,
    opts: &Options,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<(Link, dhcp::Lease), NetError> {
    let mut attempts = Vec::new();
    for l in links {
        attempts.extend(start_attempt(l, hostname, opts, jitter)?);
    }
    if attempts.is_empty() {
        return Err(NetError::NoInterface(
            "with an Ethernet address for DHCP".to_owned(),
        ));
    }
    let mut buf = vec![0u8; 2048];
    let mut rescan = Rescan::new(iface);
    while !deadline.expired(Instant::now()) {
        for l in rescan.joining(nl, |i| attempts.iter().any(|a| a.link.index == i))? {
            log.debug(&format!("{}: carrier; joining DHCP", l.name));
            attempts.extend(start_attempt(&l, hostname, opts, jitter)?);
        }
        // With several interfaces each socket gets a short slice in turn.
        let slice = Duration::from_millis(if attempts.len() == 1 { 250 } else { 50 });
        for Attempt { link, sock, client } in &mut attempts {
            let now = Instant::now();
            if let Some(frame) = client.poll(now, jitter) {
                let kind = match client.state() {
                    dhcp::State::Selecting => "DISCOVER",
                    _ => "REQUEST",
                };
                log.debug(&format!(
                    "{}: DHCP {kind} xid {:08x}",
                    link.name,
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
                    Event::Bound(lease) => return Ok((link.clone(), lease)),
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
        attempts.iter().map(|a| a.link.name.clone()).collect(),
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

/// Root-only helpers: a private network namespace with veth pairs and
/// real DHCP servers on the far ends. Nothing here touches the host's
/// interfaces: every link is created inside a namespace this thread made.
#[cfg(test)]
pub(crate) mod testnet {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    /// Enters a new network namespace, or prints why the test is skipped.
    pub fn enter(test: &str) -> bool {
        if !latchkey_sys::proc::is_root() {
            println!("{test}: skipped: needs root");
            return false;
        }
        if !latchkey_testkit::have(&["ip"]) {
            return false;
        }
        latchkey_sys::mount::enter_new_network_namespace().expect("unshare(CLONE_NEWNET) as root");
        true
    }

    pub fn ip(args: &str) {
        let st = Command::new("ip")
            .args(args.split(' '))
            .status()
            .expect("running ip(8)");
        assert!(st.success(), "ip {args}");
    }

    /// A veth pair `client`/`server`, the server end up with `server_cidr`.
    pub fn veth(client: &str, server: &str, server_cidr: &str) {
        ip(&format!("link add {client} type veth peer name {server}"));
        ip(&format!("addr add {server_cidr} dev {server}"));
        ip(&format!("link set {server} up"));
    }

    pub fn scratch(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("latchkey-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A server process we started; killed (by its own pid) on drop.
    pub struct Server(pub Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// busybox udhcpd on `iface` handing out 10.88.N.50-59 with router
    /// 10.88.N.1 and DNS 10.88.N.53 (`net` is the third octet).
    pub fn udhcpd(dir: &std::path::Path, iface: &str, net: u8) -> Option<Server> {
        udhcpd_in(dir, iface, net, None)
    }

    /// A second namespace for the far ends of veth pairs, so that the code
    /// under test cannot see (or raise) them: a `sleep` we started in it.
    pub struct PeerNs(Server);

    impl PeerNs {
        pub fn new() -> PeerNs {
            let child = Command::new("unshare")
                .args(["-n", "sleep", "60"])
                .spawn()
                .expect("unshare(1)");
            // Ready once the child is in a network namespace other than ours
            // (unshare(1) forks first; a fixed pause lost that race under load).
            let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            let (ours, theirs) = (ns("self"), child.id().to_string());
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while ns(&theirs) == ours {
                assert!(
                    std::time::Instant::now() < until,
                    "unshare -n: no new namespace in 10 s"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            PeerNs(Server(child))
        }

        pub fn pid(&self) -> u32 {
            self.0.0.id()
        }

        /// Moves `iface` into this namespace.
        pub fn take(&self, iface: &str) {
            ip(&format!("link set {iface} netns {}", self.pid()));
        }

        /// Runs `ip ARGS` inside this namespace.
        pub fn ip(&self, args: &str) {
            ns_ip(self.pid(), args);
        }

        /// [`PeerNs::ip`] after `delay`, on its own thread: join it to see it succeed.
        pub fn ip_after(
            &self,
            delay: std::time::Duration,
            args: &'static str,
        ) -> std::thread::JoinHandle<()> {
            let pid = self.pid();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                ns_ip(pid, args);
            })
        }
    }

    fn ns_ip(pid: u32, args: &str) {
        let st = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "ip"])
            .args(args.split(' '))
            .status()
            .expect("nsenter(1)");
        assert!(st.success(), "nsenter ip {args}");
    }

    /// [`udhcpd`], inside `ns` when given.
    pub fn udhcpd_in(
        dir: &std::path::Path,
        iface: &str,
        net: u8,
        ns: Option<&PeerNs>,
    ) -> Option<Server> {
        if !latchkey_testkit::have(&["busybox"]) {
            return None;
        }
        let conf = dir.join(format!("udhcpd-{iface}.conf"));
        std::fs::write(
            &conf,
            format!(
                "start 10.88.{net}.50\nend 10.88.{net}.59\ninterface {iface}\n\
                 lease_file {lf}\npidfile {pf}\nopt subnet 255.255.255.0\n\
                 opt router 10.88.{net}.1\nopt dns 10.88.{net}.53\nopt lease 3600\n",
                lf = dir.join(format!("{iface}.leases")).display(),
                pf = dir.join(format!("{iface}.pid")).display(),
            ),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{iface}.leases")), b"").unwrap();
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &ns.pid().to_string(), "-n", "busybox"]);
                c
            }
            None => Command::new("busybox"),
        };
        let child = cmd
            .arg("udhcpd")
            .arg("-f")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting busybox udhcpd");
        // udhcpd opens its socket right away; give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(200));
        Some(Server(child))
    }

    /// dnsmasq on `iface` with the same pool as [`udhcpd`], if installed.
    pub fn dnsmasq(dir: &std::path::Path, iface: &str, net: u8) -> Option<Server> {
        if !latchkey_testkit::have(&["dnsmasq"]) {
            return None;
        }
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--bind-interfaces",
                "--dhcp-authoritative",
            ])
            .arg(format!("--interface={iface}"))
            .arg(format!(
                "--dhcp-range=10.88.{net}.50,10.88.{net}.59,255.255.255.0,1h"
            ))
            .arg(format!("--dhcp-option=option:router,10.88.{net}.1"))
            .arg(format!("--dhcp-option=option:dns-server,10.88.{net}.53"))
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.join("dnsmasq.leases").display()
            ))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(Server(child))
    }
}

#[cfg(test)]
mod tests {
    use super::testnet::*;
    use super::*;
    use crate::net::plan::Step;
    use latchkey_client::time::XorShift;
    use std::net::Ipv4Addr;

    fn pool(net: u8) -> std::ops::RangeInclusive<IpAddr> {
        IpAddr::V4(Ipv4Addr::new(10, 88, net, 50))..=IpAddr::V4(Ipv4Addr::new(10, 88, net, 59))
    }

    /// A plan of one step, `method` on `iface`, and nothing else.
    fn one_step(iface: Iface, method: Method) -> Plan {
        Plan {
            steps: vec![Step { iface, method }],
            ..Plan::default()
        }
    }

    /// The default options, resolv.conf written into `dir`.
    fn options_in(dir: &std::path::Path) -> Options {
        Options {
            resolv_conf: dir.join("resolv.conf"),
            ..Options::default()
        }
    }

    /// `secs` seconds from now.
    fn within(secs: u64) -> Deadline {
        Deadline::after(Instant::now(), Duration::from_secs(secs))
    }

    #[test]
    fn dad_lets_optimistic_addresses_be_used_only_where_asked() {
        let (t, o, f) = (IFA_F_TENTATIVE, IFA_F_OPTIMISTIC, IFA_F_DADFAILED);
        assert_eq!(dad(0, false), Dad::Usable);
        assert_eq!(dad(0, true), Dad::Usable);
        assert_eq!(dad(t, true), Dad::Pending);
        assert_eq!(dad(t | o, false), Dad::Pending);
        assert_eq!(dad(t | o, true), Dad::Usable);
        // A duplicate is one, optimistic or not.
        assert_eq!(dad(t | f, false), Dad::Duplicate);
        assert_eq!(dad(t | o | f, true), Dad::Duplicate);
        assert_eq!(dad(f, true), Dad::Duplicate);
    }

    #[test]
    fn resolv_conf_lists_at_most_three() {
        let dns: Vec<IpAddr> = ["1.1.1.1", "9.9.9.9", "2001:db8::53", "8.8.8.8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            resolv_conf_text(&dns),
            "# written by latchkey\nnameserver 1.1.1.1\nnameserver 9.9.9.9\nnameserver 2001:db8::53\n"
        );
    }

    #[test]
    fn root_bring_up_dhcp_from_busybox_udhcpd() {
        let t = "root_bring_up_dhcp_from_busybox_udhcpd";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        veth("lkc0", "lks0", "10.88.1.1/24");
        let Some(_server) = udhcpd(&dir, "lks0", 1) else {
            return;
        };
        let plan = Plan {
            nameservers: vec!["192.0.2.53".parse().unwrap()],
            ..one_step(Iface::Name("lkc0".into()), Method::Dhcp)
        };
        let opts = options_in(&dir);
        let log = Log::memory(Instant::now(), true);
        let deadline = within(20);
        let out = bring_up(&plan, &opts, deadline, &mut XorShift::new(7), &log)
            .unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Configured(c) = out else {
            panic!("{out:?}")
        };
        assert_eq!(c.len(), 1);
        let (addr, prefix) = c[0].address.unwrap();
        assert!(pool(1).contains(&addr) && prefix == 24, "{addr}/{prefix}");
        assert_eq!(c[0].gateway, Some(Ipv4Addr::new(10, 88, 1, 1).into()));
        let resolv = std::fs::read_to_string(dir.join("resolv.conf")).unwrap();
        assert_eq!(
            resolv,
            "# written by latchkey\nnameserver 192.0.2.53\nnameserver 10.88.1.53\n"
        );

        let mut nl = Netlink::open().unwrap();
        let idx = nl
            .links()
            .unwrap()
            .iter()
            .find(|l| l.name == "lkc0")
            .unwrap()
            .index;
        assert!(
            nl.addresses()
                .unwrap()
                .iter()
                .any(|a| a.index == idx && a.addr == addr)
        );
        assert!(
            nl.routes()
                .unwrap()
                .iter()
                .any(|r| r.is_default() && r.oif == Some(idx))
        );
        assert!(
            log.lines().iter().any(|(_, l)| l.contains("DHCP lease")),
            "{:?}",
            log.lines()
        );

        // A second run finds the network configured and changes nothing.
        let again = bring_up(&plan, &opts, deadline, &mut XorShift::new(8), &log).unwrap();
        assert_eq!(again, Outcome::AlreadyConfigured);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_bring_up_picks_the_interface_with_carrier() {
        let t = "root_bring_up_picks_the_interface_with_carrier";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        // lka0's peer stays down, so lka0 never gets carrier.
        ip("link add lka0 type veth peer name lka1");
        veth("lkb0", "lkb1", "10.88.2.1/24");
        let Some(_server) = udhcpd(&dir, "lkb1", 2) else {
            return;
        };
        let plan = Plan {
            hostname: Some("latchkey-test".into()),
            ..one_step(Iface::AnyWithCarrier, Method::Dhcp)
        };
        let log = Log::memory(Instant::now(), false);
        let out = bring_up(
            &plan,
            &options_in(&dir),
            within(20),
            &mut XorShift::new(9),
            &log,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Configured(c) = out else {
            panic!("{out:?}")
        };
        assert_eq!(c[0].ifname, "lkb0");
        assert!(pool(2).contains(&c[0].address.unwrap().0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_bring_up_joins_an_interface_that_gets_carrier_later() {
        let t = "root_bring_up_joins_an_interface_that_gets_carrier_later";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        // lkx0 has carrier at once but nobody answers DHCP on it; lky0 gets
        // carrier (and a server) a second later. The far ends live in
        // another namespace, as the switch ports of a real machine would.
        let peers = PeerNs::new();
        ip("link add lkx0 type veth peer name lkx1");
        peers.take("lkx1");
        peers.ip("link set lkx1 up");
        ip("link add lky0 type veth peer name lky1");
        peers.take("lky1");
        peers.ip("addr add 10.88.5.1/24 dev lky1");
        let later = peers.ip_after(Duration::from_secs(1), "link set lky1 up");
        let Some(_server) = udhcpd_in(&dir, "lky1", 5, Some(&peers)) else {
            return;
        };
        let plan = one_step(Iface::AnyWithCarrier, Method::Dhcp);
        let log = Log::memory(Instant::now(), true);
        let out = bring_up(
            &plan,
            &options_in(&dir),
            within(20),
            &mut XorShift::new(5),
            &log,
        );
        later.join().unwrap();
        let Outcome::Configured(c) = out.unwrap_or_else(|e| panic!("{e}")) else {
            panic!("not configured")
        };
        assert_eq!(c[0].ifname, "lky0");
        assert!(pool(5).contains(&c[0].address.unwrap().0));
        assert!(
            log.lines()
                .iter()
                .any(|(_, l)| l.contains("lky0: carrier; joining DHCP")),
            "{:?}",
            log.lines()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_bring_up_static_and_failures() {
        let t = "root_bring_up_static_and_failures";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        ip("link add lkt0 type veth peer name lkt1");
        ip("link set lkt1 up");
        let plan = one_step(
            Iface::Name("lkt0".into()),
            Method::Static {
                address: Ipv4Addr::new(192, 0, 2, 10).into(),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
            },
        );
        let opts = Options {
            resolv_conf: dir.join("resolv.conf"),
            carrier_timeout: Duration::from_millis(500),
            ipv6_timeout: Duration::from_secs(5),
            dhcp_backoff: Backoff::new(Duration::from_millis(100), 2, Duration::from_millis(400)),
        };
        let log = Log::memory(Instant::now(), false);
        let soon = || within(2);
        let out = bring_up(&plan, &opts, soon(), &mut XorShift::new(1), &log).unwrap();
        assert_eq!(
            out,
            Outcome::Configured(vec![Configured {
                ifname: "lkt0".into(),
                address: Some((Ipv4Addr::new(192, 0, 2, 10).into(), 24)),
                gateway: Some(Ipv4Addr::new(192, 0, 2, 1).into()),
                dns: vec![],
            }])
        );
        assert!(!dir.join("resolv.conf").exists());
        // An address on the link that never answers ARP fails a connect as
        // "Host is unreachable" after the kernel's ARP tries (about 3 s), not
        // at the connect's own timeout: the kernel sends that error to itself
        // over the loopback, which bring_up raised.
        let silent = std::net::SocketAddr::from((Ipv4Addr::new(192, 0, 2, 99), 80));
        let e = std::net::TcpStream::connect_timeout(&silent, Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::HostUnreachable, "{e}");

        // Fresh namespace for the failure cases: nothing configured yet.
        latchkey_sys::mount::enter_new_network_namespace().unwrap();
        let named = |n: &str| one_step(Iface::Name(n.into()), Method::Dhcp);
        let e = bring_up(
            &named("nosuch0"),
            &opts,
            soon(),
            &mut XorShift::new(1),
            &log,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "no network interface nosuch0");
        ip("link add lku0 type veth peer name lku1");
        let e = bring_up(&named("lku0"), &opts, soon(), &mut XorShift::new(1), &log).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no carrier on lku0 (is the cable plugged in?)"
        );
        // Carrier but nobody answers DHCP.
        ip("link set lku1 up");
        let e = bring_up(&named("lku0"), &opts, soon(), &mut XorShift::new(1), &log).unwrap_err();
        assert_eq!(e.to_string(), "no DHCP lease on lku0 before the deadline");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_bring_up_static_ipv6_waits_for_duplicate_address_detection() {
        let t = "root_bring_up_static_ipv6_waits_for_duplicate_address_detection";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        let peers = PeerNs::new();
        ip("link add lk60 type veth peer name lk61");
        peers.take("lk61");
        peers.ip("addr add fd00:66::1/64 dev lk61 nodad");
        peers.ip("link set lk61 up");
        let step = |addr: &str| {
            one_step(
                Iface::Name("lk60".into()),
                Method::Static {
                    address: addr.parse().unwrap(),
                    prefix: 64,
                    gateway: Some("fd00:66::1".parse().unwrap()),
                },
            )
        };
        let opts = options_in(&dir);
        let log = Log::memory(Instant::now(), false);
        let soon = || within(20);
        let out = bring_up(
            &step("fd00:66::15"),
            &opts,
            soon(),
            &mut XorShift::new(1),
            &log,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out, Outcome::Configured(_)), "{out:?}");
        let mut nl = Netlink::open().unwrap();
        let a = nl
            .addresses()
            .unwrap()
            .into_iter()
            .find(|a| a.addr == "fd00:66::15".parse::<IpAddr>().unwrap())
            .expect("the address");
        assert_eq!(a.flags & IFA_F_TENTATIVE, 0, "returned before DAD ended");
        // The address answers from the peer's side: it is really usable.
        let st = std::process::Command::new("nsenter")
            .args(["-t", &peers.pid().to_string(), "-n"])
            .args(["busybox", "ping", "-6", "-c1", "-W5", "fd00:66::15"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("busybox ping");
        assert!(st.success(), "fd00:66::15 does not answer ping");
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv6/conf/lk60/accept_ra").unwrap(),
            "0\n"
        );

        // The peer already holds the address: a clear error, not a hang.
        latchkey_sys::mount::enter_new_network_namespace().unwrap();
        let peers = PeerNs::new();
        ip("link add lk60 type veth peer name lk61");
        peers.take("lk61");
        peers.ip("addr add fd00:66::15/64 dev lk61 nodad");
        peers.ip("link set lk61 up");
        let e = bring_up(
            &step("fd00:66::15"),
            &opts,
            soon(),
            &mut XorShift::new(1),
            &log,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "lk60: fd00:66::15 is already in use on the link (duplicate address detection)"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// DHCP on a real NIC named by `LATCHKEY_NET_TEST_IFACE` (agent/tests/vm-net.sh
    /// runs it in a QEMU guest against slirp's DHCP server).
    #[test]
    fn root_bring_up_real_nic() {
        let t = "root_bring_up_real_nic";
        let Ok(iface) = std::env::var("LATCHKEY_NET_TEST_IFACE") else {
            println!(
                "{t}: skipped: set LATCHKEY_NET_TEST_IFACE to a NIC that may be configured (tests/vm-net.sh does)"
            );
            return;
        };
        let dir = scratch(t);
        let plan = one_step(Iface::Name(iface.clone()), Method::Dhcp);
        let opts = options_in(&dir);
        let start = Instant::now();
        let log = Log::memory(start, true);
        let deadline = Deadline::after(start, Duration::from_secs(30));
        let out = bring_up(&plan, &opts, deadline, &mut XorShift::new(3), &log);
        for (_, l) in log.lines() {
            println!("{l}");
        }
        let Outcome::Configured(c) = out.unwrap_or_else(|e| panic!("{e}")) else {
            panic!("not configured")
        };
        println!(
            "{t}: {iface} configured {:?} in {:?}",
            c[0],
            start.elapsed()
        );
        assert!(c[0].address.is_some());
    }
}
