//! Every request sees the key directory as it is at that moment, as with
//! tang, which reads it per request: a rotation, a deletion or an emptied
//! directory counts from the very next request, and a rotation half done is
//! never advertised. Each test runs with inotify (the default) and with
//! `--watch stat` (the fingerprint on every request).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use latchkey_proto::jws::verify_advertisement;
use tangd::keydir;

const MODES: [&[&str]; 2] = [&[], &["--watch", "stat"]];

fn rec_request() -> Vec<u8> {
    std::fs::read(sample("tang-http/11-post-rec-ok.req")).unwrap()
}

fn hide_active(dir: &Path) {
    for n in files(dir) {
        if n.ends_with(".jwk") && !n.starts_with('.') {
            std::fs::rename(dir.join(&n), dir.join(format!(".{n}"))).unwrap();
        }
    }
}

/// What clients need from an advertisement: it verifies, and it has a key to
/// sign with and a key to derive with.
fn complete(addr: SocketAddr) -> Result<Vec<String>, String> {
    let r = get(addr, "/adv");
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    let adv = verify_advertisement(&r.body).map_err(|e| e.to_string())?;
    if !adv.keys.iter().any(|k| k.allows("deriveKey")) {
        return Err("no exchange key".into());
    }
    if adv.signing_keys().is_empty() {
        return Err("no signing key".into());
    }
    Ok(thumbprints(&adv))
}

#[test]
fn a_rotation_is_advertised_by_the_next_request() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let dir = keys.dir().to_str().unwrap();
        let tangd = Tangd::start(keys.dir(), mode);
        for i in 0..10 {
            tangd_cmd(&["rotate", dir]);
            assert_eq!(
                adv_keys(tangd.addr),
                active_thumbprints(keys.dir()),
                "rotation {i}, {mode:?}"
            );
        }
        // Debian's script hides the old keys first, then writes the new ones.
        if have(&[latchkey_testkit::ROTATE, "jose"]) {
            for i in 0..3 {
                let st = std::process::Command::new(latchkey_testkit::ROTATE)
                    .args(["-d", dir])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
                assert_eq!(
                    adv_keys(tangd.addr),
                    active_thumbprints(keys.dir()),
                    "tangd-rotate-keys {i}, {mode:?}"
                );
            }
        }
    }
}

#[test]
fn a_deleted_key_is_404_on_the_next_request() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), mode);
        let rec = rec_request();
        assert_eq!(request(tangd.addr, &rec).unwrap().status, 200);
        tangd_cmd(&["rotate", keys.dir().to_str().unwrap()]);
        assert_eq!(
            request(tangd.addr, &rec).unwrap().status,
            200,
            "a hidden key still recovers"
        );
        assert_eq!(get(tangd.addr, &format!("/adv/{SIG_THP}")).status, 200);
        std::fs::remove_file(keys.dir().join(format!(".{ECMR_KID}.jwk"))).unwrap();
        assert_eq!(request(tangd.addr, &rec).unwrap().status, 404, "{mode:?}");
        std::fs::remove_file(keys.dir().join(format!(".{SIG_THP}.jwk"))).unwrap();
        assert_eq!(
            get(tangd.addr, &format!("/adv/{SIG_THP}")).status,
            404,
            "{mode:?}"
        );
    }
}

#[test]
fn an_emptied_directory_gets_a_pair_on_the_next_adv() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), mode);
        for n in files(keys.dir()) {
            std::fs::remove_file(keys.dir().join(n)).unwrap();
        }
        let advertised = adv_keys(tangd.addr);
        assert_eq!(advertised.len(), 2);
        assert_eq!(advertised, active_thumbprints(keys.dir()), "{mode:?}");
        assert_eq!(files(keys.dir()).len(), 2);

        // The directory replaced by a new, empty one (tang's own test does this).
        std::fs::remove_dir_all(keys.dir()).unwrap();
        std::fs::create_dir(keys.dir()).unwrap();
        let advertised = adv_keys(tangd.addr);
        assert_eq!(advertised, active_thumbprints(keys.dir()), "{mode:?}");

        // Every key hidden: after a moment for a rotation to finish, a new pair.
        hide_active(keys.dir());
        let again = adv_keys(tangd.addr);
        assert_eq!(again, active_thumbprints(keys.dir()), "{mode:?}");
        assert_ne!(again, advertised);
        assert_eq!(files(keys.dir()).len(), 4);
        assert!(
            tangd.wait_log("had no active key; created", Duration::from_secs(2)),
            "{}",
            tangd.log()
        );
    }
}

#[test]
fn no_create_leaves_an_empty_directory_empty() {
    let keys = Scratch::new("no-create");
    let tangd = Tangd::start(keys.dir(), &["--no-create"]);
    assert_eq!(get(tangd.addr, "/adv").status, 500);
    assert!(files(keys.dir()).is_empty());
    tangd_cmd(&["keygen", keys.dir().to_str().unwrap()]);
    assert_eq!(adv_keys(tangd.addr), active_thumbprints(keys.dir()));
}

#[test]
fn fifty_two_pairs_are_advertised_at_once() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), mode);
        assert_eq!(adv_keys(tangd.addr).len(), 2);
        for _ in 0..52 {
            let [sig, exc] = keydir::generate_pair();
            keydir::write_key(keys.dir(), &sig).unwrap();
            keydir::write_key(keys.dir(), &exc).unwrap();
        }
        let r = get(tangd.addr, "/adv");
        assert_eq!(r.status, 200);
        assert_eq!(
            verify_advertisement(&r.body).unwrap().keys.len(),
            106,
            "{mode:?}"
        );
        assert_eq!(signatures(&r.body), 53);
    }
}

/// While keys are rotated by hand, step by step (hide, then the signing key,
/// then the exchange key, as Debian's tangd-rotate-keys does), every
/// advertisement served is complete.
#[test]
fn a_rotation_half_done_is_never_advertised() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), mode);
        let addr = tangd.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        let client = std::thread::spawn(move || {
            let mut bad = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                if let Err(e) = complete(addr) {
                    bad.push(e);
                }
                served2.fetch_add(1, Ordering::SeqCst);
            }
            bad
        });
        for _ in 0..5 {
            hide_active(keys.dir());
            std::thread::sleep(Duration::from_millis(30));
            let [sig, exc] = keydir::generate_pair();
            keydir::write_key(keys.dir(), &sig).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            keydir::write_key(keys.dir(), &exc).unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
        stop.store(true, Ordering::SeqCst);
        let bad = client.join().unwrap();
        assert!(bad.is_empty(), "{mode:?}: {bad:?}\n{}", tangd.log());
        assert!(served.load(Ordering::SeqCst) > 5);
        assert_eq!(complete(addr).unwrap(), active_thumbprints(keys.dir()));
        assert_eq!(files(keys.dir()).len(), 12, "no pair of our own was added");
    }
}

/// A rotation that stops half way keeps the previous keys advertised while
/// they are all still there (hidden keys still recover); once one is gone,
/// nothing is advertised, and a deleted key never answers /rec.
#[test]
fn a_rotation_stuck_half_way_keeps_the_previous_keys() {
    for mode in MODES {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), mode);
        let before = adv_keys(tangd.addr);
        hide_active(keys.dir());
        let [sig, exc] = keydir::generate_pair();
        keydir::write_key(keys.dir(), &sig).unwrap();
        let t = Instant::now();
        assert_eq!(adv_keys(tangd.addr), before, "{mode:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            tangd.wait_log(
                "still advertising the previous keys",
                Duration::from_secs(2)
            ),
            "{}",
            tangd.log()
        );
        assert_eq!(request(tangd.addr, &rec_request()).unwrap().status, 200);

        std::fs::remove_file(keys.dir().join(format!(".{ECMR_KID}.jwk"))).unwrap();
        assert_eq!(get(tangd.addr, "/adv").status, 500, "{mode:?}");
        assert_ne!(request(tangd.addr, &rec_request()).unwrap().status, 200);

        keydir::write_key(keys.dir(), &exc).unwrap();
        assert_eq!(
            complete(tangd.addr).unwrap(),
            active_thumbprints(keys.dir()),
            "{mode:?}"
        );
    }
}

/// Many requests right after one change: one of them reads the directory,
/// the others wait for it and take what it read.
#[test]
fn many_requests_after_a_change_read_the_directory_once() {
    let keys = copy_keys("tang-db");
    let staging = Scratch::new("staging");
    let tangd = Tangd::start(keys.dir(), &[]);
    let reloads = || tangd.log().matches("keys: reloaded").count();
    assert_eq!(reloads(), 1, "{}", tangd.log());
    let [_, exc] = keydir::generate_pair();
    let name = keydir::write_key(staging.dir(), &exc).unwrap();
    // One rename: one change, whole.
    std::fs::rename(staging.dir().join(&name), keys.dir().join(&name)).unwrap();
    let n = 32;
    let barrier = Arc::new(Barrier::new(n));
    let addr = tangd.addr;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                adv_keys(addr).len()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 3);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(reloads(), 2, "{}", tangd.log());
}

/// A key directory from a Kubernetes Secret: `NAME.jwk -> ..data/NAME.jwk`,
/// `..data -> ..TIMESTAMP`, updated by swapping `..data` atomically. The key
/// files keep their names and the directory its entries.
#[test]
fn a_kubernetes_secret_swap_counts_from_the_next_request() {
    for mode in MODES {
        let keys = Scratch::new("k8s");
        let d = keys.dir();
        let generation = |stamp: &str| {
            let g = d.join(stamp);
            std::fs::create_dir(&g).unwrap();
            let [sig, exc] = keydir::generate_pair();
            keydir::write_key_as(&g, &sig, "sig").unwrap();
            keydir::write_key_as(&g, &exc, "exc").unwrap();
            exc.thumbprint(latchkey_proto::jwk::ThpHash::S256)
        };
        let old_kid = generation("..2024_01_01_00_00_00.1");
        std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", d.join("..data")).unwrap();
        for n in ["sig.jwk", "exc.jwk"] {
            std::os::unix::fs::symlink(format!("..data/{n}"), d.join(n)).unwrap();
        }
        let tangd = Tangd::start(d, mode);
        let first = adv_keys(tangd.addr);
        assert!(first.contains(&old_kid));

        let new_kid = generation("..2024_01_02_00_00_00.2");
        std::os::unix::fs::symlink("..2024_01_02_00_00_00.2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        let second = adv_keys(tangd.addr);
        assert!(second.contains(&new_kid), "{mode:?}");
        assert!(!second.contains(&old_kid), "{mode:?}");
        // The old generation is still on disk, but no longer in the directory.
        let body =
            br#"{"alg":"ECMR","crv":"P-521","key_ops":["deriveKey"],"kty":"EC","x":"AQ","y":"AQ"}"#;
        assert_eq!(
            post(tangd.addr, &format!("/rec/{old_kid}"), body).status,
            404
        );
        std::fs::remove_dir_all(d.join("..2024_01_01_00_00_00.1")).unwrap();
        assert_eq!(adv_keys(tangd.addr), second);
    }
}
