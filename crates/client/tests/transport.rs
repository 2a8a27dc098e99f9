//! The client against tiny servers on the loopback written with std::net.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use latchkey_client::time::Backoff;
use latchkey_client::{Error, Options, Retry};

/// Serves `reply` to each connection after reading the request head, keeps the socket open
/// (as tangd does), and hands back what it read.
fn serve(
    listener: TcpListener,
    reply: &'static [u8],
    count: usize,
) -> thread::JoinHandle<Vec<Vec<u8>>> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut open = Vec::new();
        for stream in listener.incoming().take(count) {
            let mut s = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(reply).unwrap();
            seen.push(req);
            open.push(s);
        }
        seen
    })
}

fn fast() -> Options {
    Options {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        budget: Duration::from_secs(5),
        retry: Retry {
            retries: 2,
            backoff: Backoff::new(Duration::from_millis(10), 2, Duration::from_millis(50)),
        },
        ..Options::default()
    }
}

#[test]
fn reply_framed_by_content_length_on_a_connection_that_stays_open() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let server = serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", 1);
    let start = Instant::now();
    let body = latchkey_client::fetch_adv(&url, Some("thp1"), &fast()).unwrap();
    assert_eq!(body, b"abcd");
    assert!(start.elapsed() < Duration::from_secs(1));
    let req = String::from_utf8(server.join().unwrap().remove(0)).unwrap();
    assert!(req.starts_with("GET /adv/thp1 HTTP/1.1\r\n"), "{req}");
}

#[test]
fn ipv6_literal() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    };
    let url = format!("http://[::1]:{}", l.local_addr().unwrap().port());
    let server = serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1);
    let body = latchkey_client::post(
        &format!("{url}/rec/k"),
        "application/jwk+json",
        b"{}",
        &fast(),
    );
    assert_eq!(body.unwrap(), b"ok");
    let req = String::from_utf8(server.join().unwrap().remove(0)).unwrap();
    assert!(
        req.contains(&format!(
            "Host: [::1]:{}\r\n",
            &url[url.rfind(':').unwrap() + 1..]
        )),
        "{req}"
    );
    assert!(
        req.contains("Content-Type: application/jwk+json\r\n"),
        "{req}"
    );
}

#[test]
fn hanging_server_times_out_with_the_url_and_the_time() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let opts = Options {
        timeout: Duration::from_millis(500),
        ..fast()
    };
    let start = Instant::now();
    let err = latchkey_client::get(&url, &opts).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{url}: timeout after 0.5s waiting for the reply")
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "{took:?}"
    );
    drop(l);
}

#[test]
fn refused_is_retried_then_reported() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let url = format!("http://127.0.0.1:{port}/adv");
    let err = latchkey_client::get(&url, &fast()).unwrap_err();
    assert_eq!(err.to_string(), format!("{url}: connection refused"));
    // A server that shows up during the backoff is reached by a retry.
    let opts = Options {
        retry: Retry {
            retries: 5,
            backoff: Backoff::new(Duration::from_millis(200), 2, Duration::from_millis(50)),
        },
        ..fast()
    };
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 1)
            .join()
            .unwrap()
    });
    assert_eq!(latchkey_client::get(&url, &opts).unwrap(), b"x");
    late.join().unwrap();
}

/// A listener whose accept queue holds a single connection: once one waits there, the
/// kernel drops further SYNs unanswered, as a link that is not yet passing packets does.
#[cfg(target_os = "linux")]
fn listener_with_no_backlog() -> TcpListener {
    use rustix::net::{AddressFamily, SocketType, bind, listen, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&fd, 0).unwrap();
    TcpListener::from(fd)
}

#[cfg(target_os = "linux")]
#[test]
fn an_unanswered_syn_is_sent_again_well_before_the_kernels_second() {
    let l = listener_with_no_backlog();
    let port = l.local_addr().unwrap().port();
    // Fills the accept queue: the client's first SYN is dropped.
    let filler = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let server = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        let (first, _) = l.accept().unwrap();
        drop((first, filler));
        serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 1)
            .join()
            .unwrap()
    });
    // Less than the kernel's first SYN retransmission (1 s): only a SYN sent again on
    // our own initiative can be answered in time.
    let opts = Options {
        connect_timeout: Duration::from_millis(900),
        retry: Retry::NONE,
        ..fast()
    };
    let url = format!("http://127.0.0.1:{port}/adv");
    assert_eq!(latchkey_client::get(&url, &opts).unwrap(), b"x");
    assert_eq!(server.join().unwrap().len(), 1);
}

#[test]
fn status_and_garbage_are_named() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let _server = serve(l, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1);
    let err = latchkey_client::get(&url, &fast()).unwrap_err();
    assert_eq!(err.to_string(), format!("{url}: HTTP status 404"));

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let _server = serve(l, b"garbage\r\n\r\n", 1);
    let err = latchkey_client::get(&url, &fast()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{url}: bad reply: malformed reply head (invalid HTTP version), first line \"garbage\""
        )
    );
}

#[test]
fn proxy_environment_is_ignored() {
    // A proxy that would answer differently; the client must go straight to the server.
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://127.0.0.1:{}", proxy.local_addr().unwrap().port());
    let _p = serve(
        proxy,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nproxy",
        1,
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let _s = serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ndirect", 1);
    // set_var is unsafe in edition 2024 (other threads read the environment): use a child.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "child_fetch", "--nocapture"])
        .env("http_proxy", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("LATCHKEY_TEST_URL", &url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("body=direct"), "{text}");
}

/// Helper run in a child process by `proxy_environment_is_ignored`.
#[test]
fn child_fetch() {
    if let Ok(url) = std::env::var("LATCHKEY_TEST_URL") {
        let body = latchkey_client::get(&url, &fast()).unwrap();
        println!("body={}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn unresolvable_and_unsupported() {
    let err = latchkey_client::get("http://no-such-host.invalid:1/", &fast()).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("http://no-such-host.invalid:1/: cannot resolve host")
    );
    if !cfg!(feature = "tls") {
        let err = latchkey_client::get("https://127.0.0.1:1/", &fast()).unwrap_err();
        assert!(matches!(err, Error::TlsUnsupported { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "https://127.0.0.1:1/: https:// needs TLS, and this program was built without it \
             (the agent with TLS is latchkey-agent-tls)"
        );
    }
}

#[test]
fn rewrite_hook_redirects_requests() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let _s = serve(l, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 1);
    let opts = Options {
        rewrite: Some(std::sync::Arc::new(move |u: &str| {
            u.replace("http://tang.invalid", &local)
        })),
        ..fast()
    };
    assert_eq!(
        latchkey_client::fetch_adv("http://tang.invalid", None, &opts).unwrap(),
        b"hi"
    );
}
