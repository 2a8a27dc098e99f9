//! Status codes and reply bytes, from raw TCP requests, compared with what the
//! real tangd 11 answered to the same bytes (the samples' tang-http).

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::*;
use latchkey_proto::b64;
use latchkey_proto::curve::{Curve, EcBackend as _, RustCrypto};
use latchkey_proto::jws::verify_advertisement;
use latchkey_proto::secret::Secret;

fn recordings() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(sample("tang-http"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "req").then_some(p)
        })
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read(&p).unwrap(),
                std::fs::read(p.with_extension("resp")).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 23, "recordings missing");
    v
}

fn status_of(raw: &[u8]) -> u16 {
    std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap()
}

fn payload_keys(body: &[u8]) -> Vec<String> {
    let adv = verify_advertisement(body).expect("advertisement verifies");
    let mut keys: Vec<String> = adv.keys.iter().map(|k| k.to_value().to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn recorded_requests_get_tangs_answers() {
    let (_keys, tangd) = Tangd::sample();
    for (name, req, want) in recordings() {
        let got = request(tangd.addr, &req).unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(got.status, status_of(&want), "{name}");
        match got.status {
            // /rec replies are deterministic (Y = s·X): byte for byte what tang sent.
            200 if name.contains("rec") => assert_eq!(got.raw, want, "{name}"),
            200 => {
                // Advertisements carry fresh ECDSA signatures: same keys, same signers.
                assert_eq!(
                    got.header("content-type").as_deref(),
                    Some("application/jose+json"),
                    "{name}"
                );
                let want_body =
                    &want[want.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
                assert_eq!(payload_keys(&got.body), payload_keys(want_body), "{name}");
                assert_eq!(signatures(&got.body), signatures(want_body), "{name}");
            }
            // Error replies are tang's exact bytes: status line and Content-Length: 0.
            _ => assert_eq!(got.raw, want, "{name}"),
        }
    }
}

#[test]
fn recorded_requests_pipelined_on_one_connection() {
    let (_keys, tangd) = Tangd::sample();
    let recs = recordings();
    let mut s = connect(tangd.addr);
    for (_, req, _) in &recs {
        s.write_all(req).unwrap();
    }
    for (name, _, want) in &recs {
        let got = read_response(&mut s).unwrap_or_else(|| panic!("{name}: connection closed"));
        assert_eq!(got.status, status_of(want), "{name}");
    }
}

#[test]
fn routing_like_tangs_regexes() {
    let (_keys, tangd) = Tangd::sample();
    let a = tangd.addr;
    for (path, status) in [
        ("/adv", 200),
        ("//adv//", 200),
        ("/adv/", 200),
        (&format!("///adv//{SIG_THP}"), 200),
        ("/adv?x=1", 404),
        ("/adv/a.b", 404),
        (&format!("/adv/{SIG_THP}/"), 404),
        ("/", 404),
        ("/rec", 404),
        ("/rec/", 404),
        (&format!("/rec/{ECMR_KID}"), 405),
    ] {
        assert_eq!(get(a, path).status, status, "GET {path}");
    }
    for m in ["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = request(a, format!("{m} /adv HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(r.status, 405, "{m} /adv");
    }
    assert_eq!(post(a, "/adv", b"").status, 405);
    assert_eq!(post(a, "/foo", b"").status, 404);
}

#[test]
fn endpoint_prefix() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start(keys.dir(), &["--endpoint", "tang"]);
    assert_eq!(get(tangd.addr, "/tang/adv").status, 200);
    assert_eq!(
        get(tangd.addr, &format!("/tang//adv/{SIG_THP}")).status,
        200
    );
    assert_eq!(get(tangd.addr, "/adv").status, 404);
    let body = &recordings()[10].1;
    let body = &body[body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(
        post(tangd.addr, &format!("/tang/rec/{ECMR_KID}"), body).status,
        200
    );
    assert_eq!(
        post(tangd.addr, &format!("/rec/{ECMR_KID}"), body).status,
        404
    );
}

#[test]
fn uri_too_long_is_414_and_the_connection_survives() {
    let (_keys, tangd) = Tangd::sample();
    let mut s = connect(tangd.addr);
    // tang's limit: a target of 4096 bytes or more.
    let at_limit = format!("/adv/{}", "a".repeat(4096 - 5));
    let below = format!("/adv/{}", "a".repeat(4095 - 5));
    write!(
        s,
        "GET {at_limit} HTTP/1.1\r\n\r\nGET {below} HTTP/1.1\r\n\r\nGET /adv HTTP/1.1\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 414);
    assert_eq!(read_response(&mut s).unwrap().status, 404);
    assert_eq!(read_response(&mut s).unwrap().status, 200);
    // A request line longer than the whole head limit cannot be read to its end: 414, close.
    let mut s = connect(tangd.addr);
    write!(s, "GET /{} HTTP/1.1\r\n\r\n", "a".repeat(40_000)).unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 414);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

#[test]
fn body_too_large_is_413() {
    let (_keys, tangd) = Tangd::sample();
    let path = format!("/rec/{ECMR_KID}");
    // 64 KiB - 1 is still read (and is not JSON): 400.
    assert_eq!(post(tangd.addr, &path, &vec![b' '; 65535]).status, 400);
    // 64 KiB: 413, before the body is even sent.
    let r = request(
        tangd.addr,
        format!("POST {path} HTTP/1.1\r\nContent-Length: 65536\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.unwrap().status, 413);
    let r = request(
        tangd.addr,
        format!("POST {path} HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.unwrap().status, 413);
    // The client already sent the whole body: the 413 must still arrive (no RST).
    let mut s = connect(tangd.addr);
    let mut req = format!("POST {path} HTTP/1.1\r\nContent-Length: 200000\r\n\r\n").into_bytes();
    req.extend_from_slice(&vec![b'x'; 200_000]);
    let _ = s.write_all(&req);
    assert_eq!(read_response(&mut s).unwrap().status, 413);
    // Chunked, adding up to 64 KiB.
    let mut s = connect(tangd.addr);
    write!(
        s,
        "POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for _ in 0..16 {
        write!(s, "1000\r\n{}\r\n", " ".repeat(4096)).unwrap();
    }
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 413);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

#[test]
fn chunked_and_expect_continue_bodies() {
    let (_keys, tangd) = Tangd::sample();
    let (_, req, want) = recordings()
        .into_iter()
        .find(|r| r.0 == "11-post-rec-ok")
        .unwrap();
    let body = &req[req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let mut chunked =
        format!("POST /rec/{ECMR_KID} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes();
    for part in body.chunks(100) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(request(tangd.addr, &chunked).unwrap().raw, want);

    let mut s = connect(tangd.addr);
    write!(
        s,
        "POST /rec/{ECMR_KID} HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut line = [0u8; 25];
    std::io::Read::read_exact(&mut s, &mut line).unwrap();
    assert_eq!(&line, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body).unwrap();
    assert_eq!(read_response(&mut s).unwrap().raw, want);
}

#[test]
fn garbage_gets_400_and_a_closed_connection() {
    let (_keys, tangd) = Tangd::sample();
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /adv HTTP/2.0\r\n\r\n",
        b"GET /adv FOO\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /a\x01b HTTP/1.1\r\n\r\n",
        b"POST /rec/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /rec/x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    ] {
        let mut s = connect(tangd.addr);
        s.write_all(junk).unwrap();
        let r = read_response(&mut s).unwrap_or_else(|| panic!("{junk:?}: no response"));
        assert_eq!(r.status, 400, "{junk:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"));
        assert!(closed_within(&mut s, Duration::from_secs(5)), "{junk:?}");
    }
    // The server is still fine.
    assert_eq!(get(tangd.addr, "/adv").status, 200);
}

/// A head that goes bad past its first line and is never finished: the
/// client sends it a few bytes at a time and stops sending. The answer must
/// not depend on how the bytes were split across reads: 400, as when the
/// same bytes come at once.
#[test]
fn malformed_unfinished_head_gets_400_however_it_arrives() {
    let (_keys, tangd) = Tangd::sample();
    let head = format!(
        "POST /rec/k HTTP/1.1\r\nContent-Length: 4\r\n{}\r\nHost: x\r\n",
        "X".repeat(100)
    );
    for piece in [head.len(), 3] {
        let mut s = connect(tangd.addr);
        for chunk in head.as_bytes().chunks(piece) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        shutdown_write(&s);
        let r = read_response(&mut s)
            .unwrap_or_else(|| panic!("pieces of {piece} bytes: closed without an answer"));
        assert_eq!(r.status, 400, "pieces of {piece} bytes");
    }
}

/// Points tang's exchange refuses with 400, and the ones it accepts.
#[test]
fn invalid_points_are_400() {
    let (_keys, tangd) = Tangd::sample();
    let path = format!("/rec/{ECMR_KID}");
    let jwk = |crv: &str, x: &[u8], y: &[u8]| {
        format!(
            r#"{{"alg":"ECMR","crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
            b64::encode(x),
            b64::encode(y)
        )
    };
    let scalar = |crv: Curve| {
        let mut v = vec![0x42u8; crv.width()];
        v[0] = 0;
        Secret::new(v)
    };
    let g521 = RustCrypto
        .mul_base(Curve::P521, &scalar(Curve::P521))
        .unwrap();
    let g256 = RustCrypto
        .mul_base(Curve::P256, &scalar(Curve::P256))
        .unwrap();
    // p of P-521 = 2^521 - 1: the smallest coordinate out of range.
    let mut p521 = vec![0xffu8; 66];
    p521[0] = 0x01;
    let mut off = g521.y.clone();
    off[65] ^= 1;
    let ok = jwk("P-521", &g521.x, &g521.y);
    assert_eq!(post(tangd.addr, &path, ok.as_bytes()).status, 200);
    for (what, body) in [
        ("off the curve", jwk("P-521", &g521.x, &off)),
        ("a P-256 point", jwk("P-256", &g256.x, &g256.y)),
        ("P-256 coordinates as P-521", jwk("P-521", &g256.x, &g256.y)),
        ("the identity as (0,0)", jwk("P-521", &[0; 66], &[0; 66])),
        ("x = p", jwk("P-521", &p521, &g521.y)),
        ("x, y = all ones", jwk("P-521", &[0xff; 66], &[0xff; 66])),
        (
            "no y",
            format!(
                r#"{{"crv":"P-521","kty":"EC","x":"{}"}}"#,
                b64::encode(&g521.x)
            ),
        ),
        ("unknown curve", jwk("P-192", &g256.x, &g256.y)),
        (
            "x not base64url",
            r#"{"crv":"P-521","kty":"EC","x":"!!","y":"!!"}"#.to_owned(),
        ),
    ] {
        assert_eq!(
            post(tangd.addr, &path, body.as_bytes()).status,
            400,
            "{what}"
        );
    }
}

/// tang's read_keys fails without an active signing key: everything is 500,
/// except what is refused on the request alone.
#[test]
fn no_active_signing_key_is_500() {
    let keys = copy_keys("tang-db");
    std::fs::remove_file(keys.dir().join(format!("{SIG_THP}.jwk"))).unwrap();
    let tangd = Tangd::start(keys.dir(), &[]);
    assert_eq!(get(tangd.addr, "/adv").status, 500);
    assert_eq!(get(tangd.addr, &format!("/adv/{ECMR_KID}")).status, 500);
    let (_, req, _) = recordings()
        .into_iter()
        .find(|r| r.0 == "11-post-rec-ok")
        .unwrap();
    let body = &req[req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_eq!(
        post(tangd.addr, &format!("/rec/{ECMR_KID}"), body).status,
        500
    );
    assert_eq!(
        post(tangd.addr, &format!("/rec/{ECMR_KID}"), b"{").status,
        400
    );
    assert_eq!(
        post(
            tangd.addr,
            "/rec/unknown",
            br#"{"kty":"EC","key_ops":["sign"]}"#
        )
        .status,
        403
    );
    // An ECMR key alone does not count as "no key": nothing was created.
    assert_eq!(std::fs::read_dir(keys.dir()).unwrap().count(), 1);
}

#[test]
fn connection_close_and_http10_are_honoured() {
    let (_keys, tangd) = Tangd::sample();
    let a = tangd.addr;
    for (req, closes) in [
        ("GET /adv HTTP/1.0\r\n\r\n", true),
        ("GET /adv HTTP/1.1\r\nConnection: close\r\n\r\n", true),
        ("GET /adv HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        ("GET /adv HTTP/1.1\r\n\r\n", false),
    ] {
        let mut s = connect(a);
        s.write_all(req.as_bytes()).unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        let want = match (closes, req.contains("1.0")) {
            (true, _) => Some("close"),
            (false, true) => Some("keep-alive"),
            (false, false) => None,
        };
        assert_eq!(r.header("connection").as_deref(), want, "{req:?}");
        if closes {
            assert!(closed_within(&mut s, Duration::from_secs(5)), "{req:?}");
        } else {
            s.write_all(b"GET /adv/ HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(
                read_response(&mut s).unwrap().status,
                200,
                "{req:?} kept alive"
            );
        }
    }
}

#[test]
fn access_log_has_one_line_per_request_and_no_body() {
    let (keys, tangd) = Tangd::sample();
    let (_, req, _) = recordings()
        .into_iter()
        .find(|r| r.0 == "11-post-rec-ok")
        .unwrap();
    let r = request(tangd.addr, &req).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(get(tangd.addr, "/nope").status, 404);
    assert!(
        tangd.wait_log(" GET /nope 404 ", Duration::from_secs(5)),
        "{}",
        tangd.log()
    );
    let log = tangd.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("POST /rec/{ECMR_KID} 200 ")))
        .expect("rec line");
    assert!(
        line.starts_with("127.0.0.1:") && line.ends_with("us"),
        "{line}"
    );
    // Neither the request point nor the reply, nor any private key, appears.
    for secretish in ["AFZ1-tU5kdiZAb4dD5pw", "AHhTADs8oQV8dnoFWlEw", "\"d\""] {
        assert!(!log.contains(secretish), "log leaks {secretish}");
    }
    let d = std::fs::read_to_string(keys.dir().join(format!("{ECMR_KID}.jwk"))).unwrap();
    let d: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert!(!log.contains(d["d"].as_str().unwrap()));
}
