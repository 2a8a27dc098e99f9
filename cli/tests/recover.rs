//! `latchkey recover`: challenge → answer → finish, with the codes as a person would
//! carry them, against Debian's real tang and our tangd, on LUKS2 images bound by the real
//! `clevis luks bind`; the recovered passphrase must satisfy `cryptsetup open
//! --test-passphrase`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup"])
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(out: Output) -> String {
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    stdout
}

/// `latchkey recover ARGS` with `input` on stdin.
fn recover(args: &[&str], input: &str) -> Output {
    run_with(
        latchkey().arg("recover").args(args),
        input.as_bytes(),
        LIMIT,
    )
}

/// A failed `recover` (exit 1) whose stderr says `want`.
#[track_caller]
fn fails_with(res: Output, want: &str) {
    let (_, stderr) = text(&res);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(want), "{stderr}");
}

fn challenge(source: &[&str], state: &Path) -> String {
    let mut args = vec!["challenge"];
    args.extend_from_slice(source);
    args.extend_from_slice(&["--state", state.to_str().unwrap()]);
    ok(recover(&args, ""))
}

/// The request codes of a challenge's output, in order (three rows each).
fn codes(challenge: &str) -> Vec<String> {
    let rows: Vec<&str> = challenge.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len() % 3, 0, "{challenge}");
    rows.chunks(3).map(|c| c.join("\n")).collect()
}

/// The full key id printed beside code `n` (1-based).
fn kid_of(challenge: &str, n: usize) -> String {
    let line = challenge
        .lines()
        .find(|l| l.starts_with(&format!("# code {n} of ")))
        .unwrap();
    line.rsplit("key id ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned()
}

fn answer(url: &str, code: &str) -> String {
    ok(recover(&["answer", "--url", url], code))
}

/// `latchkey recover finish SOURCE --state STATE` with `answers` on stdin.
fn finish(source: &[&str], state: &Path, answers: &str) -> Output {
    let mut args = vec!["finish"];
    args.extend_from_slice(source);
    args.extend_from_slice(&["--state", state.to_str().unwrap()]);
    recover(&args, answers)
}

/// Our tangd, from the same build as the latchkey under test.
struct OurTangd {
    child: Child,
    url: String,
    bin: PathBuf,
}

impl OurTangd {
    fn start(keys: &Path) -> Option<OurTangd> {
        let bin = tangd_bin()?;
        let port = free_port();
        run_ok(Command::new(&bin).arg("keygen").arg(keys));
        let child = Command::new(&bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--keys"])
            .arg(keys)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "our tangd did not come up"
        );
        Some(OurTangd {
            child,
            url: format!("http://127.0.0.1:{port}"),
            bin,
        })
    }
}

impl Drop for OurTangd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tangd recover --keys DB` of our build; stdout.
fn tangd_recover(bin: &Path, db: &Path, code: &str) -> String {
    ok(run_with(
        Command::new(bin).arg("recover").arg("--keys").arg(db),
        code.as_bytes(),
        LIMIT,
    ))
}

/// Writes to `path` a JWE that Debian's clevis made for the Tang at `url`.
fn clevis_tang_jwe(path: &Path, url: &str, secret: &[u8]) {
    let jwe = clevis_encrypt("tang", &format!(r#"{{"url":"{url}"}}"#), secret, true);
    std::fs::write(path, jwe).unwrap();
}

/// A scratch dir `tag` with `tang.jwe`, made by clevis for a new Tang server:
/// (scratch, server, the JWE's path).
fn tang_jwe(tag: &str, secret: &[u8]) -> (Scratch, Tang, PathBuf) {
    let s = Scratch::new(tag);
    let tang = Tang::start();
    let jwe = s.path("tang.jwe");
    clevis_tang_jwe(&jwe, &tang.url, secret);
    (s, tang, jwe)
}

fn tangd_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_BIN_EXE_latchkey")).with_file_name("tangd");
    have(&[bin.to_str().unwrap()]).then_some(bin)
}

#[test]
fn answer_works_against_real_tang_and_our_tangd() {
    if !tools() {
        return;
    }
    let (s, tang, jwe) = tang_jwe("recover-answer", b"real-tang-secret");
    let state = s.path("state");
    let out = challenge(&["-j", jwe.to_str().unwrap()], &state);
    let [code] = codes(&out).try_into().unwrap();
    let ans = answer(&tang.url, &code);
    let got = ok(finish(&["-j", jwe.to_str().unwrap()], &state, &ans));
    assert_eq!(got, "real-tang-secret");
    assert!(!state.exists(), "the state file is deleted after use");

    let Some(ours) = OurTangd::start(&s.path("ours")) else {
        return;
    };
    let jwe = s.path("ours.jwe");
    std::fs::write(
        &jwe,
        latchkey_encrypt(
            "tang",
            &format!(r#"{{"url":"{}"}}"#, ours.url),
            b"our-tangd-secret",
        ),
    )
    .unwrap();
    let out = challenge(&["-j", jwe.to_str().unwrap(), "--no-qr"], &state);
    assert!(!out.contains('█'), "--no-qr");
    let [code] = codes(&out).try_into().unwrap();
    let by_http = answer(&ours.url, &code);
    // The same answer straight from the key directory (answers are deterministic).
    let by_dir = tangd_recover(&ours.bin, &s.path("ours"), &code);
    assert_eq!(codes_only(&by_http), codes_only(&by_dir));
    let got = ok(finish(&["-j", jwe.to_str().unwrap()], &state, &by_dir));
    assert_eq!(got, "our-tangd-secret");
}

fn codes_only(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn clevis_bind(img: &Path, key: &Path, slot: &str, pin: &str, cfg: &str) {
    clevis_luks_bind_with(Command::new("clevis"), img, key, &["-s", slot], pin, cfg);
}

fn opens(img: &Path, passphrase: &str) -> bool {
    cryptsetup_opens(img, passphrase.as_bytes(), None)
}

#[test]
fn luks2_bound_by_clevis_opens_through_codes_tang_and_sss() {
    if !tools() {
        return;
    }
    let s = Scratch::new("recover-luks");
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let tangs = [Tang::start(), Tang::start(), Tang::start()];
    clevis_bind(&img, &key, "1", "tang", &tangs[0].config());
    clevis_bind(&img, &key, "2", "sss", &Tang::sss_config(2, &tangs));
    let dev = img.to_str().unwrap();
    let state = s.path("state");

    // Slot 1: tang.
    let out = challenge(&["-d", dev, "-s", "1"], &state);
    assert!(out.contains("1 answer needed"), "{out}");
    let [code] = codes(&out).try_into().unwrap();
    let pass = ok(finish(&["-d", dev], &state, &answer(&tangs[0].url, &code)));
    assert!(opens(&img, &pass));
    assert!(!state.exists());

    // Slot 2: sss 2 of 3. One answer is not enough, and says what is missing.
    let out = challenge(&["-d", dev, "-s", "2"], &state);
    assert!(out.contains("2 of 3 answers needed; have 0"), "{out}");
    let codes = codes(&out);
    assert_eq!(codes.len(), 3);
    let third = answer(&tangs[2].url, &codes[2]);
    let res = finish(&["-d", dev], &state, &third);
    assert_eq!(res.status.code(), Some(1));
    let (stdout, stderr) = text(&res);
    assert!(stdout.is_empty());
    assert!(stderr.contains("2 of 3 answers needed; have 1"), "{stderr}");
    assert!(stderr.contains("code 1 ("), "{stderr}");
    assert!(state.exists(), "kept until the recovery succeeds");
    // The first answer straight from tang's key directory, as on the server with no
    // network; both answers at once, in any order; finish finds the slot by itself.
    let first = match tangd_bin() {
        Some(bin) => tangd_recover(&bin, &tangs[0].db, &codes[0]),
        None => answer(&tangs[0].url, &codes[0]),
    };
    let both = format!("{third}\n{first}");
    let res = finish(&["-d", dev], &state, &both);
    let (pass, stderr) = text(&res);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("opens code 3") && stderr.contains("opens code 1"),
        "{stderr}"
    );
    assert!(opens(&img, &pass));
    assert!(!opens(&img, "not it"));
    // The same passphrase clevis itself recovers.
    let clevis = ok(run_with(
        Command::new("clevis").args(["luks", "pass", "-d", dev, "-s", "2"]),
        b"",
        LIMIT,
    ));
    assert_eq!(pass, clevis);
    assert!(!state.exists());
}

#[test]
fn a_rotated_key_is_answered_with_the_kid_shown_beside_the_code() {
    if !tools() {
        return;
    }
    let (s, tang, jwe) = tang_jwe("recover-rotated", b"before-rotation");
    tang.rotate();
    let state = s.path("state");
    let out = challenge(&["-j", jwe.to_str().unwrap()], &state);
    let [code] = codes(&out).try_into().unwrap();
    // /adv no longer lists the key: the code's key id cannot be resolved there.
    fails_with(recover(&["answer", "--url", &tang.url], &code), "--kid");
    let kid = kid_of(&out, 1);
    let ans = ok(recover(
        &["answer", "--url", &tang.url, "--kid", &kid],
        &code,
    ));
    let got = ok(finish(&["-j", jwe.to_str().unwrap()], &state, &ans));
    assert_eq!(got, "before-rotation");
}

#[test]
fn bad_input_is_named_and_nothing_is_lost() {
    if !tools() {
        return;
    }
    let (s, tang, jwe) = tang_jwe("recover-errors", b"kept");
    let jwe_arg = jwe.to_str().unwrap();
    let state = s.path("state");
    let st = state.to_str().unwrap();
    let out = challenge(&["-j", jwe_arg, "--no-qr"], &state);
    let [code] = codes(&out).try_into().unwrap();
    let meta = std::fs::metadata(&state).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // The state file is never overwritten.
    let res = recover(&["challenge", "-j", jwe_arg, "--state", st], "");
    fails_with(res, "unfinished recovery");

    // A typo in the request: the group is named, the server is not asked.
    let typo = code
        .replacen('-', "", 1)
        .replacen(|c: char| c.is_ascii_alphanumeric(), "U", 1);
    fails_with(
        recover(&["answer", "--url", &tang.url], &typo),
        "in group 1",
    );

    let ans = answer(&tang.url, &code);
    // A typo in the answer: group named, state kept.
    let rows = codes_only(&ans);
    let mut chars: Vec<char> = rows.chars().collect();
    let at = rows.find('\n').unwrap() + 14; // row 2, its second group
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let bad: String = chars.into_iter().collect();
    fails_with(
        finish(&["-j", jwe_arg], &state, &bad),
        "group 6 does not check",
    );
    assert!(state.exists());
    // A request code where the answer belongs.
    let res = finish(&["-j", jwe_arg], &state, &code);
    fails_with(res, "this is a request code");
    // An answer to another challenge.
    let other_state = s.path("other");
    let other = challenge(&["-j", jwe_arg, "--no-qr"], &other_state);
    let [other_code] = codes(&other).try_into().unwrap();
    let other_ans = answer(&tang.url, &other_code);
    let res = finish(&["-j", jwe_arg], &state, &other_ans);
    fails_with(res, "this answer is not for this code");
    // A state file for another binding, and a malformed one.
    let jwe2 = s.path("other.jwe");
    clevis_tang_jwe(&jwe2, &tang.url, b"x");
    let res = finish(&["-j", jwe2.to_str().unwrap()], &state, &ans);
    fails_with(res, "another JWE");
    let broken = s.path("broken");
    std::fs::write(&broken, "latchkey-recovery-state 1\njwe-sha256 00\n").unwrap();
    fails_with(
        finish(&["-j", jwe_arg], &broken, &ans),
        "malformed (line 2)",
    );

    // After all that, the right answer still opens it.
    let got = ok(finish(&["-j", jwe_arg], &state, &ans));
    assert_eq!(got, "kept");
}

/// The QR codes drawn by `challenge`, photographed as a phone would see them (a bitmap of
/// the text, light modules white), decode to the code beside them (zbarimg).
#[test]
fn qr_codes_decode_to_the_codes() {
    if !have(&["/usr/bin/zbarimg"]) {
        return;
    }
    let s = Scratch::new("recover-qr");
    // clevis's sss 2-of-3 sample: challenge contacts no server, so none need run.
    let jwe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/proto/tests/data/jwe/sss-2of3-tang.jwe");
    let out = challenge(&["-j", jwe.to_str().unwrap()], &s.path("state"));
    let mut qr_rows: Vec<Vec<&str>> = Vec::new();
    let mut in_qr = false;
    for line in out.lines() {
        let drawn = line.starts_with("# ") && line[2..].chars().all(|c| "█▀▄ ".contains(c));
        if drawn && line.len() > 4 {
            if !in_qr {
                qr_rows.push(Vec::new());
            }
            qr_rows.last_mut().unwrap().push(&line[2..]);
        }
        in_qr = drawn && line.len() > 4;
    }
    let codes = codes(&out);
    assert_eq!(qr_rows.len(), codes.len());
    for (rows, code) in qr_rows.iter().zip(&codes) {
        assert_eq!(rows.len(), 21, "version 5 with a 2-module quiet zone");
        let image = s.path("qr.pbm");
        std::fs::write(&image, pbm(rows)).unwrap();
        let out = run_with(
            Command::new("zbarimg").args(["-q", "--raw"]).arg(&image),
            b"",
            LIMIT,
        );
        let decoded = ok(out);
        let expected: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        assert_eq!(decoded.trim_end(), expected);
    }
}

/// A plain PBM of text-drawn QR rows: each character is two modules stacked, scaled 4×,
/// on a white margin.
fn pbm(rows: &[&str]) -> String {
    let mut modules: Vec<Vec<bool>> = Vec::new(); // true = light
    for row in rows {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in row.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            top.push(t);
            bottom.push(b);
        }
        modules.push(top);
        modules.push(bottom);
    }
    const SCALE: usize = 4;
    const MARGIN: usize = 8;
    let (w, h) = (modules[0].len() * SCALE, modules.len() * SCALE);
    let mut out = format!("P1\n{} {}\n", w + 2 * MARGIN, h + 2 * MARGIN);
    for y in 0..h + 2 * MARGIN {
        let line: Vec<&str> = (0..w + 2 * MARGIN)
            .map(|x| {
                let inside = (MARGIN..MARGIN + h).contains(&y) && (MARGIN..MARGIN + w).contains(&x);
                let light = !inside || modules[(y - MARGIN) / SCALE][(x - MARGIN) / SCALE];
                if light { "0" } else { "1" }
            })
            .collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    out
}
