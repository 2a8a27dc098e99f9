//! Root-only tests. Network tests run in a fresh network namespace entered
//! by the test thread, so the host's interfaces are never touched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use latchkey_sys::dm::{Control, Nodes, Target};
use latchkey_sys::netlink::Netlink;
use latchkey_sys::packet::PacketSocket;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Enters a new network namespace on this thread, or says why not.
fn new_netns(test: &str) -> bool {
    if !is_root() {
        println!("{test}: skipped: needs root");
        return false;
    }
    latchkey_sys::mount::enter_new_network_namespace().expect("unshare(CLONE_NEWNET) as root");
    true
}

fn ip(args: &str) {
    let st = Command::new("ip")
        .args(args.split(' '))
        .status()
        .expect("running ip(8)");
    assert!(st.success(), "ip {args}");
}

fn have_ip(test: &str) -> bool {
    if Command::new("ip").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: ip(8) is missing (install iproute2)"
    );
    println!("{test}: skipped: ip(8) not installed");
    false
}

#[test]
fn root_netlink_links_addresses_routes() {
    let t = "root_netlink_links_addresses_routes";
    if !have_ip(t) || !new_netns(t) {
        return;
    }
    let mut nl = Netlink::open().unwrap();
    let links = nl.links().unwrap();
    assert_eq!(links.len(), 1, "a fresh namespace has only lo: {links:?}");
    let lo = &links[0];
    assert!(lo.is_loopback() && !lo.is_up());
    nl.set_link_up(lo.index).unwrap();
    assert!(nl.links().unwrap()[0].is_up());

    ip("link add lkv0 type veth peer name lkv1");
    let links = nl.links().unwrap();
    let v0 = links
        .iter()
        .find(|l| l.name == "lkv0")
        .expect("lkv0 listed");
    let v1 = links
        .iter()
        .find(|l| l.name == "lkv1")
        .expect("lkv1 listed");
    assert!(v0.mac.is_some() && !v0.carrier);
    nl.set_link_up(v0.index).unwrap();
    nl.set_link_up(v1.index).unwrap();
    // veth reports carrier once both ends are up; the kernel may take a moment.
    let mut carrier = false;
    for _ in 0..50 {
        if nl
            .links()
            .unwrap()
            .iter()
            .any(|l| l.name == "lkv0" && l.carrier)
        {
            carrier = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(carrier, "lkv0 never got carrier");

    nl.add_address(v0.index, Ipv4Addr::new(10, 77, 0, 2).into(), 24)
        .unwrap();
    let err = nl
        .add_address(v0.index, Ipv4Addr::new(10, 77, 0, 2).into(), 24)
        .unwrap_err();
    assert_eq!(err.errno(), Some(rustix::io::Errno::EXIST), "{err}");
    nl.add_default_route(v0.index, Ipv4Addr::new(10, 77, 0, 1).into())
        .unwrap();

    let addrs = nl.addresses().unwrap();
    assert!(
        addrs.iter().any(|a| a.index == v0.index
            && a.addr == IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2))
            && a.prefix == 24),
        "{addrs:?}"
    );
    let routes = nl.routes().unwrap();
    let def = routes
        .iter()
        .find(|r| r.is_default() && r.dst.is_none_or(|d| d.is_ipv4()))
        .expect("default route");
    assert_eq!(def.gateway, Some(IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1))));
    assert_eq!(def.oif, Some(v0.index));

    let a6: Ipv6Addr = "fd00:77::2".parse().unwrap();
    let g6: Ipv6Addr = "fd00:77::1".parse().unwrap();
    nl.add_address(v0.index, a6.into(), 64).unwrap();
    nl.add_default_route(v0.index, g6.into()).unwrap();
    let got = nl.addresses().unwrap();
    let got = got
        .iter()
        .find(|a| a.addr == IpAddr::V6(a6))
        .expect("IPv6 address");
    assert_eq!((got.index, got.prefix, got.scope), (v0.index, 64, 0));
    let routes = nl.routes().unwrap();
    let def6 = routes
        .iter()
        .find(|r| r.is_default() && r.gateway.is_some_and(|g| g.is_ipv6()))
        .expect("IPv6 default route");
    assert_eq!(
        (def6.gateway, def6.oif),
        (Some(IpAddr::V6(g6)), Some(v0.index))
    );

    let err = nl.set_link_up(99999).unwrap_err();
    assert!(err.to_string().contains("#99999"), "{err}");
}

#[test]
fn root_packet_socket_roundtrip() {
    let t = "root_packet_socket_roundtrip";
    if !have_ip(t) || !new_netns(t) {
        return;
    }
    ip("link add lkp0 type veth peer name lkp1");
    ip("link set lkp0 up");
    ip("link set lkp1 up");
    let mut nl = Netlink::open().unwrap();
    let links = nl.links().unwrap();
    let i0 = links.iter().find(|l| l.name == "lkp0").unwrap().index;
    let i1 = links.iter().find(|l| l.name == "lkp1").unwrap().index;
    let s0 = PacketSocket::open(i0).unwrap();
    let s1 = PacketSocket::open(i1).unwrap();
    // A broadcast Ethernet frame with EtherType IPv4 and a recognisable body.
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 9, 0x08, 0x00]);
    frame.extend_from_slice(b"latchkey packet test");
    frame.resize(60, 0);
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        s0.send(&frame).unwrap();
        // The sender must not see its own frame.
        if let Some(r) = s1.recv(&mut buf, Duration::from_millis(100)).unwrap() {
            if buf[..r.len] == frame[..] {
                assert!(!r.checksum_pending);
                assert_eq!(s0.recv(&mut buf, Duration::from_millis(50)).unwrap(), None);
                return;
            }
        }
    }
    panic!("frame never arrived on lkp1");
}

/// The device-mapper control, or a skip (not root; no device-mapper here).
fn device_mapper(test: &str) -> Option<Control> {
    if !is_root() {
        println!("{test}: skipped: needs root");
        return None;
    }
    match Control::open() {
        Ok(c) => Some(c),
        Err(e) if e.is_no_device_mapper() => {
            println!("{test}: skipped: no device-mapper (tested in vm-tests) ({e})");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// A table's one target: `len` sectors on which every I/O fails (`error`).
fn error_target(len: u64) -> Target<'static> {
    Target {
        start: 0,
        len,
        kind: "error",
        params: "",
    }
}

#[test]
fn root_device_mapper_lifecycle() {
    let Some(ctl) = device_mapper("root_device_mapper_lifecycle") else {
        return;
    };
    let v = ctl.version().unwrap();
    assert_eq!(v[0], 4);
    let name = format!("latchkey-test-{}", std::process::id());
    assert_eq!(ctl.status(&name).unwrap(), None);
    let dev = ctl.create(&name, &format!("LATCHKEY-TEST-{name}")).unwrap();
    let result = (|| {
        ctl.load_table(&name, &[error_target(2048)], true)?;
        let st = ctl.status(&name)?.expect("created device");
        assert!(st.inactive_loaded && !st.active);
        assert_eq!(ctl.resume(&name, Nodes::Caller)?, dev);
        let st = ctl.status(&name)?.expect("created device");
        assert!(st.active && st.read_only && st.target_count == 1);
        assert!(ctl.list()?.iter().any(|(n, d)| *n == name && *d == dev));
        let dir = std::env::temp_dir().join(format!("latchkey-dm-{}", std::process::id()));
        let node = latchkey_sys::dm::make_node_in(&dir, &name, dev)?;
        let meta = std::fs::metadata(&node).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(meta.file_type().is_block_device());
        assert_eq!(rustix::fs::major(meta.rdev()), dev.major);
        std::fs::remove_dir_all(&dir).unwrap();
        Ok::<(), latchkey_sys::Error>(())
    })();
    ctl.remove(&name).unwrap();
    result.unwrap();
    assert_eq!(ctl.status(&name).unwrap(), None);
}

/// The resume's uevent carries the udev flags in `DM_COOKIE`, which is what
/// udev's dm rules decode (`dmsetup udevflags`) to treat the device as
/// activated: `DM_UDEV_PRIMARY_SOURCE_FLAG | DM_UDEV_DISABLE_LIBRARY_FALLBACK`
/// (0x60 << 16) as cryptsetup sends them when udev runs.
#[test]
fn root_device_mapper_uevent_cookie() {
    use rustix::net::netlink::{self, SocketAddrNetlink};
    use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
    let t = "root_device_mapper_uevent_cookie";
    let Some(ctl) = device_mapper(t) else {
        return;
    };
    let sock = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::KOBJECT_UEVENT),
    )
    .unwrap();
    // Multicast group 1: the kernel's own uevents (udev listens there too).
    rustix::net::bind(&sock, &SocketAddrNetlink::new(0, 1)).unwrap();
    rustix::net::sockopt::set_socket_timeout(
        &sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(Duration::from_millis(200)),
    )
    .unwrap();
    let name = format!("latchkey-cookie-{}", std::process::id());
    let dev = ctl.create(&name, "").unwrap();
    let result = ctl
        .load_table(&name, &[error_target(8)], true)
        .and_then(|()| ctl.resume(&name, Nodes::Udev));
    let mut cookie = None;
    let mut buf = vec![0u8; 8192];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cookie.is_none() && std::time::Instant::now() < deadline {
        let Ok((n, _)) = rustix::net::recv(&sock, &mut buf, RecvFlags::empty()) else {
            continue;
        };
        let fields: Vec<&[u8]> = buf[..n].split(|&b| b == 0).collect();
        let has = |f: &str| fields.contains(&f.as_bytes());
        // The kernel's own uevent names the device by number (DM_NAME comes from udev).
        if has("ACTION=change")
            && has(&format!("MAJOR={}", dev.major))
            && has(&format!("MINOR={}", dev.minor))
        {
            cookie = fields
                .iter()
                .find_map(|f| f.strip_prefix(b"DM_COOKIE="))
                .map(|v| String::from_utf8_lossy(v).into_owned());
        }
    }
    ctl.remove(&name).unwrap();
    result.unwrap();
    assert_eq!(
        cookie.as_deref(),
        Some("6291456"),
        "DM_COOKIE of the change event"
    );
    println!("{t}: change event of {name} carries DM_COOKIE=6291456 (0x600000)");
}

/// A dm-crypt mapping over a disposable disk named by
/// `LATCHKEY_DM_SCRATCH_DEVICE` (crates/sys/tests/vm.sh gives one inside a
/// VM): what is written through the mapping reads back, and the disk
/// underneath holds something else (ciphertext).
#[test]
fn root_device_mapper_crypt_roundtrip() {
    let t = "root_device_mapper_crypt_roundtrip";
    let Some(disk) = std::env::var_os("LATCHKEY_DM_SCRATCH_DEVICE") else {
        println!(
            "{t}: skipped: set LATCHKEY_DM_SCRATCH_DEVICE to a disposable block device (tests/vm.sh does)"
        );
        return;
    };
    let disk = std::path::PathBuf::from(disk);
    let ctl = Control::open().expect("device-mapper in the VM");
    use std::os::unix::fs::{FileExt, MetadataExt};
    let rdev = std::fs::metadata(&disk).unwrap().rdev();
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let key: String = (0u8..64).map(|b| format!("{b:02x}")).collect();
    let params = format!("aes-xts-plain64 {key} 0 {major}:{minor} 2048 1 allow_discards");
    let name = "latchkey-crypt-test";
    let dev = ctl.create(name, "LATCHKEY-TEST-crypt").unwrap();
    let result = (|| {
        ctl.load_table(
            name,
            &[Target {
                start: 0,
                len: 2048,
                kind: "crypt",
                params: &params,
            }],
            false,
        )?;
        ctl.resume(name, Nodes::Caller)?;
        let node = latchkey_sys::dm::make_node(name, dev)?;
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&node)
                .unwrap();
            f.write_all_at(&pattern, 0).unwrap();
            f.sync_all().unwrap();
            let mut back = vec![0u8; 4096];
            f.read_exact_at(&mut back, 0).unwrap();
            assert_eq!(back, pattern, "plaintext reads back through the mapping");
        }
        let raw = std::fs::File::open(&disk).unwrap();
        let mut under = vec![0u8; 4096];
        raw.read_exact_at(&mut under, 2048 * 512).unwrap();
        assert_ne!(under, pattern, "the disk holds ciphertext");
        std::fs::remove_file(&node).unwrap();
        Ok::<(), latchkey_sys::Error>(())
    })();
    ctl.remove(name).unwrap();
    result.unwrap();
    println!("{t}: crypt mapping on {major}:{minor} verified");
}

/// 40 records in a burst all reach the kernel log, despite the kernel's
/// per-open rate limit of 10. Writes to the kernel log, so it runs only
/// where `LATCHKEY_IN_VM` is set (tests/vm.sh).
#[test]
fn root_kmsg_records_survive_the_rate_limit() {
    let t = "root_kmsg_records_survive_the_rate_limit";
    if std::env::var_os("LATCHKEY_IN_VM").is_none() {
        println!("{t}: skipped: writes to the kernel log; runs in tests/vm.sh");
        return;
    }
    use latchkey_sys::kmsg::{Kmsg, Level};
    let mut k = Kmsg::open().unwrap();
    for i in 0..40 {
        k.write(Level::Info, &format!("latchkey-test: record {i}"))
            .unwrap();
    }
    // Each read of /dev/kmsg returns one record.
    let f = rustix::fs::open(
        "/dev/kmsg",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut seen = 0;
    let mut buf = vec![0u8; 8192];
    loop {
        match rustix::io::read(&f, &mut buf) {
            Ok(n) => {
                if String::from_utf8_lossy(&buf[..n]).contains("latchkey-test: record ") {
                    seen += 1;
                }
            }
            Err(rustix::io::Errno::AGAIN) => break,
            Err(rustix::io::Errno::PIPE) => continue,
            Err(e) => panic!("reading /dev/kmsg: {e}"),
        }
    }
    assert_eq!(seen, 40, "records in the kernel log");
}

#[test]
fn root_netlink_vlan_and_bond() {
    let t = "root_netlink_vlan_and_bond";
    if !have_ip(t) || !new_netns(t) {
        return;
    }
    ip("link add lkq0 type veth peer name lkq1");
    ip("link add lkr0 type veth peer name lkr1");
    let mut nl = Netlink::open().unwrap();
    let by_name = |nl: &mut Netlink, n: &str| {
        nl.links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == n)
            .unwrap_or_else(|| panic!("no {n}"))
    };
    let q0 = by_name(&mut nl, "lkq0");
    match nl.add_vlan("lkq0.5", q0.index, 5) {
        Err(e) if e.errno() == Some(rustix::io::Errno::OPNOTSUPP) => {
            // A kernel capability, not a tool: the vlan and bond VM
            // scenarios cover it with a kernel that has it.
            println!("{t}: skipped: this kernel has no 802.1Q support ({e})");
            return;
        }
        r => r.unwrap(),
    }
    let e = nl.add_vlan("lkq0.5", q0.index, 5).unwrap_err();
    assert_eq!(e.errno(), Some(rustix::io::Errno::EXIST), "{e}");
    let vlans = std::fs::read_to_string("/proc/net/vlan/config").unwrap();
    assert!(
        vlans
            .lines()
            .any(|l| l.split('|').map(str::trim).collect::<Vec<_>>() == ["lkq0.5", "5", "lkq0"]),
        "{vlans}"
    );

    let settings = latchkey_sys::netlink::BondSettings {
        mode: 1,
        miimon: Some(100),
        mtu: Some(1400),
        ..Default::default()
    };
    nl.add_bond("lkbond0", &settings).unwrap();
    let bond = by_name(&mut nl, "lkbond0");
    for s in ["lkq1", "lkr0"] {
        let l = by_name(&mut nl, s);
        nl.set_link_down(l.index).unwrap();
        nl.set_master(l.index, bond.index).unwrap();
        assert_eq!(by_name(&mut nl, s).master, Some(bond.index));
    }
    let r0 = by_name(&mut nl, "lkr0");
    nl.set_bond_primary(bond.index, r0.index).unwrap();
    let sys = |f: &str| std::fs::read_to_string(format!("/sys/class/net/lkbond0/{f}")).unwrap();
    assert_eq!(sys("mtu"), "1400\n");
    assert_eq!(sys("bonding/mode"), "active-backup 1\n");
    assert_eq!(sys("bonding/miimon"), "100\n");
    assert_eq!(sys("bonding/primary"), "lkr0\n");
    assert_eq!(by_name(&mut nl, "lkq0").master, None);
    let e = nl.set_master(99999, bond.index).unwrap_err();
    assert!(e.to_string().contains("#99999"), "{e}");
}
