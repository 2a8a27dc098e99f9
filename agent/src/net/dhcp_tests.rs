//! Tests of the DHCP client: replay of frames recorded from real servers
//! (busybox udhcpd and dnsmasq, see tests/data/dhcp/README.md), checks of
//! what we send, and a root-only live exchange that can re-record them.

use super::*;
use crate::net::testnet;
use latchkey_client::time::NoJitter;
use latchkey_sys::packet::PacketSocket;

/// One recorded frame: label, whether the kernel flagged its checksum as
/// pending, and the bytes.
struct Recorded {
    label: String,
    pending: bool,
    frame: Vec<u8>,
}

fn load(text: &str) -> Vec<Recorded> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let frame = (0..f[2].len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&f[2][i..i + 2], 16).unwrap())
                .collect();
            Recorded {
                label: f[0].to_owned(),
                pending: f[1] == "1",
                frame,
            }
        })
        .collect()
}

fn get<'a>(r: &'a [Recorded], label: &str) -> &'a Recorded {
    r.iter()
        .find(|x| x.label == label)
        .unwrap_or_else(|| panic!("no {label} frame recorded"))
}

use latchkey_testkit::hex;

/// The BOOTP payload of a frame we sent (to port 67), checked like a server would.
fn sent_payload(frame: &[u8]) -> Vec<u8> {
    assert_eq!(&frame[0..6], &[0xff; 6], "broadcast destination");
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let ip = &frame[14..];
    assert_eq!(checksum(&ip[..20], 0), 0, "IPv4 header checksum");
    assert_eq!(&ip[12..20], &[0, 0, 0, 0, 255, 255, 255, 255]);
    let udp = &ip[20..];
    let len = u16::from_be_bytes([udp[4], udp[5]]);
    assert_eq!(usize::from(len), udp.len());
    assert_eq!(
        checksum(udp, pseudo_header_sum([0; 4], [255; 4], len)),
        0,
        "UDP checksum"
    );
    assert_eq!(&udp[0..4], &[0, 68, 0, 67]);
    udp[8..].to_vec()
}

fn options_of(payload: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&payload[236..240], &MAGIC);
    let mut o = Vec::new();
    parse_options(&payload[240..], &mut o).unwrap();
    o
}

fn replay(text: &str, server: Ipv4Addr, pool_net: u8) {
    let rec = load(text);
    let offer = get(&rec, "offer");
    let discover = get(&rec, "discover");
    let mac: [u8; 6] = discover.frame[6..12].try_into().unwrap();
    let xid = u32::from_be_bytes(sent_payload(&discover.frame)[4..8].try_into().unwrap());
    let t0 = Instant::now();
    let mut c = Client::new(
        mac,
        xid,
        Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(8)),
        t0,
    );
    // What we send now is what was sent then, byte for byte (secs is 0 in both).
    assert_eq!(
        hex(&c.poll(t0, &mut NoJitter).unwrap()),
        hex(&discover.frame)
    );

    // Flip one byte of the yiaddr: the UDP checksum must catch it, unless
    // the kernel said the checksum was never filled in.
    let mut bad = offer.frame.clone();
    bad[14 + 20 + 8 + 16] ^= 1;
    if !offer.pending {
        assert_eq!(c.handle(&bad, t0), Event::Ignored);
    }
    let Event::Offered(l) = c.handle_frame(&offer.frame, offer.pending, t0) else {
        panic!("offer not taken")
    };
    assert_eq!(l.server, server);
    assert_eq!(
        (&l.address.octets()[..3], l.prefix),
        (&[10, 88, pool_net][..], 24)
    );
    assert_eq!(l.router, Some(Ipv4Addr::new(10, 88, pool_net, 1)));
    assert_eq!(l.dns, vec![Ipv4Addr::new(10, 88, pool_net, 53)]);
    assert_eq!(l.lease_time, Some(Duration::from_secs(3600)));

    // The servers probe the address before offering it, so the recorded
    // REQUEST went out a few seconds in: replay at the same `secs`.
    let rec_req = &get(&rec, "request").frame;
    let secs = u16::from_be_bytes(sent_payload(rec_req)[8..10].try_into().unwrap());
    let t1 = t0 + Duration::from_secs(secs.into());
    let request = c.poll(t1, &mut NoJitter).unwrap();
    assert_eq!(hex(&request), hex(rec_req));
    let o = options_of(&sent_payload(&request));
    assert_eq!(o[0], (53, vec![3]));
    assert!(o.contains(&(50, l.address.octets().to_vec())));
    assert!(o.contains(&(54, server.octets().to_vec())));
    // A second OFFER while requesting changes nothing.
    assert_eq!(
        c.handle_frame(&offer.frame, offer.pending, t0),
        Event::Ignored
    );

    let ack = get(&rec, "ack");
    let Event::Bound(b) = c.handle_frame(&ack.frame, ack.pending, t0) else {
        panic!("ack not taken")
    };
    assert_eq!(b.address, l.address);
    assert_eq!(c.lease(), Some(&b));
    assert_eq!(c.poll(t0 + Duration::from_secs(100), &mut NoJitter), None);

    // NAK: recorded for a REQUEST of an address outside the pool.
    let nak_req = get(&rec, "nak-request");
    let p = sent_payload(&nak_req.frame);
    let nxid = u32::from_be_bytes(p[4..8].try_into().unwrap());
    let bogus = Lease {
        address: Ipv4Addr::new(10, 88, pool_net, 200),
        ..b.clone()
    };
    let mut c = Client::requesting(
        mac,
        nxid,
        bogus,
        Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(8)),
        t0,
    );
    let secs = u16::from_be_bytes(p[8..10].try_into().unwrap());
    let t1 = t0 + Duration::from_secs(secs.into());
    assert_eq!(
        hex(&c.poll(t1, &mut NoJitter).unwrap()),
        hex(&nak_req.frame)
    );
    let nak = get(&rec, "nak");
    assert_eq!(c.handle_frame(&nak.frame, nak.pending, t0), Event::Nak);
    assert_eq!(c.state(), &State::Selecting);
    assert_ne!(c.xid(), nxid, "a new transaction after NAK");
    let again = sent_payload(&c.poll(t0, &mut NoJitter).unwrap());
    assert_eq!(options_of(&again)[0], (53, vec![1]));
}

#[test]
fn replay_busybox_udhcpd() {
    replay(
        include_str!("../../tests/data/dhcp/udhcpd.txt"),
        Ipv4Addr::new(10, 88, 3, 1),
        3,
    );
}

#[test]
fn replay_dnsmasq() {
    replay(
        include_str!("../../tests/data/dhcp/dnsmasq.txt"),
        Ipv4Addr::new(10, 88, 4, 1),
        4,
    );
}

#[test]
fn retransmission_follows_backoff_and_falls_back_to_discover() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut c = Client::new(
        [2, 0, 0, 0, 0, 1],
        0x1234_5678,
        Backoff::new(s(1), 2, s(4)),
        t0,
    );
    assert!(c.poll(t0, &mut NoJitter).is_some());
    assert_eq!(c.poll(t0, &mut NoJitter), None, "nothing due yet");
    assert_eq!(c.next_wakeup(), t0 + s(1));
    assert!(c.poll(t0 + s(1), &mut NoJitter).is_some());
    assert_eq!(c.next_wakeup(), t0 + s(3));
    // `secs` counts from the start.
    let f = c.poll(t0 + s(3), &mut NoJitter).unwrap();
    assert_eq!(&sent_payload(&f)[8..10], &[0, 3]);
    assert_eq!(c.next_wakeup(), t0 + s(7), "capped at 4 s");

    let offer = Lease {
        address: Ipv4Addr::new(10, 0, 0, 9),
        prefix: 24,
        router: None,
        dns: vec![],
        server: Ipv4Addr::new(10, 0, 0, 1),
        lease_time: None,
        hostname: None,
        domain: None,
    };
    let mut c = Client::requesting(
        [2, 0, 0, 0, 0, 1],
        7,
        offer,
        Backoff::new(s(1), 1, s(1)),
        t0,
    );
    for i in 0..4 {
        let p = sent_payload(&c.poll(t0 + s(i), &mut NoJitter).unwrap());
        assert_eq!(options_of(&p)[0], (53, vec![3]));
    }
    let p = sent_payload(&c.poll(t0 + s(4), &mut NoJitter).unwrap());
    assert_eq!(
        options_of(&p)[0],
        (53, vec![1]),
        "after 4 unanswered REQUESTs: DISCOVER"
    );
    assert_eq!(c.state(), &State::Selecting);
}

#[test]
fn discover_carries_client_id_hostname_and_minimum_size() {
    let t0 = Instant::now();
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let mut c = Client::new(
        mac,
        0xdead_beef,
        Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(8)),
        t0,
    )
    .with_hostname("node1");
    let p = sent_payload(&c.poll(t0, &mut NoJitter).unwrap());
    assert!(p.len() >= MIN_BOOTP);
    assert_eq!(&p[0..4], &[1, 1, 6, 0]);
    assert_eq!(&p[4..8], &0xdead_beefu32.to_be_bytes());
    assert_eq!(&p[10..12], &[0x80, 0], "broadcast flag");
    assert_eq!(&p[28..34], &mac);
    let o = options_of(&p);
    assert_eq!(o[0], (53, vec![1]));
    assert!(o.contains(&(61, [&[1u8][..], &mac].concat())));
    assert!(o.contains(&(12, b"node1".to_vec())));
    assert!(o.contains(&(55, PARAMS.to_vec())));
}

#[test]
fn parser_rejects_garbage_and_handles_overload() {
    assert_eq!(
        udp_payload_to_client(&[0u8; 10], true),
        Err(Ignored::NotDhcp)
    );
    let f = udp_frame(
        [2; 6],
        [0xff; 6],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::BROADCAST,
        67,
        68,
        &[1, 2, 3],
    );
    assert_eq!(udp_payload_to_client(&f, true), Ok(&[1u8, 2, 3][..]));
    assert_eq!(parse_reply(&[1, 2, 3]), Err(Ignored::NotBootReply));
    let mut ip_bad = f.clone();
    ip_bad[14 + 8] ^= 1; // TTL
    assert_eq!(
        udp_payload_to_client(&ip_bad, true),
        Err(Ignored::BadIpChecksum)
    );
    let mut truncated = f.clone();
    truncated.truncate(f.len() - 1);
    assert_eq!(
        udp_payload_to_client(&truncated, true),
        Err(Ignored::Truncated)
    );

    // A reply whose message type sits in `file` (option 52 = 1).
    let mut p = vec![0u8; 236];
    p[0] = 2;
    p[108..111].copy_from_slice(&[53, 1, 2]);
    p[111] = 255;
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&[52, 1, 1, 255]);
    assert_eq!(parse_reply(&p).unwrap().kind, MessageType::Offer);
    // A truncated option.
    let mut q = p[..240].to_vec();
    q.extend_from_slice(&[53, 5, 1]);
    assert_eq!(parse_reply(&q), Err(Ignored::Truncated));
}

#[test]
fn lease_without_mask_is_classful_and_bad_masks_are_refused() {
    let mut m = Message {
        kind: MessageType::Ack,
        xid: 1,
        chaddr: [0; 6],
        yiaddr: Ipv4Addr::new(172, 16, 0, 5),
        options: vec![(54, vec![172, 16, 0, 1])],
    };
    assert_eq!(m.lease().unwrap().prefix, 16);
    m.options.push((1, vec![255, 0, 255, 0]));
    assert_eq!(m.lease(), None);
    m.options = vec![(1, vec![255, 255, 255, 0])];
    assert_eq!(m.lease(), None, "no server identifier");
}

type Frames = Vec<(String, bool, Vec<u8>)>;

/// Drives `c` over `sock` until it is bound or refused; returns the frames
/// with labels. Retransmissions are labelled too, so only the first of
/// each label is used in replay.
fn exchange(c: &mut Client, sock: &PacketSocket, request_label: &str) -> (Event, Frames) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut frames = Frames::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let label = if matches!(c.state(), State::Selecting) {
            "discover"
        } else {
            request_label
        };
        if let Some(f) = c.poll(Instant::now(), &mut NoJitter) {
            sock.send(&f).unwrap();
            frames.push((label.to_owned(), false, f));
        }
        let Some(r) = sock.recv(&mut buf, Duration::from_millis(100)).unwrap() else {
            continue;
        };
        let ev = c.handle_frame(&buf[..r.len], r.checksum_pending, Instant::now());
        let label = match &ev {
            Event::Offered(_) => "offer",
            Event::Bound(_) => "ack",
            Event::Nak => "nak",
            Event::Ignored => continue,
        };
        frames.push((label.to_owned(), r.checksum_pending, buf[..r.len].to_vec()));
        if !matches!(ev, Event::Offered(_)) {
            return (ev, frames);
        }
    }
    panic!("no DHCP answer within 15 s");
}

/// Runs a real exchange with a server on a veth pair in a private network
/// namespace; with `LATCHKEY_RECORD_DHCP=DIR` it writes the frames to
/// `DIR/<name>.txt` in the format of tests/data/dhcp.
fn live_exchange(
    name: &str,
    net: u8,
    start: impl FnOnce(&std::path::Path, &str, u8) -> Option<testnet::Server>,
) {
    let t = format!("root_dhcp_live_{name}");
    if !testnet::enter(&t) {
        return;
    }
    let dir = testnet::scratch(&t);
    testnet::veth("lkr0", "lkr1", &format!("10.88.{net}.1/24"));
    testnet::ip("link set lkr0 up");
    let Some(_server) = start(&dir, "lkr1", net) else {
        println!("{t}: skipped: {name} not installed");
        return;
    };
    let mut nl = latchkey_sys::netlink::Netlink::open().unwrap();
    let link = nl
        .links()
        .unwrap()
        .into_iter()
        .find(|l| l.name == "lkr0")
        .unwrap();
    let mac = link.mac.unwrap();
    let sock = PacketSocket::open(link.index).unwrap();
    let backoff = Backoff::new(Duration::from_millis(500), 2, Duration::from_secs(2));

    let mut c = Client::new(
        mac,
        0x4c4b_0000 | u32::from(net),
        backoff.clone(),
        Instant::now(),
    );
    let (ev, mut frames) = exchange(&mut c, &sock, "request");
    let Event::Bound(lease) = ev else {
        panic!("{name}: {ev:?}")
    };
    assert_eq!(lease.server, Ipv4Addr::new(10, 88, net, 1));
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 88, net, 1)));
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 88, net, 53)]);

    let bogus = Lease {
        address: Ipv4Addr::new(10, 88, net, 200),
        ..lease
    };
    let mut c = Client::requesting(
        mac,
        0x4c4b_1000 | u32::from(net),
        bogus,
        backoff,
        Instant::now(),
    );
    let (ev, nak_frames) = exchange(&mut c, &sock, "nak-request");
    assert_eq!(ev, Event::Nak, "{name} refuses an address outside its pool");
    frames.extend(nak_frames);

    if let Some(out) = std::env::var_os("LATCHKEY_RECORD_DHCP") {
        let mut text = format!(
            "# {name}: one DHCP exchange recorded by {t}, see README.md\n# label checksum-pending hex\n"
        );
        let mut seen = Vec::new();
        for (label, pending, f) in &frames {
            if !seen.contains(label) {
                seen.push(label.clone());
                text.push_str(&format!("{label} {} {}\n", u8::from(*pending), hex(f)));
            }
        }
        std::fs::write(std::path::Path::new(&out).join(format!("{name}.txt")), text).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn root_dhcp_live_udhcpd() {
    live_exchange("udhcpd", 3, testnet::udhcpd);
}

#[test]
fn root_dhcp_live_dnsmasq() {
    live_exchange("dnsmasq", 4, testnet::dnsmasq);
}

/// Random and mutated frames never panic the parser or the client
/// (a cheap stand-in until fuzz/ has a DHCP target).
#[test]
fn random_frames_do_not_panic() {
    use latchkey_client::time::{Jitter, XorShift};
    let rec = load(include_str!("../../tests/data/dhcp/udhcpd.txt"));
    let mut rng = XorShift::new(0x5eed);
    let t0 = Instant::now();
    let mac: [u8; 6] = get(&rec, "discover").frame[6..12].try_into().unwrap();
    for i in 0..20_000 {
        let base = &rec[i % rec.len()].frame;
        let mut f = base.clone();
        match rng.next_u32() % 3 {
            0 => {
                for _ in 0..1 + rng.next_u32() % 8 {
                    let at = rng.next_u32() as usize % f.len();
                    f[at] = rng.next_u32() as u8;
                }
            }
            1 => f.truncate(rng.next_u32() as usize % (f.len() + 1)),
            _ => {
                // A valid envelope around random DHCP options.
                let mut p = base[42..].to_vec();
                p.truncate(240);
                for _ in 0..rng.next_u32() % 64 {
                    p.push(rng.next_u32() as u8);
                }
                f = udp_frame(
                    [2; 6],
                    mac,
                    Ipv4Addr::new(10, 0, 0, 1),
                    Ipv4Addr::BROADCAST,
                    67,
                    68,
                    &p,
                );
            }
        }
        let mut c = Client::new(
            mac,
            0x4c4b_0003,
            Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(4)),
            t0,
        );
        let _ = c.handle_frame(&f, rng.next_u32() % 2 == 0, t0);
        let _ = c.poll(t0, &mut NoJitter);
    }
}
