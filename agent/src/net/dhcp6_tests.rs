//! Tests of the DHCPv6 client: server messages laid out as dnsmasq sends
//! them, hostile and truncated input, and the exchange driven through
//! every state. The live exchange with dnsmasq is the `dhcp6` VM scenario.

use super::*;
use latchkey_client::time::NoJitter;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x30, 0x7a, 0x1c, 0x20, 0x02, 0, 0, 0, 0, 1];

fn opt(code: u16, v: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    push(&mut p, code, v);
    p
}

fn iaaddr(a: &str, preferred: u32, valid: u32, sub: &[u8]) -> Vec<u8> {
    let mut v = a.parse::<Ipv6Addr>().unwrap().octets().to_vec();
    v.extend_from_slice(&preferred.to_be_bytes());
    v.extend_from_slice(&valid.to_be_bytes());
    v.extend_from_slice(sub);
    opt(OPT_IAADDR, &v)
}

fn ia_na(iaid: u32, sub: &[u8]) -> Vec<u8> {
    let mut v = iaid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0x0e, 0x10, 0, 0, 0x15, 0x18]);
    v.extend_from_slice(sub);
    opt(OPT_IA_NA, &v)
}

fn status_opt(code: u16, text: &str) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(text.as_bytes());
    opt(OPT_STATUS_CODE, &v)
}

/// A server message as dnsmasq lays it out: server id, client id, IA_NA,
/// status, preference, DNS servers.
fn server_msg(kind: u8, xid: u32, extra: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend_from_slice(&xid.to_be_bytes()[1..]);
    p.extend(opt(OPT_SERVERID, SERVER_DUID));
    p.extend(opt(OPT_CLIENTID, &duid_ll(MAC)));
    for e in extra {
        p.extend_from_slice(e);
    }
    p
}

fn iaid() -> u32 {
    be32(&MAC[2..])
}

fn offer(kind: u8, xid: u32, addr: &str, extra: &[&[u8]]) -> Vec<u8> {
    let ia = ia_na(iaid(), &iaaddr(addr, 3600, 7200, &[]));
    let dns = ["fd5c::1".parse::<Ipv6Addr>().unwrap().octets(), [0; 16]].concat();
    let dns = opt(OPT_DNS_SERVERS, &dns);
    let mut all: Vec<&[u8]> = vec![&ia, &dns];
    all.extend_from_slice(extra);
    server_msg(kind, xid, &all)
}

/// Options of a message we sent, as (code, value).
fn sent_options(m: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut budget = MAX_OPTIONS;
    options(&m[4..], &mut budget)
        .unwrap()
        .into_iter()
        .map(|(c, v)| (c, v.to_vec()))
        .collect()
}

fn started() -> (Client, Instant, Vec<u8>) {
    let now = Instant::now();
    let mut c = Client::new(MAC, 0xab12_3456, now);
    let m = c.poll(now, &mut NoJitter).expect("a SOLICIT at once");
    (c, now, m)
}

#[test]
fn solicit_carries_duid_ia_oro_elapsed_and_rapid_commit() {
    let (c, _, m) = started();
    assert_eq!(m[0], SOLICIT);
    assert_eq!(&m[1..4], &[0x12, 0x34, 0x56], "24-bit xid");
    assert_eq!(c.xid(), 0x12_3456);
    let o = sent_options(&m);
    let codes: Vec<u16> = o.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        vec![
            OPT_CLIENTID,
            OPT_IA_NA,
            OPT_ORO,
            OPT_ELAPSED_TIME,
            OPT_RAPID_COMMIT
        ]
    );
    assert_eq!(o[0].1, [0, 3, 0, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert_eq!(o[1].1.len(), 12);
    assert_eq!(o[2].1, [0, 23]);
    assert_eq!(o[3].1, [0, 0], "the first message's elapsed time is 0");
}

#[test]
fn four_message_exchange() {
    let (mut c, t0, _) = started();
    let xid = c.xid();
    let adv = offer(ADVERTISE, xid, "fd5c::1a2", &[]);
    assert_eq!(
        c.handle(&adv, t0),
        Event::Advertised("fd5c::1a2".parse().unwrap())
    );
    // Other ADVERTISEs may still come during the first RT (1 s).
    assert_eq!(c.poll(t0 + Duration::from_millis(500), &mut NoJitter), None);
    let req = c
        .poll(t0 + Duration::from_millis(1000), &mut NoJitter)
        .expect("a REQUEST once the first RT is over");
    assert_eq!(req[0], REQUEST);
    let rxid = c.xid();
    assert_ne!(rxid, xid, "a new transaction");
    let o = sent_options(&req);
    assert!(o.contains(&(OPT_SERVERID, SERVER_DUID.to_vec())));
    assert!(!o.iter().any(|(c, _)| *c == OPT_RAPID_COMMIT));
    let ia = &o.iter().find(|(c, _)| *c == OPT_IA_NA).unwrap().1;
    assert_eq!(
        &ia[12 + 4..12 + 20],
        &"fd5c::1a2".parse::<Ipv6Addr>().unwrap().octets()
    );
    // A REPLY to the old transaction, or for another client, is not ours.
    assert_eq!(
        c.handle(&offer(REPLY, xid, "fd5c::1a2", &[]), t0),
        Event::Ignored
    );
    let Event::Bound(l) = c.handle(&offer(REPLY, rxid, "fd5c::1a2", &[]), t0) else {
        panic!("not bound")
    };
    assert_eq!(l.address, "fd5c::1a2".parse::<Ipv6Addr>().unwrap());
    // The unspecified address beside it is no server.
    assert_eq!(l.dns, vec!["fd5c::1".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(l.valid, Some(Duration::from_secs(7200)));
    assert_eq!(c.poll(t0 + Duration::from_secs(60), &mut NoJitter), None);
}

#[test]
fn rapid_commit_reply_binds_at_once() {
    let (mut c, t0, _) = started();
    let rc = opt(OPT_RAPID_COMMIT, &[]);
    let reply = offer(REPLY, c.xid(), "fd5c::100", &[&rc]);
    assert!(
        matches!(c.handle(&reply, t0), Event::Bound(l) if l.address == "fd5c::100".parse::<Ipv6Addr>().unwrap())
    );
    // Without Rapid Commit a REPLY to a SOLICIT means nothing.
    let (mut c, t0, _) = started();
    assert_eq!(
        c.handle(&offer(REPLY, c.xid(), "fd5c::100", &[]), t0),
        Event::Ignored
    );
}

#[test]
fn preference_255_is_requested_at_once() {
    let (mut c, t0, _) = started();
    let pref = opt(OPT_PREFERENCE, &[255]);
    c.handle(&offer(ADVERTISE, c.xid(), "fd5c::7", &[&pref]), t0);
    let m = c.poll(t0, &mut NoJitter).expect("REQUEST now");
    assert_eq!(m[0], REQUEST);
}

#[test]
fn higher_preference_wins() {
    let (mut c, t0, _) = started();
    let p5 = opt(OPT_PREFERENCE, &[5]);
    c.handle(&offer(ADVERTISE, c.xid(), "fd5c::5", &[&p5]), t0);
    c.handle(&offer(ADVERTISE, c.xid(), "fd5c::1", &[]), t0);
    c.poll(t0 + Duration::from_secs(1), &mut NoJitter).unwrap();
    let State::Requesting { advertise, .. } = c.state() else {
        panic!("{:?}", c.state())
    };
    assert_eq!(
        advertise.addresses[0].address,
        "fd5c::5".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn no_addrs_avail_is_a_refusal_with_the_server_text() {
    let (mut c, t0, _) = started();
    let st = status_opt(NO_ADDRS_AVAIL, "no addresses available\n");
    let ia = ia_na(iaid(), &st);
    let adv = server_msg(ADVERTISE, c.xid(), &[&ia]);
    let Event::Refused(s) = c.handle(&adv, t0) else {
        panic!("not refused")
    };
    assert_eq!(s.to_string(), "NoAddrsAvail (2): no addresses available");
    assert!(matches!(c.state(), State::Soliciting { best: None }));
    // In a REPLY to a REQUEST: back to soliciting.
    let (mut c, t0, _) = started();
    c.handle(&offer(ADVERTISE, c.xid(), "fd5c::9", &[]), t0);
    c.poll(t0 + Duration::from_secs(1), &mut NoJitter).unwrap();
    let top = status_opt(NO_ADDRS_AVAIL, "");
    let reply = server_msg(REPLY, c.xid(), &[&top]);
    assert!(matches!(c.handle(&reply, t0), Event::Refused(s) if s.code == NO_ADDRS_AVAIL));
    assert!(matches!(c.state(), State::Soliciting { .. }));
    assert_eq!(
        c.poll(t0 + Duration::from_secs(1), &mut NoJitter).unwrap()[0],
        SOLICIT
    );
}

#[test]
fn requests_give_up_after_req_max_rc() {
    let (mut c, mut t, _) = started();
    c.handle(&offer(ADVERTISE, c.xid(), "fd5c::9", &[]), t);
    let mut kinds = Vec::new();
    for _ in 0..40 {
        t = c.next_wakeup();
        if let Some(m) = c.poll(t, &mut NoJitter) {
            kinds.push(m[0]);
        }
        if kinds.len() == 11 {
            break;
        }
    }
    // The SOLICIT went out in started(): REQ_MAX_RC REQUESTs, then anew.
    assert_eq!(kinds[..10], [REQUEST; 10]);
    assert_eq!(kinds[10], SOLICIT);
}

#[test]
fn solicit_retransmissions_double_from_one_second() {
    let (mut c, t0, _) = started();
    let mut t = t0;
    let mut gaps = Vec::new();
    for _ in 0..4 {
        let next = c.next_wakeup();
        gaps.push(next - t);
        t = next;
        let m = c.poll(t, &mut NoJitter).unwrap();
        let o = sent_options(&m);
        let et = &o.iter().find(|(c, _)| *c == OPT_ELAPSED_TIME).unwrap().1;
        let centis = u16::from_be_bytes([et[0], et[1]]);
        assert_eq!(u128::from(centis), (t - t0).as_millis() / 10);
    }
    assert_eq!(gaps, [1, 2, 4, 8].map(Duration::from_secs).to_vec());
}

#[test]
fn wrong_xid_client_or_iaid_is_ignored() {
    let (mut c, t0, _) = started();
    assert_eq!(
        c.handle(&offer(ADVERTISE, c.xid() ^ 1, "fd5c::9", &[]), t0),
        Event::Ignored
    );
    let mut other = offer(ADVERTISE, c.xid(), "fd5c::9", &[]);
    // The client id's last byte: another machine's DUID.
    let at = 4 + 4 + SERVER_DUID.len() + 4 + 9;
    other[at] ^= 0xff;
    assert_eq!(c.handle(&other, t0), Event::Ignored);
    let ia = ia_na(iaid() + 1, &iaaddr("fd5c::9", 1, 2, &[]));
    assert_eq!(
        c.handle(&server_msg(ADVERTISE, c.xid(), &[&ia]), t0),
        Event::Ignored
    );
    // An address with a valid lifetime of 0, or an error status, is no offer.
    for sub in [
        iaaddr("fd5c::9", 0, 0, &[]),
        iaaddr("fd5c::9", 5, 10, &status_opt(1, "x")),
    ] {
        let ia = ia_na(iaid(), &sub);
        assert_eq!(
            c.handle(&server_msg(ADVERTISE, c.xid(), &[&ia]), t0),
            Event::Ignored
        );
    }
}

#[test]
fn truncated_and_hostile_input_never_panics() {
    let (c, _, _) = started();
    let full = offer(
        ADVERTISE,
        c.xid(),
        "fd5c::1a2",
        &[&opt(OPT_PREFERENCE, &[3])],
    );
    assert!(parse(&full).is_ok());
    for n in 0..full.len() {
        let r = parse(&full[..n]);
        assert!(r.is_err() || n >= 4, "{n}");
    }
    assert_eq!(parse(&full[..3]), Err(Ignored::Truncated));
    assert_eq!(parse(&full[..full.len() - 1]), Err(Ignored::Truncated));
    // Our own SOLICIT is not a server's message.
    assert_eq!(parse(&started().2), Err(Ignored::NotForClient));
    assert_eq!(parse(&vec![REPLY; MAX_MESSAGE + 1]), Err(Ignored::TooLong));
    // No server id.
    assert_eq!(parse(&[REPLY, 0, 0, 1]), Err(Ignored::Malformed));
    // Too many options: each one counted, nested ones too.
    let many: Vec<u8> = (0..MAX_OPTIONS).flat_map(|_| opt(99, &[])).collect();
    assert_eq!(
        parse(&server_msg(REPLY, 1, &[&many])),
        Err(Ignored::TooManyOptions)
    );
    let nested: Vec<u8> = (0..MAX_OPTIONS).flat_map(|_| opt(99, &[])).collect();
    assert_eq!(
        parse(&server_msg(REPLY, 1, &[&ia_na(1, &nested)])),
        Err(Ignored::TooManyOptions)
    );
    // A length running past the end, inside an IA.
    let mut bad_ia = ia_na(1, &iaaddr("fd5c::9", 1, 2, &[]));
    bad_ia[2..4].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(
        parse(&server_msg(REPLY, 1, &[&bad_ia])),
        Err(Ignored::Truncated)
    );
    // DNS servers are capped, and a multicast address is never taken.
    let dns: Vec<u8> = (0..40)
        .flat_map(|_| [0x20, 1, 0xd, 0xb8].repeat(4))
        .collect();
    let m = parse(&server_msg(REPLY, 1, &[&opt(OPT_DNS_SERVERS, &dns)])).unwrap();
    assert_eq!(m.dns.len(), MAX_DNS);
    let ia = ia_na(1, &iaaddr("ff02::1", 1, 2, &[]));
    assert!(
        parse(&server_msg(REPLY, 1, &[&ia]))
            .unwrap()
            .addresses
            .is_empty()
    );
    // A status text that is long, or carries control characters.
    let st = status_opt(2, &format!("a\x1b[2J{}", "b".repeat(500)));
    let m = parse(&server_msg(REPLY, 1, &[&st])).unwrap();
    let s = m.status.unwrap();
    assert_eq!(s.message.len(), 120);
    assert!(!s.message.contains('\x1b'));
}

/// dnsmasq's messages recorded in tests/data/dhcp6/dnsmasq.txt.
fn recorded(label: &str) -> Vec<u8> {
    let line = include_str!("../../tests/data/dhcp6/dnsmasq.txt")
        .lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {label} recorded"));
    unhex(line)
}

use latchkey_testkit::unhex;

#[test]
fn replay_dnsmasq_exchange() {
    let mac = [0x52, 0x54, 0, 0x6c, 0x88, 0x01];
    let t0 = Instant::now();
    let mut c = Client::new(mac, 0x2c_d5bb, t0).without_rapid_commit();
    c.poll(t0, &mut NoJitter).unwrap();
    let (adv, reply) = (recorded("advertise"), recorded("reply"));
    let m = parse(&adv).unwrap();
    assert_eq!(
        (m.kind, m.preference, m.status.clone()),
        (ADVERTISE, 0, None)
    );
    assert_eq!(m.addresses[0].valid, 3600);
    // Every shorter prefix of a real message is refused or yields less.
    for n in 0..adv.len() {
        if let Ok(p) = parse(&adv[..n]) {
            assert!(p.addresses.is_empty() || p.dns.is_empty(), "{n}");
        }
    }
    // The REPLY is for the REQUEST's transaction, not yet sent.
    assert_eq!(c.handle(&reply, t0), Event::Ignored);
    assert_eq!(
        c.handle(&adv, t0),
        Event::Advertised("fd6c:88::100".parse().unwrap())
    );
    let req = c.poll(t0 + Duration::from_secs(1), &mut NoJitter).unwrap();
    assert_eq!(req[0], REQUEST);
    assert_eq!(req[1..4], reply[1..4], "the REPLY answers this REQUEST");
    let Event::Bound(l) = c.handle(&reply, t0) else {
        panic!("not bound")
    };
    assert_eq!(l.address, "fd6c:88::100".parse::<Ipv6Addr>().unwrap());
    assert_eq!(l.dns, vec!["fd6c:88::53".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(l.valid, Some(Duration::from_secs(3600)));
}
