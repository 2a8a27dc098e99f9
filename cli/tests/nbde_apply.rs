//! `latchkey nbde apply` and `latchkey nbde status` on LUKS1 and LUKS2 images
//! made by cryptsetup, against real tangd servers.
//!
//! Each resulting header is opened by the method its mode promises, with the
//! real programs: the local key file by `cryptsetup open --test-passphrase`,
//! a Tang binding by Debian's `clevis luks pass` (with servers stopped to
//! prove the threshold), and both by the agent's dry run as at boot. The
//! recovery secret opens the disk throughout, and a second apply is a no-op.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

mod common;
use common::nbde::*;
use common::*;

/// One apply of a walk through the modes.
struct Move {
    servers: usize,
    extra: &'static [&'static str],
    mode: &'static str,
    threshold: Option<u64>,
}

impl Move {
    const fn new(
        servers: usize,
        extra: &'static [&'static str],
        mode: &'static str,
        threshold: Option<u64>,
    ) -> Move {
        Move {
            servers,
            extra,
            mode,
            threshold,
        }
    }
}

const WALK: [Move; 9] = [
    Move::new(0, &[], "degraded", None),
    Move::new(3, &[], "tang", Some(1)),
    Move::new(4, &[], "quorum", Some(3)),
    Move::new(4, &["--threshold", "2"], "quorum", Some(2)),
    Move::new(3, &[], "tang", Some(1)),
    Move::new(1, &[], "degraded", None),
    Move::new(4, &["--threshold", "4"], "quorum", Some(4)),
    Move::new(2, &[], "degraded", None),
    Move::new(2, &["--mode", "tang"], "tang", Some(1)),
];

/// The disk opens as `m` promises, and by nothing the policy left behind.
fn check_opens(d: &Disk, c: &mut Cluster, m: &Move, doc: &Value, at: &str) {
    assert!(d.recovery_opens(), "{at}: the recovery secret");
    let (code, text) = d.status(false);
    assert_eq!(code, 0, "{at}: status:\n{text}");
    assert!(text.contains("\nconsistent"), "{at}: status:\n{text}");
    let list = d.clevis_list();
    if m.mode == "degraded" {
        assert_eq!(doc["localBootKeyPresent"], true, "{at}: {doc}");
        assert_eq!(doc["bindings"], serde_json::json!([]), "{at}: {doc}");
        assert!(list.is_empty(), "{at}: clevis luks list: {list:?}");
        assert!(d.key_file_opens(), "{at}: the key file opens it");
        let mode = |p| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(d.key_file()), 0o400, "{at}");
        assert_eq!(mode(d.boot.join("nbde")), 0o700, "{at}");
        assert!(text.contains("whoever takes the disk"), "{at}:\n{text}");
        assert_eq!(d.boots(), Ok("local key"), "{at}");
        return;
    }
    assert_eq!(doc["localBootKeyPresent"], false, "{at}: {doc}");
    assert!(
        !d.boot.join("nbde").exists(),
        "{at}: the key file and its directory are gone"
    );
    let bindings = doc["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{at}: {doc}");
    let slot = bindings[0]["slot"].as_u64().unwrap();
    let t = m.threshold.unwrap();
    let urls = c.urls(m.servers);
    assert_eq!(bindings[0]["threshold"], t, "{at}: {doc}");
    assert_eq!(bindings[0]["tang"], serde_json::json!(urls), "{at}: {doc}");
    let pins: Vec<String> = urls.iter().map(|u| format!(r#"{{"url":"{u}"}}"#)).collect();
    assert_eq!(
        list,
        [format!(
            r#"{slot}: sss '{{"t":{t},"pins":{{"tang":[{}]}}}}'"#,
            pins.join(",")
        )],
        "{at}: clevis luks list"
    );
    assert_eq!(d.boots(), Ok("clevis"), "{at}");
    // Any t of the servers suffice, and fewer do not.
    let down = m.servers - t as usize;
    for tang in &mut c.0[m.servers - down..m.servers] {
        tang.stop();
    }
    assert!(
        d.clevis_opens(slot),
        "{at}: clevis luks pass with {t} of {} servers up",
        m.servers
    );
    c.0[m.servers - down - 1].stop();
    assert!(
        !d.clevis_opens(slot),
        "{at}: clevis luks pass with {} of {} servers up",
        t - 1,
        m.servers
    );
    c.0[m.servers - down - 1].resume();
    for tang in &mut c.0[m.servers - down..m.servers] {
        tang.resume();
    }
}

/// `n` tangd servers and a scratch directory named by `tag`, or a skip.
fn servers(n: usize, tag: &str) -> Option<(Cluster, Scratch)> {
    nbde_tools().then(|| (Cluster::start(n), Scratch::new(tag)))
}

/// A disk of `kind` put in degraded mode by a first apply, and its fingerprint.
fn degraded(s: &Scratch, kind: &str) -> (Disk, (Vec<u8>, String)) {
    let d = Disk::new(s, kind, kind);
    d.apply_json(&[]);
    let before = d.fingerprint();
    (d, before)
}

/// `apply ARGS` on `d` fails with exit code 1 and writes nothing; its stderr.
fn refused(d: &Disk, args: &[String], before: &(Vec<u8>, String), at: &str) -> String {
    let out = d.apply(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{at}: {err}");
    assert!(*before == d.fingerprint(), "{at}: a refused apply wrote");
    err
}

fn walk_the_modes(kind: &str) {
    let Some((mut c, s)) = servers(4, "nbde-walk") else {
        return;
    };
    let d = Disk::new(&s, kind, kind);
    let mut from = "none";
    for m in &WALK {
        let args = tang_args(&c.urls(m.servers), m.extra);
        let at = format!("{kind}: {from} -> {} {:?}", m.mode, m.extra);
        let doc = d.apply_json(&args);
        assert_eq!(doc["mode"], m.mode, "{at}: {doc}");
        assert_eq!(doc["changed"], true, "{at}: {doc}");
        assert_eq!(doc["converged"], true, "{at}: {doc}");
        check_opens(&d, &mut c, m, &doc, &at);
        // Applying it again changes nothing, not a byte.
        let before = d.fingerprint();
        let again = d.apply_json(&args);
        assert_eq!(again["changed"], false, "{at}, again: {again}");
        assert_eq!(again["steps"], serde_json::json!([]), "{at}, again");
        assert!(before == d.fingerprint(), "{at}: the second apply wrote");
        from = m.mode;
    }
}

#[test]
fn luks2_walks_every_mode_and_opens_as_each_promises() {
    walk_the_modes("luks2");
}

#[test]
fn luks1_walks_every_mode_and_opens_as_each_promises() {
    walk_the_modes("luks1");
}

#[test]
fn a_dry_run_prints_the_plan_in_order_and_changes_nothing() {
    let Some((c, s)) = servers(4, "nbde-dry") else {
        return;
    };
    for kind in ["luks1", "luks2"] {
        let (d, before) = degraded(&s, kind);
        let args = tang_args(&c.urls(4), &["--dry-run"]);
        let out = d.apply(&args);
        assert!(out.status.success(), "{kind}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let plan: Vec<&str> = text.lines().skip(1).collect();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("dry run: nothing is changed"),
            "{kind}:\n{text}"
        );
        let find = |what: &str| {
            plan.iter()
                .position(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{kind}: no step {what:?} in\n{text}"))
        };
        // Additive first: bind, then the local keyslot, then its file.
        assert!(find("record the policy") < find("bind keyslot"), "{text}");
        assert!(find("bind keyslot") < find("of a local key"), "{text}");
        assert!(
            find("of a local key") < find("overwrite and remove"),
            "{text}"
        );
        assert!(before == d.fingerprint(), "{kind}: the dry run wrote");
        let mut json = args.clone();
        json.push("--json".into());
        let doc: Value = serde_json::from_slice(&d.apply(&json).stdout).unwrap();
        assert_eq!(doc["dryRun"], true, "{doc}");
        assert_eq!(doc["changed"], false, "{doc}");
        assert_eq!(doc["mode"], "degraded", "{doc}");
        let steps: Vec<&str> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "write-record",
                "bind",
                "remove-local-keyslot",
                "remove-key-file"
            ],
            "{kind}"
        );
        assert!(before == d.fingerprint(), "{kind}: the JSON dry run wrote");
        assert_eq!(d.boots(), Ok("local key"), "{kind}");
    }
}

#[test]
fn an_unreachable_server_is_refused_or_left_out_and_status_says_partial() {
    let Some((mut c, s)) = servers(5, "nbde-missing") else {
        return;
    };
    c.0[4].stop();
    let (d, before) = degraded(&s, "luks2");
    let all = c.urls(5);
    let err = refused(&d, &tang_args(&all, &[]), &before, "luks2");
    assert!(
        err.contains(&all[4]) && err.contains("--allow-missing"),
        "the error names the server and the way out: {err}"
    );

    let doc = d.apply_json(&tang_args(&all, &["--allow-missing"]));
    assert_eq!(doc["mode"], "quorum", "{doc}");
    assert_eq!(doc["partial"], true, "{doc}");
    assert_eq!(doc["missing"], serde_json::json!([all[4]]), "{doc}");
    assert_eq!(doc["unreachable"][0]["url"], all[4], "{doc}");
    assert_eq!(doc["bindings"][0]["threshold"], 3, "a majority of 5: {doc}");
    assert_eq!(doc["bindings"][0]["tang"], serde_json::json!(c.urls(4)));
    let slot = doc["bindings"][0]["slot"].as_u64().unwrap();
    assert!(d.clevis_opens(slot));
    assert!(!d.key_file().exists());
    let (code, text) = d.status(false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("partial") && text.contains(&all[4]), "{text}");
    let (code, json) = d.status(true);
    assert_eq!(code, 1);
    let st: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(st["partial"], true, "{st}");
    // The same request while the server is still away: nothing to do.
    let again = d.apply_json(&tang_args(&all, &["--allow-missing"]));
    assert_eq!(again["changed"], false, "{again}");

    // Once it is back, the binding is re-established over all five.
    c.0[4].resume();
    let doc = d.apply_json(&tang_args(&all, &["--allow-missing"]));
    assert_eq!(doc["changed"], true, "{doc}");
    assert_eq!(doc["partial"], false, "{doc}");
    assert_eq!(doc["bindings"][0]["tang"], serde_json::json!(all));
    let slot = doc["bindings"][0]["slot"].as_u64().unwrap();
    let (code, text) = d.status(false);
    assert_eq!(code, 0, "{text}");
    for t in &mut c.0[3..] {
        t.stop();
    }
    assert!(d.clevis_opens(slot), "3 of 5 servers up");
}

#[test]
fn a_wrong_recovery_secret_is_a_clear_error_and_changes_nothing() {
    let Some((c, s)) = servers(3, "nbde-wrong") else {
        return;
    };
    for kind in ["luks1", "luks2"] {
        let (d, before) = degraded(&s, kind);
        let wrong = s.path("wrong.key");
        std::fs::write(&wrong, b"not the recovery secret").unwrap();
        let d2 = Disk {
            img: d.img.clone(),
            recovery: wrong.clone(),
            boot: d.boot.clone(),
        };
        let err = refused(&d2, &tang_args(&c.urls(3), &[]), &before, kind);
        assert!(
            err.contains(p(&wrong)) && err.contains("opens no keyslot"),
            "{kind}: the error names the recovery secret's file: {err}"
        );
        let out = d2.apply(&tang_args(&c.urls(3), &["--json"]));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["error"].as_str().unwrap().contains("opens no keyslot"),
            "{doc}"
        );
        assert!(before == d.fingerprint(), "{kind}: a refused apply wrote");
        assert_eq!(d.boots(), Ok("local key"), "{kind}");

        // A secret that opens a keyslot the policy manages is refused too.
        let local = Disk {
            img: d.img.clone(),
            recovery: d.key_file(),
            boot: d.boot.clone(),
        };
        let err = refused(&local, &tang_args(&c.urls(3), &[]), &before, kind);
        assert!(err.contains("local boot key"), "{kind}: {err}");
    }
}

#[test]
fn status_reports_keys_no_longer_advertised_and_apply_rebinds() {
    let Some((c, s)) = servers(3, "nbde-rotated") else {
        return;
    };
    for kind in ["luks1", "luks2"] {
        let d = Disk::new(&s, kind, kind);
        let args = tang_args(&c.urls(3), &[]);
        d.apply_json(&args);
        c.0[1].rotate();
        let (code, text) = d.status(false);
        assert_eq!(code, 1, "{kind}:\n{text}");
        assert!(text.contains(&c.0[1].url), "{kind}:\n{text}");
        let doc = d.apply_json(&args);
        assert_eq!(doc["changed"], true, "{kind}: {doc}");
        let (code, text) = d.status(false);
        assert_eq!(code, 0, "{kind}:\n{text}");
        let slot = doc["bindings"][0]["slot"].as_u64().unwrap();
        assert!(d.clevis_opens(slot), "{kind}");
        assert_eq!(d.apply_json(&args)["changed"], false, "{kind}");
    }
}

#[test]
fn status_reports_what_is_inconsistent() {
    let Some((c, s)) = servers(3, "nbde-status") else {
        return;
    };
    let d = Disk::new(&s, "luks2", "luks2");
    d.apply_json(&tang_args(&c.urls(3), &[]));
    std::fs::create_dir(d.boot.join("nbde")).unwrap();
    std::fs::write(d.key_file(), b"a key of no keyslot").unwrap();
    let (code, text) = d.status(false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("problem:"), "{text}");
    // Apply removes it: outside degraded mode there is no key file.
    let doc = d.apply_json(&tang_args(&c.urls(3), &[]));
    assert_eq!(doc["changed"], true, "{doc}");
    assert!(!d.boot.join("nbde").exists());
    assert_eq!(d.status(false).0, 0);

    // A keyslot added outside latchkey is reported, and left alone.
    let other = s.path("other.key");
    std::fs::write(&other, b"someone else's passphrase").unwrap();
    run_ok(
        Command::new("cryptsetup")
            .args(["luksAddKey", "-q", "--pbkdf", "pbkdf2"])
            .args(["--pbkdf-force-iterations", "1000", "--key-file"])
            .arg(&d.recovery)
            .arg(&d.img)
            .arg(&other),
    );
    let (code, text) = d.status(false);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("has no token"), "{text}");
    d.apply_json(&tang_args(&c.urls(3), &[]));
    d.apply_json(&[]);
    assert!(d.key_file_opens());
    assert!(cryptsetup_opens(&d.img, b"someone else's passphrase", None));
}

#[test]
fn a_request_that_is_no_policy_is_refused_before_anything() {
    let Some((c, s)) = servers(4, "nbde-refused") else {
        return;
    };
    let (d, before) = degraded(&s, "luks2");
    let urls = c.urls(4);
    let twice = [urls[0].clone(), urls[0].clone()];
    for (args, why) in [
        (tang_args(&urls, &["--threshold", "5"]), "--threshold 5"),
        (tang_args(&urls, &["--threshold", "0"]), "--threshold 0"),
        (
            tang_args(&urls, &["--mode", "tang", "--threshold", "2"]),
            "quorum mode",
        ),
        (tang_args(&urls, &["--mode", "fast"]), "--mode fast"),
        (
            tang_args(&urls, &["--tang", "tang.example"]),
            "http:// or https://",
        ),
        (tang_args(&twice, &[]), "given twice"),
        (
            tang_args(&[], &["--mode", "quorum"]),
            "needs at least one --tang",
        ),
    ] {
        let out = d.apply(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert!(before == d.fingerprint(), "a refused request wrote");
    assert_eq!(d.boots(), Ok("local key"));
}
