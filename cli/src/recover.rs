//! `latchkey recover`: opening a disk with no network to Tang, the exchange carried by a
//! person as short codes (the format is `latchkey_proto::recovery`'s).
//!
//! ```text
//!  node, disk attached                    someone who reaches Tang
//!  recover challenge -d DEV --state F ──codes──▶ recover answer --url URL
//!                                               (or on the server: tangd recover --keys DIR)
//!  recover finish -d DEV --state F ◀──answers──┘
//!    └─▶ passphrase on stdout (| cryptsetup open --key-file - DEV NAME)
//! ```
//!
//! The state file holds the blinding scalars e (a secret): made 0600 with O_EXCL,
//! deleted once the passphrase is out.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use argh::FromArgs;
use latchkey_luks::{Header, Limits, unlock};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{self, Status};
use latchkey_proto::recovery::{self, AnswerCode, Recovery, RequestCode, State, split_codes};
use latchkey_proto::secret::Secret;
use latchkey_proto::{jws, tang};

use crate::{decrypt, input};

/// Recover a LUKS passphrase without network access to Tang, through codes read out to
/// someone who can reach it.
#[derive(FromArgs)]
#[argh(subcommand, name = "recover")]
pub struct Args {
    #[argh(subcommand)]
    command: Sub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Challenge(ChallengeArgs),
    Answer(AnswerArgs),
    Finish(FinishArgs),
}

/// Print the request codes (and QR codes) for a clevis binding, and keep their secret
/// half in a new state file.
#[derive(FromArgs)]
#[argh(subcommand, name = "challenge")]
struct ChallengeArgs {
    /// the LUKS device or image
    #[argh(option, short = 'd')]
    device: Option<PathBuf>,
    /// the keyslot whose clevis binding to use (default: the first bound one)
    #[argh(option, short = 's')]
    slot: Option<u32>,
    /// a clevis JWE file instead of a device
    #[argh(option, short = 'j')]
    jwe: Option<PathBuf>,
    /// the state file to create (mode 0600; it must not exist)
    #[argh(option)]
    state: PathBuf,
    /// do not draw QR codes
    #[argh(switch)]
    no_qr: bool,
}

/// Answer request codes (read on stdin) with one Tang server's /rec; prints the answer
/// codes.
#[derive(FromArgs)]
#[argh(subcommand, name = "answer")]
struct AnswerArgs {
    /// the Tang server
    #[argh(option)]
    url: String,
    /// the full key id, when the code's key id is not among the advertised keys (a
    /// rotated key); the challenge prints it beside each code
    #[argh(option)]
    kid: Option<String>,
    /// seconds one request may take (default 10)
    #[argh(option, default = "10.0")]
    timeout: f64,
}

/// Read answer codes on stdin and print the recovered passphrase.
#[derive(FromArgs)]
#[argh(subcommand, name = "finish")]
struct FinishArgs {
    /// the LUKS device or image
    #[argh(option, short = 'd')]
    device: Option<PathBuf>,
    /// the keyslot of the binding (default: the one the state file was made for)
    #[argh(option, short = 's')]
    slot: Option<u32>,
    /// a clevis JWE file instead of a device
    #[argh(option, short = 'j')]
    jwe: Option<PathBuf>,
    /// the state file made by challenge (deleted on success)
    #[argh(option)]
    state: PathBuf,
}

/// Runs `latchkey recover ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Challenge(a) => challenge(a),
        Sub::Answer(a) => answer(a),
        Sub::Finish(a) => finish(a),
    }
}

/// A clevis binding to recover: its JWE, and where it came from.
struct Binding {
    jwe: Jwe,
    what: String,
    keyslot: Option<u32>,
}

fn source(device: &Option<PathBuf>, jwe: &Option<PathBuf>) -> Result<()> {
    match (device, jwe) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => bail!("give either -d DEVICE or -j JWE-FILE"),
    }
}

fn read_jwe_file(path: &Path) -> Result<Binding> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&raw)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let jwe = Jwe::parse(text).with_context(|| format!("reading the JWE in {}", path.display()))?;
    Ok(Binding {
        jwe,
        what: path.display().to_string(),
        keyslot: None,
    })
}

/// The clevis bindings of a device (only `slot`'s if given), in keyslot order.
fn device_bindings(dev: &Path, slot: Option<u32>) -> Result<(Header, Vec<Binding>)> {
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let hdr = Header::read(&mut f)
        .with_context(|| format!("reading the LUKS header of {}", dev.display()))?;
    let mut out = Vec::new();
    for b in hdr.clevis_bindings() {
        if slot.is_some_and(|s| s != b.keyslot) {
            continue;
        }
        let jwe = b.jwe.clone().with_context(|| {
            format!(
                "reading the clevis JWE of {} keyslot {}",
                dev.display(),
                b.keyslot
            )
        })?;
        out.push(Binding {
            jwe,
            what: format!("{} keyslot {}", dev.display(), b.keyslot),
            keyslot: Some(b.keyslot),
        });
    }
    out.sort_by_key(|b| b.keyslot);
    if out.is_empty() {
        match slot {
            Some(s) => bail!("{} has no clevis binding on keyslot {s}", dev.display()),
            None => bail!("{} has no clevis binding", dev.display()),
        }
    }
    Ok((hdr, out))
}

fn challenge(a: ChallengeArgs) -> Result<()> {
    source(&a.device, &a.jwe)?;
    let (binding, others) = match (&a.device, &a.jwe) {
        (Some(dev), _) => {
            let (_, mut all) = device_bindings(dev, a.slot)?;
            // The first binding that needs Tang; the others are named so one can choose.
            let at = all
                .iter()
                .position(|b| pin::needs_network(&b.jwe.header))
                .unwrap_or(0);
            let chosen = all.remove(at);
            let others: Vec<String> = all
                .iter()
                .filter_map(|b| b.keyslot.map(|s| s.to_string()))
                .collect();
            (chosen, others)
        }
        (None, Some(file)) => (read_jwe_file(file)?, Vec::new()),
        (None, None) => unreachable!("checked by source()"),
    };
    let rec = Recovery::new(&binding.jwe, &mut latchkey_sys::rng::os())
        .with_context(|| format!("preparing the recovery of {}", binding.what))?;
    write_state(&a.state, &rec.state())?;

    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!(
        "# Recovery of {}: {}",
        binding.what,
        pin::describe(&binding.jwe.header)
    ));
    if !others.is_empty() {
        line(&format!(
            "# (keyslots {} are bound too: choose with -s)",
            others.join(", ")
        ));
    }
    line(&format!("# {}", rec.progress()));
    line("# Read each code to someone who can reach its Tang server. They run");
    line("#   latchkey recover answer --url URL    (or on the server: tangd recover --keys DIR)");
    line(&format!(
        "# and read the answer back to: latchkey recover finish {} --state {}",
        match (&a.device, &a.jwe) {
            (Some(d), _) => format!("-d {}", d.display()),
            (_, Some(j)) => format!("-j {}", j.display()),
            _ => String::new(),
        },
        a.state.display()
    ));
    for c in rec.challenges() {
        line("#");
        line(&format!(
            "# {} (key id {})",
            c.heading(rec.challenges().len()),
            c.kid
        ));
        if !a.no_qr {
            for row in recovery::qr_rows(c.code.code()) {
                line(&format!("# {row}"));
            }
        }
        for row in c.code.code().rows(4) {
            line(&row);
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the codes")?;
    Ok(())
}

/// Creates the state file: new (O_EXCL), 0600, synced before any code is shown.
fn write_state(path: &Path, state: &State) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating the state file {} (an existing one belongs to an unfinished recovery: finish it, or remove it)",
                path.display()
            )
        })?;
    let bytes = state.to_bytes();
    let written = f.write_all(bytes.expose()).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

fn answer(a: AnswerArgs) -> Result<()> {
    let opts = decrypt::client_options(a.timeout, a.timeout * 3.0, 2)?;
    let raw = input::stdin()?;
    let text = std::str::from_utf8(raw.expose()).context("stdin is not text")?;
    let codes = split_codes(text);
    if codes.is_empty() {
        bail!("no request code on stdin");
    }
    if a.kid.is_some() && codes.len() > 1 {
        bail!(
            "--kid names the key of one code; stdin holds {}",
            codes.len()
        );
    }
    let url = a.url.trim_end_matches('/');
    // Without --kid, the codes' key ids are resolved against the advertised keys.
    let adv = match &a.kid {
        Some(_) => None,
        None => {
            let body = latchkey_client::fetch_adv(url, None, &opts)?;
            Some(
                jws::verify_advertisement(&body)
                    .with_context(|| format!("the advertisement of {url}"))?,
            )
        }
    };
    let mut failed = 0;
    let mut stdout = std::io::stdout().lock();
    for (line, text) in codes {
        let result = RequestCode::parse(&text)
            .map_err(anyhow::Error::from)
            .and_then(|code| {
                let kid = match (&a.kid, &adv) {
                    (Some(kid), _) => kid.clone(),
                    (None, Some(adv)) => code
                        .resolve(adv.exchange_keys(), url)?
                        .thumbprint(latchkey_proto::jwk::ThpHash::S256),
                    (None, None) => unreachable!("fetched above"),
                };
                let reply = latchkey_client::post(
                    &format!("{url}/rec/{kid}"),
                    tang::REC_CONTENT_TYPE,
                    &code.rec_body(),
                    &opts,
                )?;
                Ok(code.answer_from_reply(&reply)?)
            });
        match result {
            Ok(answer) => {
                let mut text = format!("# answer to the code on line {line} ({url})\n");
                for row in answer.code().rows(4) {
                    text.push_str(&row);
                    text.push('\n');
                }
                stdout
                    .write_all(text.as_bytes())
                    .context("writing the answer")?;
            }
            Err(e) => {
                failed += 1;
                eprintln!("latchkey recover answer: the code on line {line}: {e:#}");
            }
        }
    }
    stdout.flush().context("writing the answers")?;
    if failed > 0 {
        bail!("{failed} code(s) not answered");
    }
    Ok(())
}

fn read_state(path: &Path) -> Result<State> {
    let mut buf = Vec::new();
    File::open(path)
        .with_context(|| format!("opening the state file {}", path.display()))?
        .take(64 << 10)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    let buf = Secret::new(buf);
    State::parse(buf.expose()).with_context(|| format!("reading {}", path.display()))
}

fn finish(a: FinishArgs) -> Result<()> {
    source(&a.device, &a.jwe)?;
    let state = read_state(&a.state)?;
    let (header, binding) = match (&a.device, &a.jwe) {
        (Some(dev), _) => {
            let (hdr, all) = device_bindings(dev, a.slot)?;
            let b = all
                .into_iter()
                .find(|b| state.is_for(&b.jwe))
                .with_context(|| {
                    format!(
                        "no clevis binding of {} matches the state file {} (was the binding changed since the challenge?)",
                        dev.display(),
                        a.state.display()
                    )
                })?;
            (Some(hdr), b)
        }
        (None, Some(file)) => {
            let b = read_jwe_file(file)?;
            if !state.is_for(&b.jwe) {
                bail!(
                    "the state file {} was made for another JWE than {}",
                    a.state.display(),
                    file.display()
                );
            }
            (None, b)
        }
        (None, None) => unreachable!("checked by source()"),
    };
    let mut rec = Recovery::resume(&binding.jwe, &state)
        .with_context(|| format!("resuming from {}", a.state.display()))?;

    let raw = input::stdin()?;
    let text = std::str::from_utf8(raw.expose()).context("stdin is not text")?;
    let answers = split_codes(text);
    if answers.is_empty() {
        bail!("no answer code on stdin; {}", rec.progress());
    }
    for (line, text) in answers {
        if matches!(rec.status(), Status::Done(_)) {
            eprintln!("latchkey recover finish: the answer on line {line} is not needed");
            continue;
        }
        match AnswerCode::parse(&text).and_then(|ans| rec.answer(&ans)) {
            Ok(n) => eprintln!("latchkey recover finish: the answer on line {line} opens code {n}"),
            Err(e) => eprintln!("latchkey recover finish: the answer on line {line}: {e}"),
        }
    }
    let passphrase = match rec.status() {
        Status::Done(p) => p,
        Status::Pending => bail!(
            "{}; the state file {} is kept: run finish again with every answer",
            rec.progress(),
            a.state.display()
        ),
        Status::Failed(e) => bail!("{}: {e}", binding.what),
    };
    if let (Some(hdr), Some(dev), Some(slot)) = (&header, &a.device, binding.keyslot) {
        // As clevis luks pass does: only a passphrase that opens its keyslot is printed.
        let limits = Limits::for_this_machine();
        let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
        unlock(hdr, &mut f, passphrase.expose(), Some(slot), &limits)
            .with_context(|| format!("the recovered passphrase does not open {}", binding.what))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(passphrase.expose())
        .and_then(|()| stdout.flush())
        .context("writing the passphrase")?;
    std::fs::remove_file(&a.state)
        .with_context(|| format!("removing the used state file {}", a.state.display()))?;
    Ok(())
}
