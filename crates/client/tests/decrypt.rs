//! The decryption driver against in-process Tang stand-ins that answer with proto's
//! exchange and the real keys of the servers a clevis-made JWE was bound to (the samples
//! in crates/proto/tests/data).
//! The URL rewrite hook points the JWE's URLs at them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use latchkey_client::time::Backoff;
use latchkey_client::{Error, Options, Retry};
use latchkey_proto::curve::RustCrypto;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::jwk::Jwk;

const JWE: &str = include_str!("../../proto/tests/data/jwe/sss-2of3-tang.jwe");
/// The exchange keys of the tang servers on 18081, 18082 and 18083 the JWE was bound to.
const KEYS: [&str; 3] = [
    include_str!(
        "../../proto/tests/data/tang-db/tang-db/Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw.jwk"
    ),
    include_str!(
        "../../proto/tests/data/tang-db/tang-db2/azz5M9LmUroPkpJUgKEGjqdMAJVVBFavDkY35pDHQdM.jwk"
    ),
    include_str!(
        "../../proto/tests/data/tang-db/tang-db3/KJusrZXj4jr4fvGS03TECCQVAUi-LQSVZW5jXgfKSKM.jwk"
    ),
];
const PLAINTEXT: &[u8] = b"sss-2of3-tang-passphrase";

enum Mode {
    /// Answers /rec with s·X.
    Serve,
    /// Reads the request, never answers; reports when the client hangs up.
    Hang(mpsc::Sender<Instant>),
    /// Nothing listens.
    Down,
}

fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + len {
                return Some(data[end + 4..end + 4 + len].to_vec());
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Starts a stand-in for server `i` (0..3); its URL.
fn server(i: usize, mode: Mode) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let key = Jwk::parse(KEYS[i].as_bytes()).unwrap();
    match mode {
        Mode::Down => drop(l),
        Mode::Serve => {
            thread::spawn(move || {
                for s in l.incoming() {
                    let mut s = s.unwrap();
                    let Some(body) = read_request(&mut s) else {
                        continue;
                    };
                    let reply = latchkey_proto::tang::exchange(&key, &body, &RustCrypto).unwrap();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: {}\r\n\r\n",
                        reply.len()
                    );
                    // A cancelled client may be gone already.
                    let _ = s
                        .write_all(head.as_bytes())
                        .and_then(|()| s.write_all(&reply));
                    // Like tangd, keep the connection open: the client must frame the reply.
                    thread::spawn(move || read_request(&mut s));
                }
            });
        }
        Mode::Hang(tx) => {
            thread::spawn(move || {
                for s in l.incoming() {
                    let mut s = s.unwrap();
                    let tx = tx.clone();
                    thread::spawn(move || {
                        read_request(&mut s);
                        let mut b = [0u8; 1];
                        // Returns once the client shuts the connection down.
                        let _ = s.read(&mut b);
                        let _ = tx.send(Instant::now());
                    });
                }
            });
        }
    }
    url
}

fn options(urls: [String; 3], timeout: Duration) -> Options {
    Options {
        connect_timeout: timeout,
        timeout,
        budget: Duration::from_secs(30),
        retry: Retry {
            retries: 1,
            backoff: Backoff::new(Duration::from_millis(10), 2, Duration::from_millis(10)),
        },
        rewrite: Some(Arc::new(move |u: &str| {
            let mut u = u.to_owned();
            for (i, to) in urls.iter().enumerate() {
                u = u.replace(&format!("http://127.0.0.1:1808{}", i + 1), to);
            }
            u
        })),
        ..Options::default()
    }
}

#[test]
fn all_servers_up() {
    let urls = [
        server(0, Mode::Serve),
        server(1, Mode::Serve),
        server(2, Mode::Serve),
    ];
    let jwe = Jwe::parse(JWE).unwrap();
    let secret = latchkey_client::decrypt(&jwe, &options(urls, Duration::from_secs(10))).unwrap();
    assert_eq!(secret.expose(), PLAINTEXT);
}

#[test]
fn quorum_reached_cancels_the_hanging_request() {
    let (tx, rx) = mpsc::channel();
    let urls = [
        server(0, Mode::Hang(tx)),
        server(1, Mode::Serve),
        server(2, Mode::Serve),
    ];
    let jwe = Jwe::parse(JWE).unwrap();
    let secret = latchkey_client::decrypt(&jwe, &options(urls, Duration::from_secs(60))).unwrap();
    let done = Instant::now();
    assert_eq!(secret.expose(), PLAINTEXT);
    // The outstanding request was abandoned: its connection is shut down right away, not
    // after the 60 s request timeout.
    let hung_up = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("hanging request was not cancelled");
    assert!(hung_up.saturating_duration_since(done) < Duration::from_secs(10));
}

#[test]
fn quorum_lost_names_every_server() {
    let urls = [
        server(0, Mode::Down),
        server(1, Mode::Serve),
        server(2, Mode::Down),
    ];
    let (down0, down2) = (urls[0].clone(), urls[2].clone());
    let jwe = Jwe::parse(JWE).unwrap();
    let Err(err) = latchkey_client::decrypt(&jwe, &options(urls, Duration::from_secs(10))) else {
        panic!("decrypted without a quorum");
    };
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("sss threshold 2, got "), "{text}");
    // Each server under the JWE's own URL, with where the request went and what happened.
    for (jwe_url, to, kid) in [
        (
            "http://127.0.0.1:18081",
            &down0,
            "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw",
        ),
        (
            "http://127.0.0.1:18083",
            &down2,
            "KJusrZXj4jr4fvGS03TECCQVAUi-LQSVZW5jXgfKSKM",
        ),
    ] {
        let line = format!("{jwe_url}: {to}/rec/{kid}: connection refused");
        assert!(text.contains(&line), "{line} not in {text}");
    }
    assert!(text.contains("http://127.0.0.1:18082"), "{text}");
}

#[test]
fn a_server_still_refusing_at_the_deadline_is_reported_with_its_last_error() {
    let urls = [
        server(0, Mode::Down),
        server(1, Mode::Down),
        server(2, Mode::Down),
    ];
    let opts = Options {
        budget: Duration::from_secs(1),
        // Retried until the deadline cuts the request short.
        retry: Retry {
            retries: 1000,
            backoff: Backoff::new(Duration::from_millis(20), 2, Duration::from_millis(50)),
        },
        ..options(urls, Duration::from_secs(10))
    };
    let jwe = Jwe::parse(JWE).unwrap();
    let Err(err) = latchkey_client::decrypt(&jwe, &opts) else {
        panic!("decrypted with every server down");
    };
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    let text = err.to_string();
    for url in [
        "http://127.0.0.1:18081",
        "http://127.0.0.1:18082",
        "http://127.0.0.1:18083",
    ] {
        let line = format!("\n  {url}: no reply before the deadline (last: connection refused)");
        assert!(text.contains(&line), "{line:?} not in {text}");
    }
}
