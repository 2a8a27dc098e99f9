//! systemd socket activation (LISTEN_PID/LISTEN_FDS, fds from 3), driven by
//! systemd's own `systemd-socket-activate`, which passes fds exactly as
//! tangd.socket does.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn serves_on_sockets_passed_by_systemd() {
    if !have(&["systemd-socket-activate"]) {
        return;
    }
    let keys = copy_keys("tang-db");
    // Two ports below the ephemeral range, where no outgoing connection takes them.
    let p1 = free_port_pair();
    let p2 = p1 + 1;
    let mut child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{p1}"),
            "-l",
            &format!("127.0.0.1:{p2}"),
        ])
        .args([TANGD, "serve", "--keys", keys.dir().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ok = wait_port(p1, Duration::from_secs(10));
    let result = std::panic::catch_unwind(|| {
        assert!(ok, "systemd-socket-activate did not listen");
        for p in [p1, p2] {
            let addr = format!("127.0.0.1:{p}").parse().unwrap();
            assert_eq!(get(addr, "/adv").status, 200, "port {p}");
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}

#[test]
fn no_listen_and_no_sockets_is_an_error() {
    let keys = copy_keys("tang-db");
    let out = Command::new(TANGD)
        .args(["serve", "--keys", keys.dir().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to listen on"), "{err}");
}

#[test]
fn listens_on_ipv4_and_ipv6_at_once() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start_args(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "[::1]:0",
        "--keys",
        keys.dir().to_str().unwrap(),
    ]);
    assert!(
        tangd.wait_log("listening on [::1]:", Duration::from_secs(5)),
        "{}",
        tangd.log()
    );
    let log = tangd.log();
    let addrs: Vec<std::net::SocketAddr> = log
        .lines()
        .filter_map(|l| l.strip_prefix("listening on "))
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(addrs.len(), 2, "{log}");
    for a in addrs {
        assert_eq!(get(a, "/adv").status, 200, "{a}");
    }
}
