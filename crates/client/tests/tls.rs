//! https:// to Debian's real tangd behind a TLS front (socat with a test CA's
//! certificate for IP 127.0.0.1, made by openssl at test time): each kind of
//! trust accepts the right server and refuses the wrong one by name.
#![cfg(feature = "tls")]

use std::path::Path;
use std::time::Duration;

use latchkey_client::{Error, Fingerprint, Options, Retry, Trust};
use latchkey_proto::jwe::Jwe;
use latchkey_testkit::TlsTang;

const SECRET: &[u8] = b"recovered over https";

struct Setup {
    server: TlsTang,
    jwe: Jwe,
}

fn setup() -> Option<Setup> {
    let server = TlsTang::start(SECRET)?;
    let jwe = Jwe::parse(std::str::from_utf8(&server.jwe).unwrap()).unwrap();
    Some(Setup { server, jwe })
}

fn opts(trust: Trust) -> Options {
    Options {
        timeout: Duration::from_secs(10),
        retry: Retry::NONE,
        ..Options::default()
    }
    .with_trust(trust)
}

fn ca(dir: &Path, name: &str) -> Trust {
    Trust::CaFile(dir.join(name))
}

fn pin(dir: &Path) -> Trust {
    let text = std::fs::read_to_string(dir.join("server.pin")).unwrap();
    Trust::Pin(Fingerprint::parse(text.trim()).unwrap())
}

/// The error of `GET url/adv` under `trust`, which must be a TLS error naming the URL.
fn refused(url: &str, trust: Trust) -> String {
    let adv = format!("{url}/adv");
    let err = latchkey_client::get(&adv, &opts(trust)).unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{adv}: TLS: ")), "{text}");
    text
}

#[test]
fn the_right_ca_recovers_the_key() {
    let Some(s) = setup() else { return };
    let got = latchkey_client::decrypt(&s.jwe, &opts(ca(s.server.pki.dir(), "ca.pem"))).unwrap();
    assert_eq!(got.expose(), SECRET);
}

#[test]
fn a_wrong_ca_is_an_unknown_issuer() {
    let Some(s) = setup() else { return };
    let other = s.server.pki.path("other-ca.pem");
    let text = refused(&s.server.url, Trust::CaFile(other.clone()));
    assert!(
        text.ends_with(&format!(
            "unknown issuer: the server's certificate is not signed by a CA in {}",
            other.display()
        )),
        "{text}"
    );
    // The whole decryption fails with the same words, naming the server.
    let Err(err) = latchkey_client::decrypt(&s.jwe, &opts(Trust::CaFile(other))) else {
        panic!("recovered with the wrong CA");
    };
    let text = err.to_string();
    assert!(
        text.contains(&s.server.url) && text.contains("unknown issuer"),
        "{text}"
    );
    // The system store does not know the test CA either.
    let text = refused(&s.server.url, Trust::System);
    assert!(text.contains("unknown issuer"), "{text}");
}

#[test]
fn a_certificate_for_another_name_is_a_name_mismatch() {
    let Some(s) = setup() else { return };
    let url = s.server.url.replace("127.0.0.1", "localhost");
    let text = refused(&url, ca(s.server.pki.dir(), "ca.pem"));
    assert!(
        text.ends_with("name mismatch: the server's certificate is not valid for localhost"),
        "{text}"
    );
}

#[test]
fn the_right_pin_recovers_without_a_ca() {
    let Some(s) = setup() else { return };
    let got = latchkey_client::decrypt(&s.jwe, &opts(pin(s.server.pki.dir()))).unwrap();
    assert_eq!(got.expose(), SECRET);
    // A pin replaces the chain and name checks: the same certificate under another name.
    let url = s.server.url.replace("127.0.0.1", "localhost");
    latchkey_client::get(&format!("{url}/adv"), &opts(pin(s.server.pki.dir()))).unwrap();
}

#[test]
fn a_wrong_pin_is_refused_with_both_fingerprints() {
    let Some(s) = setup() else { return };
    let wrong = Fingerprint::of(b"some other certificate");
    let text = refused(&s.server.url, Trust::Pin(wrong));
    let Trust::Pin(right) = pin(s.server.pki.dir()) else {
        unreachable!()
    };
    assert!(
        text.ends_with(&format!(
            "pin mismatch: the server's certificate is {right}, the pin {wrong}"
        )),
        "{text}"
    );
}

#[test]
fn an_unreadable_ca_file_is_named() {
    let Some(s) = setup() else { return };
    let text = refused(&s.server.url, ca(s.server.pki.dir(), "missing.pem"));
    assert!(
        text.contains(&format!(
            "unreadable CA file {}: ",
            s.server.pki.path("missing.pem").display()
        )),
        "{text}"
    );
}
