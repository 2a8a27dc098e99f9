//! `latchkey-agent unlock --dry-run` and `latchkey-agent decrypt` on a normal
//! host: LUKS images made by the real cryptsetup, bound by the real
//! `clevis luks bind` to Debian's tangd on 127.0.0.1. The console race also
//! runs in process, where a test must order the prompts itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use latchkey_testkit::{
    CHEAP_PBKDF, Flood, FloodKind, GNU_TIME, Gate, PCR7, Pty, Relay, SWTPM_TOOLS, Scratch, Swtpm,
    Tang, clevis_luks_bind, have, have_tools, luks_add_key, luks_add_key_with, luks_format,
    run_measured, run_ok, run_ok_with, run_with, save_adv,
};

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta", GNU_TIME])
}

/// [`tools`] and swtpm's.
fn tpm_tools() -> bool {
    tools() && have(&SWTPM_TOOLS)
}

/// Peak resident set the agent may reach facing a hostile server: its own
/// few MiB (code, locked thread stacks) plus the per-reply limits.
const HOSTILE_RSS_KIB: u64 = 16 << 10;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latchkey-agent"))
}

/// A 32 MiB LUKS image with passphrase file `key` in slot 0.
fn image(s: &Scratch, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    image_with(s, kind, name, &CHEAP_PBKDF)
}

/// [`image`] with the keyslot's key derivation given as cryptsetup options.
fn image_with(s: &Scratch, kind: &str, name: &str, pbkdf: &[&str]) -> (PathBuf, PathBuf) {
    let pass = format!("initial passphrase of {name}");
    luks_format(
        s,
        name,
        pass.as_bytes(),
        &[&["--type", kind], pbkdf].concat(),
    )
}

/// An [`image`] bound by `clevis luks bind` to `tang` in keyslot 1.
fn tang_image(s: &Scratch, tang: &Tang, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    let (img, key) = image(s, kind, name);
    clevis_luks_bind(&img, &key, "tang", &tang.config());
    (img, key)
}

/// A LUKS2 root.img in a new scratch dir `tag`, bound to a Tang server that has
/// stopped since (its keys kept): (scratch, server, image).
fn bound_to_a_stopped_tang(tag: &str) -> (Scratch, Tang, PathBuf) {
    let s = Scratch::new(tag);
    let mut tang = Tang::start();
    let (img, _) = tang_image(&s, &tang, "luks2", "root.img");
    tang.stop();
    (s, tang, img)
}

/// How many volumes the agent's log says would open with keyslot 1.
fn opened_by_keyslot_1(text: &str) -> usize {
    text.matches("would open with keyslot 1").count()
}

/// `clevis encrypt ARGS` of `secret` run by `clevis` (its environment set), asserting
/// success: the JWE.
fn clevis_encrypt(mut clevis: Command, args: &[&str], secret: &[u8]) -> Vec<u8> {
    let limit = Duration::from_secs(30);
    run_ok_with(clevis.arg("encrypt").args(args), secret, limit).stdout
}

/// `latchkey-agent decrypt` run by `agent` (its environment set) of `jwe`, asserting
/// success: the secret.
fn agent_decrypt(mut agent: Command, jwe: &[u8]) -> Vec<u8> {
    run_ok_with(agent.arg("decrypt"), jwe, Duration::from_secs(30)).stdout
}

fn dry_run(s: &Scratch, img: &Path, cmdline: &str) -> (Output, String) {
    let (out, text, _) = dry_run_rss(s, img, cmdline);
    (out, text)
}

/// [`dry_run`], with the agent's peak RSS in KiB.
fn dry_run_rss(s: &Scratch, img: &Path, cmdline: &str) -> (Output, String, u64) {
    dry_run_devices(s, &[img], cmdline)
}

/// [`dry_run_rss`] on several devices.
fn dry_run_devices(s: &Scratch, imgs: &[&Path], cmdline: &str) -> (Output, String, u64) {
    dry_run_with(agent(), s, imgs, cmdline)
}

/// [`dry_run_devices`] with the agent command given (its environment set).
fn dry_run_with(
    mut cmd: Command,
    s: &Scratch,
    imgs: &[&Path],
    cmdline: &str,
) -> (Output, String, u64) {
    let line = s.path("cmdline");
    std::fs::write(&line, cmdline).unwrap();
    cmd.args([
        "unlock",
        "--dry-run",
        "--no-prompt",
        "--crypttab",
        "/nonexistent",
        "--cmdline",
    ])
    .arg(&line);
    for img in imgs {
        cmd.arg("--device").arg(img);
    }
    let start = std::time::Instant::now();
    let (out, rss) = run_measured(&cmd, b"", Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "latchkey-agent unlock --dry-run: {:.2}s, peak RSS {rss} KiB",
        start.elapsed().as_secs_f64()
    );
    (out, text, rss)
}

#[test]
fn luks2_tang_binding_opens_and_names_the_server_when_it_is_down() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-luks2");
    let mut tang = Tang::start();
    let (img, _) = tang_image(&s, &tang, "luks2", "root.img");

    let (out, text) = dry_run(&s, &img, "latchkey.timeout=2 latchkey.deadline=20");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("clevis token 0 (keyslot 1)"), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");

    tang.stop();
    let (out, text) = dry_run(&s, &img, "latchkey.timeout=1 latchkey.deadline=8");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT opened"), "{text}");
    assert!(
        text.contains(&tang.url),
        "the failure names the server: {text}"
    );
}

#[test]
fn luks1_luksmeta_sss_binding_opens() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-luks1");
    let tangs = [Tang::start(), Tang::start()];
    let (img, key) = image(&s, "luks1", "old.img");
    clevis_luks_bind(&img, &key, "sss", &Tang::sss_config(2, &tangs));
    let (out, text) = dry_run(&s, &img, "latchkey.timeout=2 latchkey.deadline=20");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("clevis LUKSMeta slot 1"), "{text}");
    assert!(text.contains("sss 2 of [tang"), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");
}

#[test]
fn local_key_opens_without_any_server() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-local");
    let (img, key) = image(&s, "luks2", "root.img");
    let local = s.path("local-boot.key");
    std::fs::write(&local, b"a local key\nwith a newline kept\n").unwrap();
    luks_add_key(&img, &key, &local);
    let (out, text) = dry_run(
        &s,
        &img,
        &format!("latchkey.key={} latchkey.timeout=1", local.display()),
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("local key opened keyslot 1"), "{text}");
}

#[test]
fn decrypt_mode_recovers_a_clevis_jwe() {
    if !tools() {
        return;
    }
    let tang = Tang::start();
    let cfg = tang.config();
    let jwe = clevis_encrypt(
        Command::new("clevis"),
        &["tang", &cfg, "-y"],
        b"agent decrypt secret",
    );
    assert_eq!(agent_decrypt(agent(), &jwe), b"agent decrypt secret");
    let out = run_with(
        agent().arg("decrypt"),
        b"garbage\n",
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "latchkey-agent decrypt: not a JWE: expected a compact JWE (five base64url parts \
         separated by dots, as clevis encrypt writes) or the JSON of a LUKS2 clevis token (as \
         cryptsetup token export writes), found 7 bytes of text with no dots\n"
    );
    let out = run_with(
        agent().args(["decrypt", "--timeout", "soon"]),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "--timeout expects a number of seconds above 0 and below 86400, found \"soon\""
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An sss 2-of-3 binding whose first server floods the reply: the agent
/// must drop that server within the reply limits and open the volume with
/// the other two, which answer only once it has hung up on the flood.
fn flood_in_sss(kind: FloodKind) {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-flood");
    let flood = Flood::start(kind);
    let (t1, t2) = (Tang::start(), Tang::start());
    let (d1, d2) = (Scratch::new("adv1"), Scratch::new("adv2"));
    let (adv1, adv2) = (save_adv(&t1, &d1), save_adv(&t2, &d2));
    let r1 = Relay::start(t1.port, flood.hung_up.clone());
    let r2 = Relay::start(t2.port, flood.hung_up.clone());
    let (img, key) = image(&s, "luks2", "root.img");
    let cfg = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{}","adv":"{a1}"}},{{"url":"{}","adv":"{a1}"}},{{"url":"{}","adv":"{a2}"}}]}}}}"#,
        flood.url,
        r1.url,
        r2.url,
        a1 = adv1.display(),
        a2 = adv2.display(),
    );
    clevis_luks_bind(&img, &key, "sss", &cfg);
    let (out, text, rss) = dry_run_rss(&s, &img, "latchkey.timeout=20 latchkey.deadline=30");
    let sent = flood.sent.load(std::sync::atomic::Ordering::Relaxed);
    println!("{kind:?}: agent peak RSS {rss} KiB; the flood sent {sent} bytes");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");
    assert!(
        rss < HOSTILE_RSS_KIB,
        "{kind:?}: peak RSS {rss} KiB (limit {HOSTILE_RSS_KIB} KiB)"
    );
}

#[test]
fn sss_survives_a_server_flooding_100_continue() {
    flood_in_sss(FloodKind::Continue);
}

#[test]
fn sss_survives_a_server_flooding_chunk_extensions() {
    flood_in_sss(FloodKind::ChunkExtensions);
}

#[test]
fn sss_survives_a_server_flooding_trailers() {
    flood_in_sss(FloodKind::Trailers);
}

/// `latchkey-agent decrypt` against a lone flooding server: a bad-reply error
/// naming it (not a timeout: the limits end it, not the clock), in bounded memory.
#[test]
fn decrypt_names_a_flooding_server_in_bounded_memory() {
    if !tools() {
        return;
    }
    let tang = Tang::start();
    let dir = Scratch::new("adv");
    let adv = save_adv(&tang, &dir);
    let mut wrong = Vec::new();
    for kind in [
        FloodKind::Continue,
        FloodKind::ChunkExtensions,
        FloodKind::Trailers,
    ] {
        let flood = Flood::start(kind);
        let cfg = format!(r#"{{"url":"{}","adv":"{}"}}"#, flood.url, adv.display());
        let jwe = clevis_encrypt(Command::new("clevis"), &["tang", &cfg], b"flood secret");
        let start = std::time::Instant::now();
        let (out, rss) = run_measured(
            agent().args(["decrypt", "--timeout", "20", "--deadline", "30"]),
            &jwe,
            Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        println!(
            "{kind:?}: {:.2}s, peak RSS {rss} KiB: {err}",
            start.elapsed().as_secs_f64()
        );
        let named = err.contains(&flood.url) && err.contains("bad reply");
        if out.status.code() != Some(1) || !out.stdout.is_empty() || !named {
            wrong.push(format!("{kind:?}: exit {:?}: {err}", out.status.code()));
        }
        if rss >= HOSTILE_RSS_KIB {
            wrong.push(format!("{kind:?}: peak RSS {rss} KiB"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A FIFO where the local key should be is refused at once (not a regular
/// file) instead of blocking the agent, and the deadline still holds.
#[test]
fn local_key_that_is_a_fifo_is_refused_within_the_deadline() {
    if !tools() {
        return;
    }
    let (s, tang, img) = bound_to_a_stopped_tang("agent-fifo");
    let fifo = s.path("local-boot.key");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let (out, text) = dry_run(
        &s,
        &img,
        &format!(
            "latchkey.key={} latchkey.deadline=3 latchkey.timeout=1",
            fifo.display()
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "local key: {}: not a regular file (a FIFO)",
            fifo.display()
        )),
        "{text}"
    );
    assert!(text.contains(&tang.url), "{text}");
}

/// A boot partition (for the local key) that never appears does not hold
/// up the Tang binding: both run inside the same deadline.
#[test]
fn missing_boot_partition_does_not_delay_tang() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-noboot");
    let tang = Tang::start();
    let (img, _) = tang_image(&s, &tang, "luks2", "root.img");
    let (out, text) = dry_run(
        &s,
        &img,
        "latchkey.boot=UUID=4c4b0000-dead-4000-8000-000000000000 latchkey.deadline=15 latchkey.timeout=5",
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");
}

/// A LUKS1 image whose keyslot 0 asks for four billion PBKDF2 rounds, the
/// local key being its passphrase: the derivation (hours) must not keep
/// Tang from opening keyslot 1, and without Tang it ends at the deadline.
#[test]
fn absurd_iterations_on_the_local_key_slot_do_not_hold_up_tang() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-iter");
    let mut tang = Tang::start();
    let (img, key) = tang_image(&s, &tang, "luks1", "old.img");
    // LUKS1 keyslot 0 starts at byte 208; its iteration count follows `active`.
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[212..216].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    std::fs::write(&img, bytes).unwrap();
    let cmdline = |deadline: u32| {
        format!(
            "latchkey.key={} latchkey.deadline={deadline} latchkey.timeout=2",
            key.display()
        )
    };
    let (out, text) = dry_run(&s, &img, &cmdline(20));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");

    tang.stop();
    let (out, text) = dry_run(&s, &img, &cmdline(4));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("local key: keyslot 0: key derivation stopped at the deadline"),
        "{text}"
    );
}

/// Two volumes whose keyslots each take 64 MiB of Argon2, both opened by
/// the local key: the derivations run one after the other, so the agent
/// never holds two Argon2 memories at once.
#[test]
fn argon2_of_two_volumes_runs_one_at_a_time() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-argon2");
    let argon2 = [
        "--pbkdf",
        "argon2id",
        "--pbkdf-memory",
        "65536",
        "--pbkdf-force-iterations",
        "4",
        "--pbkdf-parallel",
        "1",
    ];
    let (a, key) = image_with(&s, "luks2", "a.img", &argon2);
    let (b, key_b) = image_with(&s, "luks2", "b.img", &argon2);
    // The same passphrase on both.
    luks_add_key_with(&b, &key_b, &key, &argon2);
    let cmdline = format!("latchkey.key={} latchkey.deadline=60", key.display());
    let (out, text, rss) = dry_run_devices(&s, &[&a, &b], &cmdline);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("local key opened keyslot").count(),
        2,
        "{text}"
    );
    assert!(
        rss < (64 + 40) << 10,
        "peak RSS {rss} KiB: two 64 MiB Argon2 derivations at once"
    );
}

/// A tang binding whose replies wait for `gate`: (scratch, image, its key).
fn held_back_image(tang: &Tang, gate: &Gate, name: &str) -> (Scratch, PathBuf, PathBuf) {
    let s = Scratch::new("agent-held");
    let adv = save_adv(tang, &s);
    let relay = Relay::start(tang.port, gate.clone());
    let (img, key) = image(&s, "luks2", name);
    let cfg = format!(r#"{{"url":"{}","adv":"{}"}}"#, relay.url, adv.display());
    clevis_luks_bind(&img, &key, "tang", &cfg);
    (s, img, key)
}

/// The agent's dry-run unlock of `img` with the console on `pty`, the kernel command
/// line `cmdline` (from the file `cmdline` in `s`) and its log into the file `stderr`
/// in `s`.
fn on_console(pty: &Pty, s: &Scratch, cmdline: &str, img: &Path) -> std::process::Child {
    let line = s.path("cmdline");
    std::fs::write(&line, cmdline).unwrap();
    agent()
        .args([
            "unlock",
            "--dry-run",
            "--crypttab",
            "/nonexistent",
            "--console",
        ])
        .arg(&pty.path)
        .arg("--cmdline")
        .arg(&line)
        .arg("--device")
        .arg(img)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(s.path("stderr")).unwrap())
        .spawn()
        .unwrap()
}

/// The exit status of [`on_console`]'s `child`, waited for at most a minute (then it
/// is killed and `why` is the failure), and its log.
fn finish(
    child: &mut std::process::Child,
    s: &Scratch,
    why: &str,
) -> (std::process::ExitStatus, String) {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st, std::fs::read_to_string(s.path("stderr")).unwrap());
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("{why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The console prompt is up when Tang answers: the prompt is withdrawn and
/// the agent leaves the terminal as it found it, echo on.
#[test]
fn console_prompt_is_withdrawn_when_tang_answers() {
    if !tools() {
        return;
    }
    let tang = Tang::start();
    let gate = Gate::default();
    let (s, img, _) = held_back_image(&tang, &gate, "root.img");
    let mut pty = Pty::new();
    let cmdline = "latchkey.prompt-delay=0 latchkey.deadline=40 latchkey.timeout=30";
    let mut child = on_console(&pty, &s, cmdline, &img);
    pty.expect("Please enter passphrase for disk luks-");
    assert!(!pty.echo(), "echo is off while the prompt is up");
    gate.open();
    let (status, text) = finish(
        &mut child,
        &s,
        "the agent did not finish once Tang answered",
    );
    assert!(status.success(), "{text}");
    assert!(
        text.contains("would open with keyslot 1 (clevis token 0 (keyslot 1))"),
        "{text}"
    );
    assert!(pty.echo(), "the agent left the terminal with echo off");
}

/// No Tang server answers. The prompt comes first (prompt delay 0) and says that an
/// empty line lists the codes; once the deadline has passed, the console lists the
/// volume's recovery code by itself. What `tangd recover` answers from the server's key
/// directory, typed at the passphrase prompt (after a typo and a QR code), opens the
/// volume. The code is shown on the console only, never in the log.
#[test]
fn recovery_codes_at_the_console_open_a_volume_whose_tang_is_gone() {
    use latchkey_proto::curve::RustCrypto;
    use latchkey_proto::jwk::Jwk;
    use latchkey_proto::recovery::{RequestCode, answer_from_keys};

    if !tools() {
        return;
    }
    let (s, tang, img) = bound_to_a_stopped_tang("agent-offline");
    let keys: Vec<Jwk> = tang
        .key_files("deriveKey")
        .iter()
        .map(|p| Jwk::parse(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    let mut pty = Pty::new();
    let cmdline = "latchkey.prompt-delay=0 latchkey.deadline=3 latchkey.timeout=1";
    let mut child = on_console(&pty, &s, cmdline, &img);
    const PROMPT: &str = ", or a recovery answer: ";
    let early = pty.expect(PROMPT);
    assert!(
        early.contains("An empty line at the prompt shows recovery codes."),
        "{early}"
    );
    assert!(!early.contains("Recovery codes for disk"), "{early}");
    let shown = pty.expect(PROMPT);
    assert!(shown.contains("No Tang server could be reached"), "{shown}");
    println!("{shown}");
    assert!(shown.contains("Recovery codes for disk luks-"), "{shown}");
    assert!(shown.contains("1 answer needed: code 1 ("), "{shown}");
    let rows: Vec<&str> = shown.lines().map(str::trim).collect();
    let at = rows
        .iter()
        .position(|l| l.starts_with(&format!("code 1 of 1: {}", tang.url)))
        .expect("the code's heading");
    let code = rows[at + 1..at + 4].join(" ");
    let request = RequestCode::parse(&code).unwrap();
    let answer = answer_from_keys(&request, &keys, None, "db", &RustCrypto)
        .unwrap()
        .to_string();

    // A typo in group 2: named, and asked again.
    let mut typo: Vec<char> = answer.chars().collect();
    typo[14] = if typo[14] == 'Z' { 'Y' } else { 'Z' };
    pty.type_in(&format!("{}\n", typo.into_iter().collect::<String>()));
    let said = pty.expect(PROMPT);
    assert!(said.contains("group 2 does not check"), "{said}");
    // An empty line: the code as a QR code, its text beside it.
    pty.type_in("\n");
    let said = pty.expect(PROMPT);
    assert!(said.contains('█') && said.contains("key id "), "{said}");
    pty.type_in(&format!("{answer}\n"));

    let (status, text) = finish(&mut child, &s, "the agent did not finish after the answer");
    assert!(status.success(), "{text}");
    assert!(
        text.contains("would open with keyslot 1 (recovery codes for clevis token 0 (keyslot 1))"),
        "{text}"
    );
    let first_group = code.split(' ').next().unwrap();
    assert!(!text.contains(first_group), "a code in the log: {text}");
    assert!(pty.echo());
}

/// Two volumes, one console: B's prompt waits behind A's; when A opens by
/// Tang, A's prompt is withdrawn and B's takes the console.
#[test]
fn a_withdrawn_prompt_hands_the_console_to_the_next_volume() {
    use latchkey_agent::console::Console;
    use latchkey_agent::engine::{self, Ctx, LocalKey, NetGate};
    use latchkey_agent::kmsg_log::Log;
    use latchkey_agent::volume::Volume;
    use latchkey_client::time::Deadline;
    use std::sync::Arc;
    use std::time::Instant;

    if !tools() {
        return;
    }
    let tang = Tang::start();
    let gate = Gate::default();
    let (_sa, a, _) = held_back_image(&tang, &gate, "a.img");
    let sb = Scratch::new("agent-b");
    let (b, b_key) = image(&sb, "luks2", "b.img");
    let volume = |path: &Path, name: &str| {
        let header = latchkey_luks::Header::read(&mut std::fs::File::open(path).unwrap()).unwrap();
        Arc::new(Volume::new(
            name.into(),
            path.to_owned(),
            latchkey_sys::dm::DevId { major: 0, minor: 0 },
            32 << 11,
            header,
            vec![],
        ))
    };
    let mut pty = Pty::new();
    let now = Instant::now();
    let log = Arc::new(Log::memory(now, true));
    let ctx = Arc::new(Ctx {
        log: log.clone(),
        net: NetGate::new(
            Box::new(|| Ok(())),
            Deadline::after(now, Duration::from_secs(60)),
            NetGate::backoff(),
            log.clone(),
        ),
        local_key: LocalKey::new(Box::new(|| Ok(None))),
        tpm: Arc::new(latchkey_agent::tpm::BootTpm::new(log.clone())),
        deadline: Deadline::after(now, Duration::from_secs(60)),
        timeout: Duration::from_secs(50),
        trust: latchkey_client::Trust::System,
        prompt_at: now,
        console: Console::open_path(&pty.path),
        limits: latchkey_luks::Limits::new(1 << 20),
    });
    let race = |vol: Arc<Volume>| {
        let ctx = ctx.clone();
        std::thread::spawn(move || engine::race(vol, ctx).map(|o| o.method))
    };
    let race_a = race(volume(&a, "a"));
    pty.expect("Please enter passphrase for disk a (");
    let race_b = race(volume(&b, "b"));
    // B has nothing automatic to try: it wants the console now, and waits.
    std::thread::sleep(Duration::from_millis(500));
    gate.open();
    assert_eq!(
        race_a.join().unwrap().unwrap(),
        "clevis token 0 (keyslot 1)"
    );
    pty.expect("Please enter passphrase for disk b (");
    let pass = std::fs::read_to_string(&b_key).unwrap();
    pty.type_in(&format!("{pass}\n"));
    assert_eq!(race_b.join().unwrap().unwrap(), "console passphrase");
    assert!(pty.echo());
}

/// The same device given twice (here the same image under two paths) is
/// opened once; the second is refused, naming the first.
#[test]
fn one_device_given_twice_is_opened_once() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-twice");
    let (img, key) = image(&s, "luks2", "root.img");
    let link = s.path("also-root.img");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    let cmdline = format!("latchkey.key={} latchkey.deadline=10", key.display());
    let (out, text, _) = dry_run_devices(&s, &[&img, &link], &cmdline);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.matches("would open with keyslot 0").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{} has the same LUKS UUID as {}",
            link.display(),
            img.display()
        )),
        "{text}"
    );
}

/// A clevis tpm2 binding alone opens from the TPM; in an sss with Tang, the TPM share
/// and the Tang share are fetched side by side; a changed PCR is named per binding and
/// the race goes on to Tang.
#[test]
fn tpm2_bindings_open_alone_and_beside_tang() {
    if !tpm_tools() {
        return;
    }
    let s = Scratch::new("agent-tpm2");
    let sw = Swtpm::start();
    let mut tang = Tang::start();
    let agent_on = |sw: &Swtpm| sw.command(env!("CARGO_BIN_EXE_latchkey-agent"));
    let cmdline = "latchkey.timeout=2 latchkey.deadline=20";

    let (alone, key) = image(&s, "luks2", "alone.img");
    sw.clevis_luks_bind(&alone, &key, "tpm2", PCR7);
    let (out, text, _) = dry_run_with(agent_on(&sw), &s, &[&alone], cmdline);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tpm2 (sha256:7): unsealed"), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");

    let (both, key) = image(&s, "luks2", "both.img");
    let sss = |t: u8| {
        format!(
            r#"{{"t":{t},"pins":{{"tpm2":{{"pcr_bank":"sha256","pcr_ids":"7"}},"tang":[{{"url":"{}"}}]}}}}"#,
            tang.url
        )
    };
    sw.clevis_luks_bind(&both, &key, "sss", &sss(2));
    let (either, key) = image(&s, "luks2", "either.img");
    sw.clevis_luks_bind(&either, &key, "sss", &sss(1));
    let (out, text, _) = dry_run_with(agent_on(&sw), &s, &[&both, &either], cmdline);
    assert!(out.status.success(), "{text}");
    assert_eq!(opened_by_keyslot_1(&text), 2, "{text}");

    // Tang down: t=2 fails naming the server; t=1 opens from the TPM alone.
    tang.stop();
    let (out, text, _) = dry_run_with(agent_on(&sw), &s, &[&both, &either], cmdline);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(opened_by_keyslot_1(&text), 1, "{text}");
    assert!(text.contains(&tang.url), "{text}");
    assert!(text.contains("NOT opened"), "{text}");

    // PCR 7 changed, Tang back: the TPM share is refused by name (logged as it happens,
    // and in the failed volume's report), and Tang opens the t=1 volume.
    tang.resume();
    sw.extend_pcr("sha256", 7);
    let (out, text, _) = dry_run_with(agent_on(&sw), &s, &[&alone, &either], cmdline);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(opened_by_keyslot_1(&text), 1, "{text}");
    let refused = "tpm2 (sha256:7): PCR sha256:7 policy does not match";
    assert!(text.contains(&format!("warning: {refused}")), "{text}");
    let report = format!("NOT opened:\nlatchkey: error:   - clevis token 0 (keyslot 1): {refused}");
    assert!(text.contains(&report), "{text}");
}

/// No TPM at all: said once for the whole boot, however many bindings need it, and the
/// other methods still run.
#[test]
fn a_missing_tpm_is_said_once_per_boot() {
    if !tpm_tools() {
        return;
    }
    let s = Scratch::new("agent-notpm");
    let sw = Swtpm::start();
    let tang = Tang::start();
    let mut imgs = Vec::new();
    for name in ["a.img", "b.img"] {
        let (img, key) = image(&s, "luks2", name);
        sw.clevis_luks_bind(&img, &key, "tpm2", "{}");
        sw.clevis_luks_bind(&img, &key, "tpm2", PCR7);
        imgs.push(img);
    }
    let (c, key) = image(&s, "luks2", "c.img");
    let cfg = format!(
        r#"{{"t":1,"pins":{{"tpm2":{{}},"tang":[{{"url":"{}"}}]}}}}"#,
        tang.url
    );
    sw.clevis_luks_bind(&c, &key, "sss", &cfg);
    drop(sw);
    let mut cmd = agent();
    cmd.env(
        "TPM2TOOLS_TCTI",
        format!("device:{}", s.path("tpmrm0").display()),
    );
    let paths: Vec<&Path> = imgs
        .iter()
        .map(|p| p.as_path())
        .chain([c.as_path()])
        .collect();
    let (out, text, _) = dry_run_with(cmd, &s, &paths, "latchkey.timeout=2 latchkey.deadline=20");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let missing = format!("no TPM device: {} not found", s.path("tpmrm0").display());
    assert_eq!(
        text.matches(&format!("TPM: {missing}")).count(),
        1,
        "{text}"
    );
    assert_eq!(opened_by_keyslot_1(&text), 1, "{text}");
}

/// `latchkey-agent decrypt` unseals clevis tpm2 JWEs as the cli does.
#[test]
fn decrypt_mode_unseals_a_clevis_tpm2_jwe() {
    if !tpm_tools() {
        return;
    }
    let sw = Swtpm::start();
    let jwe = clevis_encrypt(
        sw.command("clevis"),
        &["tpm2", PCR7],
        b"sealed for the agent",
    );
    sw.flush_all();
    let agent = sw.command(env!("CARGO_BIN_EXE_latchkey-agent"));
    assert_eq!(agent_decrypt(agent, &jwe), b"sealed for the agent");
}
