//! `tangd retire`: deleting hidden keys once every client has moved on, and
//! never an advertised one. A running server stops answering for a retired
//! key from the next request.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use latchkey_proto::jwk::{Jwk, ThpHash};

fn retire(args: &[&str]) -> (bool, String) {
    let out = Command::new(TANGD)
        .arg("retire")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn hidden(dir: &std::path::Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn thumbprint(path: &std::path::Path, hash: ThpHash) -> String {
    Jwk::parse(&std::fs::read(path).unwrap())
        .unwrap()
        .thumbprint(hash)
}

/// Without a selector every hidden key goes, the advertised ones stay, and a
/// running tangd answers 404 for the retired exchange key at once.
#[test]
fn retire_deletes_every_hidden_key_and_nothing_else() {
    let keys = copy_keys("tang-db");
    let dir = keys.dir().to_str().unwrap();
    let tangd = Tangd::start(keys.dir(), &[]);
    tangd_cmd(&["rotate", dir]);
    let rec = std::fs::read(sample("tang-http/11-post-rec-ok.req")).unwrap();
    assert_eq!(request(tangd.addr, &rec).unwrap().status, 200);
    let advertised = adv_keys(tangd.addr);
    assert_eq!(hidden(keys.dir()).len(), 2);

    let (ok, out) = retire(&[dir]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("deleted {dir}/.{ECMR_KID}.jwk")),
        "{out}"
    );
    assert!(hidden(keys.dir()).is_empty());
    assert_eq!(active_thumbprints(keys.dir()), advertised);
    assert_eq!(request(tangd.addr, &rec).unwrap().status, 404);
    assert_eq!(get(tangd.addr, &format!("/adv/{SIG_THP}")).status, 404);
    assert_eq!(adv_keys(tangd.addr), advertised);

    let (ok, out) = retire(&[dir]);
    assert!(ok && out.contains("nothing to retire"), "{out}");
}

/// Keys named by thumbprint, in any hash tang accepts; an advertised or an
/// unknown one is refused by name, and then nothing is deleted.
#[test]
fn retire_by_thumbprint_refuses_advertised_and_unknown_keys() {
    let keys = copy_keys("tang-db");
    let d = keys.dir();
    let dir = d.to_str().unwrap();
    tangd_cmd(&["rotate", dir]);
    let active_sig = files(d)
        .into_iter()
        .find(|n| {
            !n.starts_with('.')
                && Jwk::parse(&std::fs::read(d.join(n)).unwrap())
                    .unwrap()
                    .allows("sign")
        })
        .unwrap();
    let active_s1 = thumbprint(&d.join(&active_sig), ThpHash::S1);

    let (ok, out) = retire(&[dir, &active_s1]);
    assert!(!ok);
    assert!(
        out.contains(&format!("{active_s1} is advertised ({dir}/{active_sig})")),
        "{out}"
    );
    let (ok, out) = retire(&[dir, ECMR_KID, "no-such-key"]);
    assert!(!ok);
    assert!(
        out.contains("no key in") && out.contains("no-such-key"),
        "{out}"
    );
    assert_eq!(hidden(d).len(), 2, "nothing was deleted");

    // The hidden signing key by its SHA-512 thumbprint.
    let s512 = thumbprint(&d.join(format!(".{SIG_THP}.jwk")), ThpHash::S512);
    let (ok, out) = retire(&[dir, &s512]);
    assert!(ok, "{out}");
    assert_eq!(hidden(d), vec![format!(".{ECMR_KID}.jwk")]);
}

/// `--older-than DAYS` judges by when the key was hidden.
#[test]
fn retire_older_than_keeps_recently_hidden_keys() {
    let keys = copy_keys("tang-db");
    let d = keys.dir();
    let dir = d.to_str().unwrap();
    std::fs::rename(
        d.join(format!("{SIG_THP}.jwk")),
        d.join(format!(".{SIG_THP}.jwk")),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::rename(
        d.join(format!("{ECMR_KID}.jwk")),
        d.join(format!(".{ECMR_KID}.jwk")),
    )
    .unwrap();
    // 0.00001 days: 0.864 s.
    let (ok, out) = retire(&[dir, "--older-than", "0.00001"]);
    assert!(ok, "{out}");
    assert_eq!(hidden(d), vec![format!(".{ECMR_KID}.jwk")], "{out}");
    assert!(out.contains("kept") && out.contains(ECMR_KID), "{out}");

    let (ok, out) = retire(&[dir, "--older-than", "1", ECMR_KID]);
    assert!(!ok && out.contains("not both"), "{out}");
    let (ok, out) = retire(&[dir, "--older-than", "-1"]);
    assert!(!ok && out.contains("--older-than"), "{out}");
}
