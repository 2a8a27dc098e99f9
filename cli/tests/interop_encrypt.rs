//! JWEs made by `latchkey encrypt` decrypt with Debian's `clevis decrypt`, against real tangd.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn tang() {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    let jwe = latchkey_encrypt("tang", &tang.config(), b"tang secret");
    assert_eq!(clevis_decrypt(&jwe), b"tang secret");
    assert_eq!(latchkey_decrypt(&jwe), b"tang secret");
}

#[test]
fn tang_with_thumbprint_needs_no_prompt() {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    for alg in ["S256", "S1"] {
        let cfg = format!(
            r#"{{"url":"{}","thp":"{}"}}"#,
            tang.url,
            tang.signing_thp(alg)
        );
        let out = run_with(
            no_tty().args(["encrypt", "tang", &cfg]),
            b"thp secret",
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            clevis_decrypt(&String::from_utf8(out.stdout).unwrap()),
            b"thp secret"
        );
    }
}

#[test]
fn tang_with_adv_file_makes_no_request() {
    if !have_tools() {
        return;
    }
    let mut tang = Tang::start();
    let dir = Scratch::new("advfile");
    let adv = save_adv(&tang, &dir);
    tang.stop();
    let cfg = format!(r#"{{"url":"{}","adv":"{}"}}"#, tang.url, adv.display());
    let jwe = latchkey_encrypt("tang", &cfg, b"offline secret");
    tang.resume();
    assert_eq!(clevis_decrypt(&jwe), b"offline secret");
}

#[test]
fn untrusted_keys_without_a_terminal_fail_clearly() {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    let cfg = tang.config();
    let out = run_with(
        no_tty().args(["encrypt", "tang", &cfg]),
        b"x",
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    // The operator sees the keys and what to do instead of answering a prompt.
    assert!(err.contains(&tang.signing_thp("S256")), "{err}");
    assert!(err.contains("terminal"), "{err}");
}

#[test]
fn sss_two_of_three() {
    if !have_tools() {
        return;
    }
    let mut t: Vec<Tang> = (0..3).map(|_| Tang::start()).collect();
    let jwe = latchkey_encrypt("sss", &Tang::sss_config(2, &t), b"sss secret");
    t[0].stop();
    assert_eq!(clevis_decrypt(&jwe), b"sss secret");
}

#[test]
fn nested_sss_with_null() {
    if !have_tools() {
        return;
    }
    let t: Vec<Tang> = (0..2).map(|_| Tang::start()).collect();
    let cfg = format!(
        r#"{{"t":2,"pins":{{"null":{{}},"sss":{{"t":1,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}]}}}}}}}}"#,
        t[0].url, t[1].url
    );
    let jwe = latchkey_encrypt("sss", &cfg, b"nested secret");
    assert_eq!(clevis_decrypt(&jwe), b"nested secret");
}

#[test]
fn null() {
    if !have_tools() {
        return;
    }
    let jwe = latchkey_encrypt("null", "{}", b"null secret");
    assert_eq!(clevis_decrypt(&jwe), b"null secret");
}

/// `latchkey` in a new session, so it has no controlling terminal to prompt on.
fn no_tty() -> Command {
    let mut c = Command::new("setsid");
    c.arg("-w").arg(env!("CARGO_BIN_EXE_latchkey"));
    c
}

#[test]
fn trust_prompt_on_the_terminal() {
    if !have_tools() {
        return;
    }
    // script(1) gives latchkey a pseudo-terminal; what we pipe into script is typed on it.
    let tang = Tang::start();
    let dir = Scratch::new("prompt");
    std::fs::write(dir.path("secret"), "typed yes").unwrap();
    for (answer, trusted) in [("y\n", true), ("n\n", false)] {
        let out_path = dir.path("out.jwe");
        let inner = format!(
            "{} encrypt tang '{{\"url\":\"{}\"}}' < {} > {}",
            env!("CARGO_BIN_EXE_latchkey"),
            tang.url,
            dir.path("secret").display(),
            out_path.display()
        );
        let out = run_with(
            Command::new("script").args(["-qec", &inner, "/dev/null"]),
            answer.as_bytes(),
            Duration::from_secs(20),
        );
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(
            screen.contains("Do you wish to trust these keys? [ynYN]"),
            "{screen}"
        );
        assert!(screen.contains(&tang.signing_thp("S256")), "{screen}");
        let jwe = std::fs::read_to_string(&out_path).unwrap();
        if trusted {
            assert!(out.status.success(), "{screen}");
            assert_eq!(clevis_decrypt(&jwe), b"typed yes");
        } else {
            assert!(!out.status.success(), "{screen}");
            assert!(jwe.is_empty());
            assert!(screen.contains("not trusted"), "{screen}");
        }
    }
}
