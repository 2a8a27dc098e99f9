//! latchkey-tpm2 against swtpm, with tpm2-tools as the reference: templates, sealing and
//! unsealing, PCR policies, a TPM that needs starting, and TPMs that misbehave.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use latchkey_proto::pin::{SealRequest, Tpm2Binding, Unseal};
use latchkey_proto::secret::Secret;
use latchkey_testkit::{SWTPM_TOOLS, Scratch, Swtpm, have, run_ok};
use latchkey_tpm2::{Error, Tcti, Tpm, Unsealer, seal, unseal};

const TIMEOUT: Duration = Duration::from_secs(30);

fn open(sw: &Swtpm) -> Tpm {
    Tpm::open(&Tcti::parse(&sw.tcti).unwrap(), TIMEOUT).unwrap()
}

fn request(pcr_bank: Option<&str>, pcr_ids: &[u8]) -> SealRequest {
    SealRequest {
        hash: "sha256".into(),
        key: "ecc".into(),
        pcr_bank: pcr_bank.map(String::from),
        pcr_ids: pcr_ids.to_vec(),
        pcr_digest: None,
        data: Secret::from_slice(b"{\"kty\":\"oct\"}\n"),
    }
}

fn binding(req: &SealRequest, sealed: &latchkey_proto::pin::Sealed) -> Tpm2Binding {
    Tpm2Binding {
        hash: req.hash.clone(),
        key: req.key.clone(),
        pcr_bank: sealed.pcr_bank.clone(),
        pcr_ids: req.pcr_ids.clone(),
        jwk_pub: sealed.jwk_pub.clone(),
        jwk_priv: sealed.jwk_priv.clone(),
    }
}

/// Our primary for each `key`/`hash` is tpm2-tools' (same public area, so same name and
/// same key): otherwise clevis's sealed objects would not load under it.
#[test]
fn primary_templates_match_tpm2_createprimary() {
    if !have(&SWTPM_TOOLS) {
        return;
    }
    let sw = Swtpm::start();
    let dir = Scratch::new("tpl");
    let mut tpm = open(&sw);
    for (hash, key) in [
        ("sha256", "ecc"),
        ("sha256", "rsa"),
        ("sha1", "ecc256"),
        ("sha384", "ecc384"),
        ("sha512", "ecc_nist_p256"),
        ("sha256", "aes"),
        ("sha256", "aes256"),
    ] {
        let ctx = dir.path("p.ctx");
        run_ok(
            sw.command("tpm2_createprimary")
                .args(["-Q", "-C", "o", "-g", hash, "-G", key, "-c"])
                .arg(&ctx),
        );
        let (pubf, namef) = (dir.path("p.pub"), dir.path("p.name"));
        run_ok(
            sw.command("tpm2_readpublic")
                .arg("-Q")
                .arg("-c")
                .arg(&ctx)
                .arg("-o")
                .arg(&pubf)
                .arg("-n")
                .arg(&namef),
        );
        run_ok(sw.command("tpm2_flushcontext").arg("-t"));
        let (public, name) = tpm.primary(key, hash).unwrap();
        assert_eq!(
            public,
            std::fs::read(&pubf).unwrap(),
            "{hash} {key}: public area"
        );
        assert_eq!(name, std::fs::read(&namef).unwrap(), "{hash} {key}: name");
    }
}

#[test]
fn seal_unseal_with_and_without_pcrs_and_a_changed_pcr() {
    if !have(&SWTPM_TOOLS) {
        return;
    }
    let sw = Swtpm::start();
    let mut tpm = open(&sw);

    let plain = request(None, &[]);
    let sealed = seal(&mut tpm, &plain).unwrap();
    assert_eq!(sealed.pcr_bank, None);
    let b = binding(&plain, &sealed);
    assert_eq!(
        unseal(&mut tpm, &b).unwrap().as_slice(),
        plain.data.expose()
    );

    // No bank given: the TPM's first active one, as clevis 21 picks it (swtpm: sha1).
    let bound = request(None, &[0, 7]);
    let sealed = seal(&mut tpm, &bound).unwrap();
    assert_eq!(sealed.pcr_bank.as_deref(), Some("sha1"));
    let b7 = binding(&bound, &sealed);
    assert_eq!(
        unseal(&mut tpm, &b7).unwrap().as_slice(),
        bound.data.expose()
    );

    // A sha1-named object with a sha256 PCR policy (which clevis 19 cannot unseal).
    let mut sha1 = request(Some("sha256"), &[7]);
    sha1.hash = "sha1".into();
    let sealed = seal(&mut tpm, &sha1).unwrap();
    let b_sha1 = binding(&sha1, &sealed);
    assert_eq!(
        unseal(&mut tpm, &b_sha1).unwrap().as_slice(),
        sha1.data.expose()
    );

    sw.extend_pcr("sha1", 7);
    let e = unseal(&mut tpm, &b7).unwrap_err();
    assert!(matches!(e, Error::PcrMismatch { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "PCR sha1:0,7 policy does not match: the PCR values differ from those the key was sealed to"
    );
    // Only the bank that changed matters; the unbound object is unaffected.
    assert!(unseal(&mut tpm, &b_sha1).is_ok());
    assert!(unseal(&mut tpm, &b).is_ok());
    sw.extend_pcr("sha256", 7);
    assert!(matches!(
        unseal(&mut tpm, &b_sha1),
        Err(Error::PcrMismatch { .. })
    ));

    // Sealing to given PCR values (pcr_digest): the current PCR 7 after the extends.
    let values = tpm
        .pcr_values(
            &latchkey_tpm2::alg::PcrSelection::new(latchkey_tpm2::alg::Hash::Sha256, &[7]).unwrap(),
        )
        .unwrap();
    let mut given = request(Some("sha256"), &[7]);
    given.pcr_digest = Some(values);
    let sealed = seal(&mut tpm, &given).unwrap();
    assert!(unseal(&mut tpm, &binding(&given, &sealed)).is_ok());
    given.pcr_digest = Some(vec![0; 31]);
    assert!(
        seal(&mut tpm, &given)
            .unwrap_err()
            .to_string()
            .contains("pcr_digest is 31 bytes")
    );

    // Every handle was flushed: tpm2-tools finds no transient object or session.
    let out = run_ok(sw.command("tpm2_getcap").arg("handles-transient"));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run_ok(sw.command("tpm2_getcap").arg("handles-loaded-session"));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A blob from another TPM (or before a TPM clear) is named as such.
#[test]
fn a_sealed_key_from_another_tpm() {
    if !have(&SWTPM_TOOLS) {
        return;
    }
    let (a, b) = (Swtpm::start(), Swtpm::start());
    let req = request(None, &[]);
    let sealed = seal(&mut open(&a), &req).unwrap();
    let e = unseal(&mut open(&b), &binding(&req, &sealed)).unwrap_err();
    assert!(matches!(e, Error::ForeignObject(_)), "{e}");
}

/// swtpm without `not-need-init,startup-clear`: powered on over the control channel,
/// then TPM2_Startup, as tpm2-tss's swtpm TCTI user would have to.
#[test]
fn a_cold_swtpm_is_powered_on_and_started() {
    if !have(&SWTPM_TOOLS) {
        return;
    }
    let sw = Swtpm::start_cold();
    let (public, _) = open(&sw).primary("ecc", "sha256").unwrap();
    assert_eq!(&public[2..4], [0x00, 0x23]);
}

/// A TPM that lies about sizes, sends too little, or never answers: a bounded error,
/// within the command timeout.
#[test]
fn hostile_tpm_responses_are_bounded() {
    for (reply, expect) in [
        // A declared size of 1 MiB.
        (
            &b"\x80\x01\x00\x10\x00\x00\x00\x00\x00\x00"[..],
            "declared size 1048576",
        ),
        // Ten bytes short of what it declares, then EOF.
        (
            &b"\x80\x01\x00\x00\x00\x14\x00\x00\x00\x00"[..],
            "unexpected end of file",
        ),
        // Nothing at all, connection held open.
        (&b""[..], "no answer to TPM2_CreatePrimary within 500ms"),
    ] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reply = reply.to_vec();
        let server = thread::spawn(move || {
            // The probe connection of Tpm::open, then the command.
            for mut s in l.incoming().take(2).flatten() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&reply);
                if reply.is_empty() {
                    // Hold the connection until the client gives up on it.
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
        });
        let tcti = Tcti::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
        let mut tpm = Tpm::open(&tcti, Duration::from_millis(500)).unwrap();
        let start = Instant::now();
        let e = tpm.primary("ecc", "sha256").unwrap_err().to_string();
        assert!(e.contains(expect), "{e}");
        // The 500 ms command timeout holds (a generous bound: this checks that the
        // timeout applies, not how fast anything is).
        assert!(start.elapsed() < Duration::from_secs(20));
        server.join().unwrap();
    }
}

/// With no TPM, the first binding says so and later ones repeat it without trying again.
#[test]
fn a_missing_tpm_is_found_once() {
    let dir = Scratch::new("notpm");
    let u = Unsealer::new(Tcti::Device(Some(dir.path("tpmrm0"))), TIMEOUT);
    let b = common::hollow_binding();
    let deadline = Instant::now() + TIMEOUT;
    let e = u.unseal(&b, deadline, &Default::default()).err().unwrap();
    assert!(e.starts_with("no TPM device:"), "{e}");
    // The device appearing later does not matter: the verdict stands for this unlock.
    std::fs::write(dir.path("tpmrm0"), b"").unwrap();
    assert_eq!(
        u.unseal(&b, deadline, &Default::default()).err().unwrap(),
        e
    );
}

/// A TPM that never answers costs its command timeout once: later bindings of the same
/// run get the verdict at once instead of waiting again.
#[test]
fn a_tpm_that_never_answers_is_waited_for_once() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        // The probe connection of Tpm::open, then CreatePrimary, held unanswered until
        // the client gives up on it.
        for mut s in l.incoming().take(2).flatten() {
            let _ = s.read_to_end(&mut Vec::new());
        }
    });
    let tcti = Tcti::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
    let u = Unsealer::new(tcti, Duration::from_millis(500));
    let b = common::hollow_binding();
    let deadline = Instant::now() + TIMEOUT;
    let e = u.unseal(&b, deadline, &Default::default()).err().unwrap();
    assert!(
        e.ends_with("no answer to TPM2_CreatePrimary within 500ms"),
        "{e}"
    );
    server.join().unwrap();
    // Nobody listens any more: a second try would fail differently.
    let again = Instant::now();
    assert_eq!(
        u.unseal(&b, deadline, &Default::default()).err().unwrap(),
        e
    );
    assert!(again.elapsed() < Duration::from_millis(500));
}

/// Told to stop between two commands, the unseal flushes what it loaded: a TPM without
/// a resource manager keeps no object or session from it.
#[test]
fn a_stopped_unseal_leaves_nothing_loaded() {
    if !have(&SWTPM_TOOLS) {
        return;
    }
    let sw = Swtpm::start();
    let mut req = request(Some("sha256"), &[7]);
    // An RSA primary takes swtpm long enough for the stop to land midway.
    req.key = "rsa".into();
    let sealed = seal(&mut open(&sw), &req).unwrap();
    let b = binding(&req, &sealed);
    let u = std::sync::Arc::new(Unsealer::new(Tcti::parse(&sw.tcti).unwrap(), TIMEOUT));
    let mut stopped = 0;
    for pause in [0, 5, 20, 50, 100, 200] {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run = {
            let (u, b, stop) = (u.clone(), b.clone(), stop.clone());
            thread::spawn(move || u.unseal_until(&b, Instant::now() + TIMEOUT, &stop))
        };
        thread::sleep(Duration::from_millis(pause));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match run.join().unwrap() {
            Ok(s) => assert_eq!(s.expose(), req.data.expose()),
            Err(e) => {
                assert!(
                    e.starts_with("not needed any more: stopped before TPM2_"),
                    "{e}"
                );
                stopped += 1;
            }
        }
        for what in ["handles-transient", "handles-loaded-session"] {
            let out = run_ok(sw.command("tpm2_getcap").arg(what));
            let left = String::from_utf8_lossy(&out.stdout);
            assert!(left.is_empty(), "after {pause} ms: {what}: {left}");
        }
    }
    assert!(stopped > 0, "no unseal was stopped");
    // And one left to run opens the key.
    let stay = std::sync::atomic::AtomicBool::new(false);
    let got = u.unseal_until(&b, Instant::now() + TIMEOUT, &stay).unwrap();
    assert_eq!(got.expose(), req.data.expose());
}
