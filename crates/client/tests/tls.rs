//! https:// against `openssl s_server` on the loopback with a self-signed certificate:
//! the handshake runs and the unknown issuer is refused, by name.
#![cfg(feature = "tls")]

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey_client::{Error, Options, Retry};

#[test]
fn self_signed_certificate_is_refused() {
    if !std::path::Path::new("/usr/bin/openssl").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is not installed (run scripts/setup)"
        );
        println!("skipped: openssl is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("latchkey-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-key",
        ])
        .arg(&key)
        .arg("-cert")
        .arg(&cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let opts = Options {
        timeout: Duration::from_secs(5),
        retry: Retry::NONE,
        ..Options::default()
    };
    let url = format!("https://127.0.0.1:{port}/adv/");
    let result = latchkey_client::get(&url, &opts);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{url}: TLS: ")) && text.contains("certificate"),
        "{text}"
    );
}
