//! Deadlines and crowds: slow senders are cut off, idle connections time out,
//! and neither keeps other clients from being served.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start(keys.dir(), &["--request-timeout", "3"]);
    let addr = tangd.addr;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        // One byte a second of a request that never ends.
        for b in b"GET /adv HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
        {
            if s.write_all(&[*b]).is_err() || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        // Writes fail once the server closed; then the read side says EOF or reset.
        let closed = closed_within(&mut s, Duration::from_secs(5));
        (start.elapsed(), closed)
    });
    // Meanwhile, ordinary requests go through.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..10 {
        adv_answered_quickly(addr);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (took, closed) = slow.join().unwrap();
    assert!(closed, "slow connection not closed");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
    assert!(
        tangd.wait_log(" - - 408 ", Duration::from_secs(2)),
        "{}",
        tangd.log()
    );
}

#[test]
fn idle_keepalive_connection_is_closed() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start(keys.dir(), &["--idle-timeout", "1"]);
    let mut s = connect(tangd.addr);
    s.write_all(b"GET /adv HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    let t = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        t.elapsed()
    );
}

#[test]
fn a_thousand_idle_and_slow_connections_do_not_block_others() {
    let crowd_size = 1000;
    raise_nofile(crowd_size + 200);
    let (_keys, tangd) = Tangd::sample();
    let mut crowd = Vec::new();
    for i in 0..crowd_size {
        let mut s = TcpStream::connect(tangd.addr).unwrap();
        // Half sit silent, half stop in the middle of a request.
        if i % 2 == 1 {
            s.write_all(b"POST /rec/x HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"kty\"")
                .unwrap();
        }
        crowd.push(s);
    }
    let (_, req) = rec_request();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(get(tangd.addr, "/adv").status, 200);
        assert_eq!(request(tangd.addr, &req).unwrap().status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "served in {:?}",
            t.elapsed()
        );
    }
    // And the busy part of the crowd is still connected: only idle
    // connections are closed to make room.
    let mut s = crowd.pop().unwrap();
    s.write_all(&[b' '; 94]).unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 400);
}

#[test]
fn sigterm_drains_and_exits() {
    let keys = copy_keys("tang-db");
    let mut tangd = Tangd::start(keys.dir(), &[]);
    let mut idle = connect(tangd.addr);
    idle.write_all(b"GET /adv HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);
    let pid = tangd.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let status = loop {
        if let Some(st) = tangd.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "tangd did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(closed_within(&mut idle, Duration::from_secs(1)));
    assert!(tangd.wait_log("SIGTERM: shutting down", Duration::from_secs(2)));
}

fn rec_request() -> (String, Vec<u8>) {
    let raw = std::fs::read(sample("tang-http/11-post-rec-ok.req")).unwrap();
    ("11".into(), raw)
}
