//! The key directory: files we write, `keygen`/`rotate`/`show-keys`, creation
//! on start, and reloading while serving.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::*;
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::jws::verify_advertisement;

/// Every file is what `jose jwk gen` + tangd-keygen write: named by the S256
/// thumbprint, mode 0440, sorted compact JSON and a newline.
fn assert_tang_key_file(dir: &Path, name: &str) -> Jwk {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let jwk = Jwk::parse(text.as_bytes()).unwrap();
    let stem = name.trim_start_matches('.').trim_end_matches(".jwk");
    assert_eq!(stem, jwk.thumbprint(ThpHash::S256), "{name}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        text,
        format!("{}\n", serde_json::to_string(&value).unwrap()),
        "{name} not sorted compact + newline"
    );
    assert!(jwk.d().is_some(), "{name} has no private key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o440,
        "{name}"
    );
    jwk
}

#[test]
fn keygen_writes_tang_key_files() {
    let dir = Scratch::new("keygen");
    let keys = dir.dir().join("db");
    tangd_cmd(&["keygen", keys.to_str().unwrap()]);
    let names = files(&keys);
    assert_eq!(names.len(), 2, "{names:?}");
    let mut algs: Vec<(String, Vec<String>)> = names
        .iter()
        .map(|n| {
            let k = assert_tang_key_file(&keys, n);
            (k.alg().unwrap().to_owned(), k.key_ops().unwrap())
        })
        .collect();
    algs.sort();
    assert_eq!(
        algs,
        vec![
            ("ECMR".into(), vec!["deriveKey".into()]),
            ("ES512".into(), vec!["sign".into(), "verify".into()])
        ]
    );
    // show-keys names the signing key.
    let shown = tangd_cmd(&["show-keys", keys.to_str().unwrap()]);
    let sig = names
        .iter()
        .find(|n| shown.trim() == n.trim_end_matches(".jwk"))
        .expect("signing key shown");
    assert!(sig.ends_with(".jwk"));
}

#[test]
fn show_keys_of_tangs_directories() {
    let keys = copy_keys("tang-db");
    assert_eq!(
        tangd_cmd(&["show-keys", keys.dir().to_str().unwrap()]),
        format!("{SIG_THP}\n")
    );
    let rot = copy_keys("tang-db-rot");
    assert_eq!(
        tangd_cmd(&["show-keys", rot.dir().to_str().unwrap()]),
        "FGfyUvNrPJH7QZSKfNA02DRjLlAG-pdoW9RIhO7LahI\n"
    );
}

#[test]
fn rotate_hides_the_old_pair_behind_a_new_one() {
    let keys = copy_keys("tang-db");
    let before = files(keys.dir());
    let out = tangd_cmd(&["rotate", keys.dir().to_str().unwrap()]);
    let after = files(keys.dir());
    assert_eq!(after.len(), 4, "{after:?}\n{out}");
    for old in &before {
        assert!(
            after.contains(&format!(".{old}")),
            "{old} not hidden: {after:?}"
        );
    }
    let new: Vec<&String> = after.iter().filter(|n| !n.starts_with('.')).collect();
    assert_eq!(new.len(), 2);
    for n in new {
        assert_tang_key_file(keys.dir(), n);
    }
    // The hidden ones are untouched tang files.
    assert_eq!(
        std::fs::read(keys.dir().join(format!(".{SIG_THP}.jwk"))).unwrap(),
        std::fs::read(sample(&format!("tang-db/tang-db/{SIG_THP}.jwk"))).unwrap()
    );
    // No temporary file is left behind.
    assert!(after.iter().all(|n| n.ends_with(".jwk")), "{after:?}");
}

#[test]
fn empty_directory_gets_a_pair_at_start() {
    let dir = Scratch::new("empty");
    let tangd = Tangd::start(dir.dir(), &[]);
    let names = files(dir.dir());
    assert_eq!(names.len(), 2, "{names:?}");
    for n in &names {
        assert_tang_key_file(dir.dir(), n);
    }
    assert!(
        tangd.log().contains("had no active key; created"),
        "{}",
        tangd.log()
    );
    let adv = verify_advertisement(&get(tangd.addr, "/adv").body).unwrap();
    assert_eq!(adv.keys.len(), 2);
}

#[test]
fn auto_created_tang_keys_are_read() {
    // tangd's own files: insertion-ordered JSON with spaces, no newline.
    let keys = copy_keys("tang-db-auto");
    let tangd = Tangd::start(keys.dir(), &[]);
    let adv = verify_advertisement(&get(tangd.addr, "/adv").body).unwrap();
    assert_eq!(adv.keys.len(), 2);
    assert_eq!(files(keys.dir()).len(), 2, "nothing created");
}

#[test]
fn add_hide_and_delete_count_from_the_next_request() {
    let (keys, tangd) = Tangd::sample();
    let a = tangd.addr;
    let mut original = vec![SIG_THP.to_owned(), ECMR_KID.to_owned()];
    original.sort();
    assert_eq!(adv_keys(a), original);
    let rec = std::fs::read(sample("tang-http/11-post-rec-ok.req")).unwrap();
    let rec_reply = std::fs::read(sample("tang-http/11-post-rec-ok.resp")).unwrap();

    // Add: a second pair shows up, and both signing keys sign.
    let other = Scratch::new("other");
    tangd_cmd(&["keygen", other.dir().to_str().unwrap()]);
    for n in files(other.dir()) {
        std::fs::copy(other.dir().join(&n), keys.dir().join(&n)).unwrap();
    }
    assert_eq!(adv_keys(a).len(), 4);
    let body = get(a, "/adv").body;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["signatures"].as_array().map(Vec::len),
        Some(2),
        "general JWS with 2 signers"
    );

    // Hide the original pair: gone from /adv, still good for /rec and /adv/{thp}.
    for k in &original {
        std::fs::rename(
            keys.dir().join(format!("{k}.jwk")),
            keys.dir().join(format!(".{k}.jwk")),
        )
        .unwrap();
    }
    let now = adv_keys(a);
    assert!(now.iter().all(|k| !original.contains(k)), "{now:?}");
    assert_eq!(now.len(), 2);
    assert_eq!(
        request(a, &rec).unwrap().raw,
        rec_reply,
        "hidden key still recovers"
    );
    let by_hidden = get(a, &format!("/adv/{SIG_THP}"));
    assert_eq!(by_hidden.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&by_hidden.body).unwrap();
    assert_eq!(
        v["signatures"].as_array().map(Vec::len),
        Some(2),
        "signed by the active and the named key"
    );
    assert_eq!(verify_advertisement(&by_hidden.body).unwrap().keys.len(), 2);

    // Delete the hidden exchange key: /rec with its kid is now 404.
    std::fs::remove_file(keys.dir().join(format!(".{ECMR_KID}.jwk"))).unwrap();
    assert_eq!(request(a, &rec).unwrap().status, 404);
    assert!(tangd.log().contains("keys: serving"), "{}", tangd.log());
}

#[test]
fn broken_files_are_skipped_and_logged() {
    let keys = copy_keys("tang-db");
    std::fs::write(keys.dir().join("junk.jwk"), b"{not json").unwrap();
    std::fs::write(keys.dir().join("notes.txt"), b"ignored").unwrap();
    let tangd = Tangd::start(keys.dir(), &[]);
    assert_eq!(adv_keys(tangd.addr).len(), 2);
    assert!(tangd.log().contains("junk.jwk"), "{}", tangd.log());
    assert!(!tangd.log().contains("notes.txt"));
}

#[test]
fn help_names_every_command() {
    let out = Command::new(TANGD).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "keygen", "rotate", "retire", "show-keys"] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}
