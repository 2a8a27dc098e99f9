//! Session against images made by the real cryptsetup, with the null pin (no
//! network), checked with cryptsetup, luksmeta and clevis's own readers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use latchkey_enroll::inventory::{self, Problem, Store};
use latchkey_enroll::{Pins, Request, Session, Settled};
use latchkey_proto::Secret;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{self, Decryption, EncryptIo, Status};
use latchkey_testkit::{
    CHEAP_PBKDF, Scratch, clevis_luks_bind, have, luks_add_key, luks_format, run_ok, run_with,
};

/// The null pin, offline: what clevis's null pin does.
struct Null;

impl EncryptIo for Null {
    fn fetch_adv(&mut self, _: &str, _: Option<&str>) -> Result<Vec<u8>, String> {
        Err("no network here".into())
    }
    fn read_file(&mut self, p: &str) -> Result<Vec<u8>, String> {
        Err(format!("no file {p}"))
    }
    fn trust(&mut self, _: &str, _: &[String]) -> bool {
        false
    }
}

impl Pins for Null {
    fn encrypt(&mut self, pin: &str, config: &str, secret: &Secret) -> Result<String, String> {
        let mut rng = latchkey_sys::rng::os();
        pin::encrypt_json(pin, config, secret.expose(), true, self, &mut rng)
            .map_err(|e| e.to_string())
    }
    fn decrypt(&mut self, jwe: &str) -> Result<Secret, String> {
        let mut rng = latchkey_sys::rng::os();
        let jwe = Jwe::parse(jwe).map_err(|e| e.to_string())?;
        let plan = Decryption::new(&jwe, &mut rng).map_err(|e| e.to_string())?;
        match plan.status() {
            Status::Done(s) => Ok(s),
            Status::Failed(e) => Err(e.to_string()),
            Status::Pending => Err("needs a server".into()),
        }
    }
    fn accept_unverified(&mut self, _: &str, _: &str, why: &str) -> Result<(), String> {
        Err(why.to_owned())
    }
}

fn tools() -> bool {
    have(&[
        "/usr/sbin/cryptsetup",
        "/usr/bin/luksmeta",
        "/usr/bin/clevis",
    ])
}

const PASS: &[u8] = b"existing passphrase";

/// A LUKS image with `PASS` in keyslot 0: (image, key file).
fn image(s: &Scratch, kind: &str) -> (PathBuf, PathBuf) {
    let args = [&["--type", kind][..], &CHEAP_PBKDF].concat();
    luks_format(s, &format!("{kind}.img"), PASS, &args)
}

fn clevis_list(img: &Path) -> String {
    let out = run_with(
        Command::new("clevis").args(["luks", "list", "-d"]).arg(img),
        b"",
        Duration::from_secs(30),
    );
    String::from_utf8(out.stdout).unwrap()
}

fn opens(img: &Path, slot: u32, pass: &[u8]) -> bool {
    run_with(
        Command::new("cryptsetup")
            .args([
                "open",
                "--test-passphrase",
                "--key-slot",
                &slot.to_string(),
                "--key-file",
                "-",
            ])
            .arg(img),
        pass,
        Duration::from_secs(30),
    )
    .status
    .success()
}

fn passphrase_of(img: &Path, slot: u32) -> Secret {
    let mut f = std::fs::File::open(img).unwrap();
    let hdr = latchkey_luks::Header::read(&mut f).unwrap();
    let (_, jwe) = inventory::binding_of(&hdr, &mut f, slot).expect("bound");
    Null.decrypt(&jwe).unwrap()
}

fn session_roundtrip(kind: &str) {
    let s = Scratch::new(&format!("enroll-{kind}"));
    let (img, _) = image(&s, kind);
    let mut pins = Null;
    let mut sess = Session::open(&img, &mut pins).unwrap();
    assert_eq!(sess.settle().unwrap(), vec![]);
    sess.unlock(&Secret::from_slice(PASS)).unwrap();
    let req = Request {
        pin: "null".into(),
        config: "{}".into(),
        init_luksmeta: true,
        ..Request::default()
    };
    let b = sess.bind(&req).unwrap();
    assert_eq!(b.keyslot, 1);
    assert!(b.verified);
    let second = sess
        .bind(&Request {
            pin: "sss".into(),
            config: r#"{"t":1,"pins":{"null":[{},{}]}}"#.into(),
            keyslot: Some(5),
            ..req.clone()
        })
        .unwrap();
    assert_eq!(second.keyslot, 5);
    drop(sess);

    assert_eq!(
        clevis_list(&img),
        "1: unknown pin 'null'\n5: sss '{\"t\":1,\"pins\":{}}'\n"
    );
    let p1 = passphrase_of(&img, 1);
    assert_eq!(p1.len(), 54);
    assert!(opens(&img, 1, p1.expose()));

    // Replace slot 1's binding: a new passphrase in the same keyslot, the old one gone.
    let mut pins = Null;
    let mut sess = Session::open(&img, &mut pins).unwrap();
    sess.unlock(&p1).unwrap();
    let r = sess.rebind(1, "null", "{}").unwrap();
    assert_eq!(r.keyslot, 1);
    drop(sess);
    let p1b = passphrase_of(&img, 1);
    assert!(!p1b.ct_eq(&p1));
    assert!(opens(&img, 1, p1b.expose()));
    assert!(!opens(&img, 1, p1.expose()));
    let mut f = std::fs::File::open(&img).unwrap();
    let hdr = latchkey_luks::Header::read(&mut f).unwrap();
    let inv = inventory::inventory(&hdr, &mut f);
    assert_eq!(inv.active, vec![0, 1, 5]);
    assert_eq!(inv.problems, vec![]);
    if kind == "luks2" {
        assert_eq!(inv.bindings[0].store, Store::Token(0));
    }

    let mut pins = Null;
    let mut sess = Session::open(&img, &mut pins).unwrap();
    sess.unbind(5, false).unwrap();
    drop(sess);
    assert_eq!(clevis_list(&img), "1: unknown pin 'null'\n");
    assert!(opens(&img, 0, PASS));
}

#[test]
fn luks2_bind_rebind_unbind() {
    if tools() {
        session_roundtrip("luks2");
    }
}

#[test]
fn luks1_bind_rebind_unbind() {
    if tools() {
        session_roundtrip("luks1");
    }
}

#[test]
fn settle_removes_what_clevis_leaves() {
    if !tools() {
        return;
    }
    let s = Scratch::new("enroll-settle");
    let (img, key) = image(&s, "luks2");
    // An interrupted clevis unbind: the keyslot is gone, its token names nothing.
    luks_add_key(&img, &key, &key);
    let token = r#"{"type":"clevis","keyslots":["1"],"jwe":{"ciphertext":"x","encrypted_key":"","iv":"i","protected":"p","tag":"t"}}"#;
    run_with(
        Command::new("cryptsetup")
            .args(["token", "import"])
            .arg(&img),
        token.as_bytes(),
        Duration::from_secs(30),
    );
    run_ok(
        Command::new("cryptsetup")
            .args(["luksKillSlot", "-q"])
            .arg(&img)
            .arg("1"),
    );
    let mut f = std::fs::File::open(&img).unwrap();
    let hdr = latchkey_luks::Header::read(&mut f).unwrap();
    assert_eq!(
        inventory::inventory(&hdr, &mut f).problems,
        vec![Problem::OrphanToken { token: 0 }]
    );
    let mut pins = Null;
    let mut sess = Session::open(&img, &mut pins).unwrap();
    assert_eq!(sess.settle().unwrap(), vec![Settled::OrphanTokenRemoved(0)]);
    assert_eq!(sess.header().unwrap().tokens().len(), 0);
}

/// Hands out one JWE (made by clevis) as the encryption of any passphrase. It
/// cannot decrypt it, so the session writes it unverified.
struct Given(String);

impl Pins for Given {
    fn encrypt(&mut self, _: &str, _: &str, _: &Secret) -> Result<String, String> {
        Ok(self.0.clone())
    }
    fn decrypt(&mut self, _: &str) -> Result<Secret, String> {
        Err("not the JWE's passphrase".into())
    }
    fn accept_unverified(&mut self, _: &str, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

fn token_export(img: &Path, id: u32) -> Vec<u8> {
    run_ok(
        Command::new("cryptsetup")
            .args(["token", "export", "--token-id", &id.to_string()])
            .arg(img),
    )
    .stdout
}

/// The token of a binding is stored byte for byte as `clevis luks bind` stores
/// it (`cryptsetup token import` keeps the members in the order given): on the
/// same image, ours of clevis's JWE beside clevis's own.
#[test]
fn luks2_token_is_stored_as_clevis_stores_it() {
    if !tools() {
        return;
    }
    let s = Scratch::new("enroll-token");
    let (img, key) = image(&s, "luks2");
    clevis_luks_bind(&img, &key, "null", "{}");
    let mut f = std::fs::File::open(&img).unwrap();
    let hdr = latchkey_luks::Header::read(&mut f).unwrap();
    let (store, jwe) = inventory::binding_of(&hdr, &mut f, 1).expect("clevis bound keyslot 1");
    assert_eq!(store, Store::Token(0));

    let mut pins = Given(jwe);
    let mut sess = Session::open(&img, &mut pins).unwrap();
    sess.unlock(&Secret::from_slice(PASS)).unwrap();
    let b = sess
        .bind(&Request {
            pin: "null".into(),
            config: "{}".into(),
            ..Request::default()
        })
        .unwrap();
    assert_eq!(
        (b.keyslot, b.store, b.verified),
        (2, Store::Token(1), false)
    );
    drop(sess);

    let theirs = String::from_utf8(token_export(&img, 0)).unwrap();
    let ours = String::from_utf8(token_export(&img, 1)).unwrap();
    assert!(
        theirs.starts_with(r#"{"type":"clevis","keyslots":["1"],"jwe":{"ciphertext":""#),
        "{theirs}"
    );
    assert_eq!(
        ours,
        theirs.replacen(r#""keyslots":["1"]"#, r#""keyslots":["2"]"#, 1)
    );
}
