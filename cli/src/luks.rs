//! `latchkey luks check`: what a boot would do with a LUKS device or image,
//! without activating anything.
//!
//! ```text
//!   header (both copies) ─▶ keyslots ─▶ clevis bindings ─▶ pin tree + Tang reachability
//!                                             │
//!                         passphrase ─▶ keyslot opens?  (and --key-file)
//! ```
//! Exit status 0 only if some method opens a keyslot, as the agent would at boot.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use argh::FromArgs;
use latchkey_client::{Options, Retry};
use latchkey_luks::{
    Argon2Variant, BindingSource, ClevisBinding, CopyState, Header, Kdf, Limits, unlock,
};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::{jws, pin};

/// LUKS volumes bound with clevis.
#[derive(FromArgs)]
#[argh(subcommand, name = "luks")]
pub struct Args {
    #[argh(subcommand)]
    command: Sub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Check(CheckArgs),
}

/// Report what a boot would do with a LUKS device: header, clevis bindings and their
/// Tang servers, which keyslot opens and how. Exits 0 only if the volume would unlock.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// the LUKS block device or image file
    #[argh(option, short = 'd')]
    device: PathBuf,
    /// a key file to try too (e.g. the local boot key)
    #[argh(option)]
    key_file: Option<PathBuf>,
    /// seconds allowed for one Tang request (default 5)
    #[argh(option, default = "5")]
    timeout: u64,
}

/// Runs `latchkey luks ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Check(a) => check(a),
    }
}

fn copy_state(s: &CopyState) -> String {
    match s {
        CopyState::Valid { seqid } => format!("valid, seqid {seqid}"),
        CopyState::Damaged { reason } => format!("DAMAGED: {reason}"),
        CopyState::Absent => "none".into(),
        _ => "unknown".into(),
    }
}

fn kdf_name(k: &Kdf) -> String {
    match k {
        Kdf::Pbkdf2 {
            hash, iterations, ..
        } => format!("pbkdf2 {hash:?} {iterations} iterations").to_lowercase(),
        Kdf::Argon2 {
            variant,
            time,
            memory_kib,
            cpus,
            ..
        } => {
            format!(
                "argon2{} t={time} m={memory_kib}KiB p={cpus}",
                if *variant == Argon2Variant::I {
                    "i"
                } else {
                    "id"
                }
            )
        }
        _ => "other kdf".into(),
    }
}

/// `clevis token 0 (keyslot 1)` / `LUKSMeta slot 2`.
fn binding_name(b: &ClevisBinding) -> String {
    match b.source {
        BindingSource::Luks2Token(t) => format!("clevis token {t} (keyslot {})", b.keyslot),
        _ => format!("clevis LUKSMeta slot {}", b.keyslot),
    }
}

/// Whether a Tang server answers `/adv` with a valid advertisement, and whether
/// it still advertises the binding's key.
fn probe_tang(url: &str, kid: &str, opts: &Options) -> String {
    match latchkey_client::fetch_adv(url, None, opts) {
        Err(e) => format!("NOT answering: {e}"),
        Ok(body) => match jws::verify_advertisement(&body) {
            Err(e) => format!("answers, but its advertisement is invalid: {e}"),
            Ok(adv) if adv.find_by_thumbprint(kid).is_some() => {
                "answers; key still advertised".into()
            }
            Ok(_) => format!(
                "answers; key {kid} is no longer advertised (rotated; recovery still works while the server keeps it)"
            ),
        },
    }
}

fn check(a: CheckArgs) -> Result<()> {
    let dev = &a.device;
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let hdr = Header::read(&mut f)
        .with_context(|| format!("reading the LUKS header of {}", dev.display()))?;
    let limits = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| Limits::from_meminfo(&m))
        .unwrap_or_else(|| Limits::new(1 << 20));
    let timeout = Duration::from_secs(a.timeout.max(1));
    let opts = Options {
        connect_timeout: timeout,
        timeout,
        deadline: timeout * 3,
        retry: Retry {
            retries: 1,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
        },
        rewrite: None,
    };

    let tpm = crate::tpm::unsealer();

    println!("device: {}", dev.display());
    print!("LUKS{}, UUID {}", hdr.version().number(), hdr.uuid());
    match hdr.label() {
        Some(l) if !l.is_empty() => println!(", label {l}"),
        _ => println!(),
    }
    let h = hdr.health();
    println!(
        "header: using the {:?} copy; primary {}; secondary {}",
        h.used,
        copy_state(&h.primary),
        copy_state(&h.secondary)
    );
    for ks in hdr.keyslots() {
        let bound = hdr
            .clevis_binding_for(ks.id)
            .map(|b| format!(", {}", binding_name(b)))
            .unwrap_or_default();
        println!("keyslot {}: {}{bound}", ks.id, kdf_name(&ks.kdf));
    }

    let mut opened: Vec<String> = Vec::new();
    let bindings = hdr.clevis_bindings();
    if bindings.is_empty() {
        println!("clevis: no binding");
    }
    for b in bindings {
        let name = binding_name(b);
        let jwe = match Jwe::parse(&b.jwe) {
            Ok(j) => j,
            Err(e) => {
                println!("{name}: unreadable JWE: {e}");
                continue;
            }
        };
        println!("{name}: {}", pin::describe(&jwe.header));
        for (url, kid) in &pin::tang_servers(&jwe.header) {
            println!("  {url}: {}", probe_tang(url, kid, &opts));
        }
        let outcome = latchkey_client::decrypt_with(&jwe, &opts, Some(tpm.clone()))
            .map_err(|e| e.to_string())
            .and_then(|pass| {
                let mut f = File::open(dev).map_err(|e| e.to_string())?;
                unlock(&hdr, &mut f, pass.expose(), Some(b.keyslot), &limits)
                    .map_err(|e| format!("keyslot {}: {e}", b.keyslot))
            });
        match outcome {
            Ok(u) => {
                println!("  opens keyslot {}", u.keyslot);
                opened.push(name);
            }
            Err(e) => println!("  FAILS: {e}"),
        }
    }
    if let Some(kf) = &a.key_file {
        let key =
            std::fs::read(kf).with_context(|| format!("reading key file {}", kf.display()))?;
        let key = latchkey_proto::secret::Secret::new(key);
        let mut f = File::open(dev)?;
        match unlock(&hdr, &mut f, key.expose(), None, &limits) {
            Ok(u) => {
                println!("key file {}: opens keyslot {}", kf.display(), u.keyslot);
                opened.push(format!("key file {}", kf.display()));
            }
            Err(e) => println!("key file {}: FAILS: {e}", kf.display()),
        }
    }
    if opened.is_empty() {
        bail!("{} would NOT unlock at boot", dev.display());
    }
    println!("verdict: would unlock ({})", opened.join("; "));
    Ok(())
}
