//! The stub resolver against a real dnsmasq, in a private network
//! namespace (root only) so that it can own 127.0.0.1:53.

use std::net::{IpAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey_client::dns::{DnsError, resolve_with};
use latchkey_client::time::Deadline;

struct Dnsmasq(std::process::Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn root_resolves_through_dnsmasq_and_moves_past_a_silent_server() {
    let t = "root_resolves_through_dnsmasq_and_moves_past_a_silent_server";
    if !latchkey_sys::proc::is_root() {
        println!("{t}: skipped: needs root");
        return;
    }
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{t}: dnsmasq missing (dnsmasq-base)"
        );
        println!("{t}: skipped: dnsmasq not installed");
        return;
    }
    latchkey_sys::mount::enter_new_network_namespace().expect("unshare(CLONE_NEWNET) as root");
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip(8)");
    assert!(st.success());
    let _server = Dnsmasq(
        Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--port=53",
                "--local=/test/",
                "--host-record=tang.test,10.0.2.100,fec0::2",
                "--address=/v4only.test/10.0.2.101",
                "--cname=alias.test,tang.test",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq"),
    );
    // 127.0.0.2:53 takes the queries and never answers.
    let _silent = UdpSocket::bind("127.0.0.2:53").unwrap();
    let dnsmasq: IpAddr = [127, 0, 0, 1].into();
    for _ in 0..100 {
        if resolve_with(
            "tang.test",
            &[dnsmasq],
            Duration::from_millis(200),
            Deadline::after(Instant::now(), Duration::from_secs(1)),
        )
        .is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let soon = || Deadline::after(Instant::now(), Duration::from_secs(10));
    let per_query = Duration::from_millis(700);

    let both = resolve_with("TANG.test.", &[dnsmasq], per_query, soon()).unwrap();
    assert_eq!(
        both,
        vec!["fec0::2".parse::<IpAddr>().unwrap(), [10, 0, 2, 100].into()]
    );
    let cname = resolve_with("alias.test", &[dnsmasq], per_query, soon()).unwrap();
    assert_eq!(cname, both);
    let v4 = resolve_with("v4only.test", &[dnsmasq], per_query, soon()).unwrap();
    assert_eq!(v4, vec![IpAddr::from([10, 0, 2, 101])]);
    assert_eq!(
        resolve_with("nosuch.test", &[dnsmasq], per_query, soon()),
        Err(DnsError::NoSuchName)
    );

    // The silent server first: one per-query timeout, then dnsmasq answers.
    let silent: IpAddr = [127, 0, 0, 2].into();
    let start = Instant::now();
    let got = resolve_with("tang.test", &[silent, dnsmasq], per_query, soon()).unwrap();
    let took = start.elapsed();
    assert_eq!(got, both);
    assert!(took >= per_query, "{took:?}");

    // Only the silent server: every round times out, and the deadline holds.
    let start = Instant::now();
    let e = resolve_with(
        "tang.test",
        &[silent],
        per_query,
        Deadline::after(start, Duration::from_secs(1)),
    )
    .unwrap_err();
    assert_eq!(e, DnsError::Timeout(vec![silent]));
    assert_eq!(e.to_string(), "no answer from name servers 127.0.0.2");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}
