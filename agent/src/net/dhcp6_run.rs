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
/// Links of `iface` that gain carrier later join in.
pub(super) fn configure(
    nl: &mut Netlink,
    iface: &Iface,
    links: Vec<Link>,
    opts: &Options,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<Configured, NetError> {
    let (link, lease) = lease(nl, iface, links, deadline, jitter, log)?;
    let address = lease.address;
    // Usable while duplicate address detection runs, where the kernel
    // offers it (the link was set up so); a duplicate still shows below.
    let optimistic = latchkey_sys::netlink::set_optimistic_dad(&link.name)?;
    let flags = if optimistic { IFA_F_OPTIMISTIC } else { 0 };
    added(nl.add_address_flags(link.index, address.into(), 128, flags))?;
    let until = deadline.min(Deadline::after(Instant::now(), opts.ipv6_timeout));
    let one = std::slice::from_ref(&link);
    wait_for_ipv6(nl, one, Some(address), optimistic, until)?;
    log.debug(&format!(
        "{}: {address} usable{}; waiting for a route",
        link.name,
        if optimistic { " (optimistic DAD)" } else { "" }
    ));
    if !wait_for_route(nl, &link, address, until)? {
        log.warn(&format!(
            "{}: no router advertisement: only {address}/128 is reachable through it",
            link.name
        ));
    }
    // Detection may have ended meanwhile.
    wait_for_ipv6(nl, one, Some(address), optimistic, until)?;
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
                && dad(a.flags, true) == Dad::Usable =>
        {
            Some(v6)
        }
        _ => None,
    }))
}

/// All routers on the link (`ff02::2`).
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// A Router Solicitation (RFC 4861 4.1; no source link-layer address
/// option, as RFC 4429 asks of an optimistic sender), so that the router
/// advertisement with the on-link prefix comes while DHCPv6 runs rather
/// than after the kernel's own solicitation, which waits for duplicate
/// address detection of the link-local address to end.
fn solicit_router(link: &Link) -> std::io::Result<()> {
    use rustix::net::{AddressFamily, SendFlags, SocketType, ipproto, sockopt};
    let fd = rustix::net::socket(AddressFamily::INET6, SocketType::RAW, Some(ipproto::ICMPV6))?;
    // Neighbour discovery takes only messages that crossed no router.
    sockopt::set_ipv6_multicast_hops(&fd, 255)?;
    // Type 133, code 0, checksum (the kernel fills it in), reserved.
    let rs = [133, 0, 0, 0, 0, 0, 0, 0];
    let to = SocketAddrV6::new(ALL_ROUTERS, 0, 0, link.index);
    rustix::net::sendto(&fd, &rs, SendFlags::empty(), &to)?;
    Ok(())
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

/// Runs one client per link until one is bound; a link of `iface` that
/// gains carrier later joins in.
fn lease(
    nl: &mut Netlink,
    iface: &Iface,
    mut links: Vec<Link>,
    deadline: Deadline,
    jitter: &mut dyn Jitter,
    log: &Log,
) -> Result<(Link, dhcp6::Lease), NetError> {
    for l in &links {
        latchkey_sys::netlink::set_ipv6_autoconf(&l.name, true)?;
    }
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut refused = None;
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut rescan = Rescan::new(iface);
    while !deadline.expired(Instant::now()) {
        for l in rescan.joining(nl, |i| links.iter().any(|l| l.index == i))? {
            log.debug(&format!("{}: carrier; joining DHCPv6", l.name));
            latchkey_sys::netlink::set_ipv6_autoconf(&l.name, true)?;
            links.push(l);
        }
        for l in &links {
            if !attempts.iter().any(|a| a.link.index == l.index)
                && let Some(local) = link_local(nl, l)?
            {
                if let Err(e) = solicit_router(l) {
                    log.debug(&format!("{}: router solicitation: {e}", l.name));
                }
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

#[cfg(test)]
mod tests {
    use super::super::testnet::*;
    use super::*;
    use crate::net::plan::Step;
    use latchkey_client::time::XorShift;
    use std::process::{Command, Stdio};

    /// dnsmasq in `peers` as stateful DHCPv6 server and router on
    /// `lk6*` links, handing out fd6c:88::100 only.
    fn dnsmasq6(dir: &std::path::Path, peers: &PeerNs) -> Option<Server> {
        if !latchkey_testkit::have(&["dnsmasq"]) {
            return None;
        }
        let child = Command::new("nsenter")
            .args(["-t", &peers.pid().to_string(), "-n", "dnsmasq"])
            .args(["--keep-in-foreground", "--conf-file=/dev/null", "--port=0"])
            .args([
                "--user=root",
                "--bind-dynamic",
                "--interface=lk6*",
                "--enable-ra",
            ])
            .arg("--dhcp-range=fd6c:88::100,fd6c:88::100,64,1h")
            .arg("--dhcp-option=option6:dns-server,[fd6c:88::53]")
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq");
        Some(Server(child))
    }

    fn link_to(peers: &PeerNs, ours: &str, theirs: &str) {
        ip(&format!("link add {ours} type veth peer name {theirs}"));
        peers.take(theirs);
        peers.ip(&format!("addr add fd6c:88::1/64 dev {theirs} nodad"));
        peers.ip(&format!("link set {theirs} up"));
    }

    fn plan_for(ifname: &str) -> Plan {
        plan_on(Iface::Name(ifname.into()))
    }

    fn plan_on(iface: Iface) -> Plan {
        Plan {
            steps: vec![Step {
                iface,
                method: Method::Dhcp6,
            }],
            ..Plan::default()
        }
    }

    #[test]
    fn root_dhcp6_lease_from_dnsmasq_then_no_address_left() {
        let t = "root_dhcp6_lease_from_dnsmasq_then_no_address_left";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        let peers = PeerNs::new();
        link_to(&peers, "lk6a", "lk6b");
        let Some(_server) = dnsmasq6(&dir, &peers) else {
            return;
        };
        let opts = Options {
            resolv_conf: dir.join("resolv.conf"),
            ..Options::default()
        };
        let log = Log::memory(Instant::now(), true);
        let soon = || Deadline::after(Instant::now(), Duration::from_secs(20));
        let out = bring_up(
            &plan_for("lk6a"),
            &opts,
            soon(),
            &mut XorShift::new(3),
            &log,
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", log.lines()));
        let Outcome::Configured(c) = out else {
            panic!("{out:?}")
        };
        let want: IpAddr = "fd6c:88::100".parse().unwrap();
        assert_eq!(c[0].address, Some((want, 128)));
        assert_eq!(c[0].dns, vec!["fd6c:88::53".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            std::fs::read_to_string(dir.join("resolv.conf")).unwrap(),
            "# written by latchkey\nnameserver fd6c:88::53\n"
        );
        let mut nl = Netlink::open().unwrap();
        let a = nl
            .addresses()
            .unwrap()
            .into_iter()
            .find(|a| a.addr == want)
            .expect("the leased address");
        // Usable: duplicate address detection cleared it or, where the
        // kernel offers it, it is optimistic.
        let optimistic =
            std::path::Path::new("/proc/sys/net/ipv6/conf/lk6a/optimistic_dad").exists();
        assert_eq!(a.prefix, 128);
        assert_eq!(dad(a.flags, optimistic), Dad::Usable, "{:#x}", a.flags);
        // The router advertisement gave the on-link prefix: the server's
        // side answers.
        let st = Command::new("busybox")
            .args(["ping", "-6", "-c1", "-W5", "fd6c:88::1"])
            .stdout(Stdio::null())
            .status()
            .expect("busybox ping");
        assert!(st.success(), "fd6c:88::1 does not answer ping");

        // Another machine (another MAC) on a fresh link: the one address
        // is taken, and the error names the link and the server's status.
        latchkey_sys::mount::enter_new_network_namespace().unwrap();
        link_to(&peers, "lk6c", "lk6d");
        let short = Deadline::after(Instant::now(), Duration::from_secs(5));
        let e = bring_up(&plan_for("lk6c"), &opts, short, &mut XorShift::new(4), &log).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("lk6c: the DHCPv6 server gave no address: NoAddrsAvail (2)"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_dhcp6_joins_a_link_that_gets_carrier_later() {
        let t = "root_dhcp6_joins_a_link_that_gets_carrier_later";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        // lk7a has carrier at once but no server behind it; lk6g gets
        // carrier (its far end, with dnsmasq, comes up) a second later.
        let peers = PeerNs::new();
        ip("link add lk7a type veth peer name lk7b");
        peers.take("lk7b");
        peers.ip("link set lk7b up");
        ip("link add lk6g type veth peer name lk6h");
        peers.take("lk6h");
        peers.ip("addr add fd6c:88::1/64 dev lk6h nodad");
        let Some(_server) = dnsmasq6(&dir, &peers) else {
            return;
        };
        let later = peers.ip_after(Duration::from_secs(1), "link set lk6h up");
        let plan = plan_on(Iface::AnyWithCarrier);
        let opts = Options {
            resolv_conf: dir.join("resolv.conf"),
            ..Options::default()
        };
        let log = Log::memory(Instant::now(), true);
        let soon = Deadline::after(Instant::now(), Duration::from_secs(20));
        let out = bring_up(&plan, &opts, soon, &mut XorShift::new(6), &log);
        later.join().unwrap();
        let Outcome::Configured(c) = out.unwrap_or_else(|e| panic!("{e}: {:?}", log.lines()))
        else {
            panic!("not configured")
        };
        assert_eq!(c[0].ifname, "lk6g");
        assert_eq!(c[0].address, Some(("fd6c:88::100".parse().unwrap(), 128)));
        assert!(
            log.lines()
                .iter()
                .any(|(_, l)| l.contains("lk6g: carrier; joining DHCPv6")),
            "{:?}",
            log.lines()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_dhcp6_duplicate_lease_is_an_error() {
        let t = "root_dhcp6_duplicate_lease_is_an_error";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        // A third machine on the link already holds the one address
        // dnsmasq hands out: the peers bridge lk6j's far end to it.
        let (peers, holder) = (PeerNs::new(), PeerNs::new());
        ip("link add lk6j type veth peer name lk6k");
        peers.take("lk6k");
        ip("link add lk6m type veth peer name lk6n");
        peers.take("lk6m");
        holder.take("lk6n");
        peers.ip("link add lk6br type bridge");
        for port in ["lk6k", "lk6m"] {
            peers.ip(&format!("link set {port} master lk6br"));
            peers.ip(&format!("link set {port} up"));
        }
        peers.ip("addr add fd6c:88::1/64 dev lk6br nodad");
        peers.ip("link set lk6br up");
        holder.ip("addr add fd6c:88::100/64 dev lk6n nodad");
        holder.ip("link set lk6n up");
        let Some(_server) = dnsmasq6(&dir, &peers) else {
            return;
        };
        let opts = Options {
            resolv_conf: dir.join("resolv.conf"),
            ..Options::default()
        };
        let log = Log::memory(Instant::now(), true);
        let soon = Deadline::after(Instant::now(), Duration::from_secs(20));
        let e = bring_up(&plan_for("lk6j"), &opts, soon, &mut XorShift::new(7), &log)
            .expect_err("a duplicate address is no network");
        assert!(
            matches!(e, NetError::DuplicateAddress { ref ifname, .. } if ifname == "lk6j"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The four-message exchange with dnsmasq (no Rapid Commit asked),
    /// driving the client directly; `--nocapture` prints the server's
    /// messages as hex (tests/data/dhcp6/dnsmasq.txt holds a recording).
    #[test]
    fn root_dhcp6_four_messages_with_dnsmasq() {
        let t = "root_dhcp6_four_messages_with_dnsmasq";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        let peers = PeerNs::new();
        link_to(&peers, "lk6e", "lk6f");
        let Some(_server) = dnsmasq6(&dir, &peers) else {
            return;
        };
        // A fixed MAC: the recorded messages carry its DUID.
        ip("link set lk6e address 52:54:00:6c:88:01");
        let mut nl = Netlink::open().unwrap();
        let link = nl
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "lk6e")
            .unwrap();
        nl.set_link_up(link.index).unwrap();
        let until = Deadline::after(Instant::now(), Duration::from_secs(15));
        let local = loop {
            if let Some(a) = link_local(&mut nl, &link).unwrap() {
                break a;
            }
            assert!(!until.expired(Instant::now()), "no link-local address");
            std::thread::sleep(Duration::from_millis(50));
        };
        let Attempt { sock, client, .. } = start(&link, local).unwrap().unwrap();
        let xid = client.xid();
        let mut client = client.without_rapid_commit();
        let mut events = Vec::new();
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        let lease = loop {
            assert!(!until.expired(Instant::now()), "no lease: {events:?}");
            let now = Instant::now();
            if let Some(m) = client.poll(now, &mut XorShift::new(1)) {
                let to = SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, link.index);
                sock.send_to(&m, to).unwrap();
            }
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
            println!("xid {xid:06x} received {hex}");
            match client.handle(&buf[..n], Instant::now()) {
                Event::Bound(l) => break l,
                e => events.push(e),
            }
        };
        assert_eq!(
            events,
            vec![Event::Advertised("fd6c:88::100".parse().unwrap())]
        );
        assert_eq!(lease.address, "fd6c:88::100".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lease.dns, vec!["fd6c:88::53".parse::<Ipv6Addr>().unwrap()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
