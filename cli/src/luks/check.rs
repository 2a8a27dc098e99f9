//! `latchkey luks check`: what a boot would do with a LUKS device or image,
//! without activating anything.
//!
//! ```text
//!   header (both copies) ─▶ keyslots ─▶ clevis bindings ─▶ pin tree + Tang reachability
//!                                             │              + each TPM share unsealed
//!                                             │
//!                         passphrase ─▶ keyslot opens?  (and --key-file)
//! ```
//! Exit status 0 only if some method opens a keyslot, as the agent would at boot.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use argh::FromArgs;
use latchkey_client::Options;
use latchkey_client::time::Backoff;
use latchkey_enroll::inventory;
use latchkey_luks::{Argon2Variant, ClevisBinding, CopyState, Header, Kdf, Limits, unlock};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, Unseal};
use latchkey_proto::{jws, pin};
use serde_json::{Map, Value, json};

/// Report what a boot would do with a LUKS device: header, clevis bindings and their
/// Tang servers, which keyslot opens and how. Exits 0 only if the volume would unlock.
#[derive(FromArgs)]
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
    /// print the findings as one JSON object
    #[argh(switch)]
    json: bool,
}

/// Runs `latchkey luks check ARGS`; the exit status.
pub fn run(args: &[String]) -> Result<i32> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match CheckArgs::from_args(&["latchkey luks check"], &strs) {
        Ok(a) => check(a),
        Err(e) if e.status.is_ok() => {
            println!("{}", e.output);
            Ok(0)
        }
        Err(e) => {
            eprintln!("{}", e.output);
            Ok(1)
        }
    }
}

/// Lines for people, or the same findings as JSON.
struct Out {
    json: bool,
    doc: Map<String, Value>,
}

impl Out {
    fn line(&self, text: String) {
        if !self.json {
            println!("{text}");
        }
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

/// Each tpm2 leaf of the tree unsealed on its own, as each Tang server is asked on its
/// own: a share the boot would not wait for (an sss quorum met by Tang first) shows
/// whether the TPM still gives it, say after a firmware update changed a PCR.
fn probe_tpm(jwe: &Jwe, tpm: &Arc<dyn Unseal>, opts: &Options) -> Vec<(String, String)> {
    // A tree that cannot be planned fails below, with its reason, in the binding's outcome.
    let Ok(mut plan) = Decryption::new(jwe, &mut latchkey_sys::rng::os()) else {
        return Vec::new();
    };
    let stop = AtomicBool::new(false);
    plan.unseal_requests()
        .into_iter()
        .map(|req| {
            // What the TPM gives is dropped (and zeroized) at once: only whether it did counts.
            let status = match tpm.unseal(&req.binding, opts.deadline().instant(), &stop) {
                Ok(_) => "unseals".to_owned(),
                Err(e) => format!("does NOT unseal: {e}"),
            };
            (req.binding.describe(), status)
        })
        .collect()
}

fn check(a: CheckArgs) -> Result<i32> {
    let dev = &a.device;
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let hdr = Header::read(&mut f)
        .with_context(|| format!("reading the LUKS header of {}", dev.display()))?;
    let limits = Limits::for_this_machine();
    let mut out = Out {
        json: a.json,
        doc: Map::new(),
    };
    let timeout = Duration::from_secs(a.timeout.max(1));
    let opts = Options::new(timeout, timeout * 3, 1).with_backoff(Backoff::new(
        Duration::from_millis(200),
        2,
        Duration::from_secs(1),
    ));

    let tpm = crate::tpm::unsealer();

    out.line(format!("device: {}", dev.display()));
    let label = hdr.label().filter(|l| !l.is_empty());
    out.line(format!(
        "LUKS{}, UUID {}{}",
        hdr.version().number(),
        hdr.uuid(),
        label.map(|l| format!(", label {l}")).unwrap_or_default()
    ));
    let h = hdr.health();
    out.line(format!(
        "header: using the {:?} copy; primary {}; secondary {}",
        h.used,
        copy_state(&h.primary),
        copy_state(&h.secondary)
    ));
    out.doc.insert("device".into(), json!(dev));
    out.doc.insert("luks".into(), json!(hdr.version().number()));
    out.doc.insert("uuid".into(), json!(hdr.uuid()));
    out.doc.insert("label".into(), json!(label));
    out.doc.insert(
        "header".into(),
        json!({"used": format!("{:?}", h.used).to_lowercase(),
               "primary": copy_state(&h.primary), "secondary": copy_state(&h.secondary)}),
    );
    let mut slots = Vec::new();
    for ks in hdr.keyslots() {
        let binding = hdr.clevis_binding_for(ks.id).map(ClevisBinding::to_string);
        let bound = binding
            .as_ref()
            .map(|b| format!(", {b}"))
            .unwrap_or_default();
        out.line(format!("keyslot {}: {}{bound}", ks.id, kdf_name(&ks.kdf)));
        slots.push(json!({"slot": ks.id, "kdf": kdf_name(&ks.kdf), "binding": binding}));
    }
    out.doc.insert("keyslots".into(), Value::Array(slots));
    let inv = inventory::inventory(&hdr, &mut f);
    for p in &inv.problems {
        out.line(format!("WARNING: {}", p.describe()));
    }
    out.doc.insert(
        "problems".into(),
        inv.problems.iter().map(|p| json!(p.describe())).collect(),
    );

    let mut opened: Vec<String> = Vec::new();
    let mut found = Vec::new();
    let bindings = hdr.clevis_bindings();
    if bindings.is_empty() {
        out.line("clevis: no binding".into());
    }
    for b in bindings {
        let name = b.to_string();
        let jwe = match &b.jwe {
            Ok(j) => j,
            Err(e) => {
                out.line(format!("{name}: unreadable JWE: {e}"));
                found.push(json!({"binding": name, "error": format!("unreadable JWE: {e}")}));
                continue;
            }
        };
        out.line(format!("{name}: {}", pin::describe(&jwe.header)));
        let mut servers = Vec::new();
        for (url, kid) in &pin::tang_servers(&jwe.header) {
            let status = probe_tang(url, kid, &opts);
            out.line(format!("  {url}: {status}"));
            servers.push(json!({"url": url, "kid": kid, "status": status}));
        }
        let mut tpm2 = Vec::new();
        for (what, status) in probe_tpm(jwe, &tpm, &opts) {
            out.line(format!("  {what}: {status}"));
            tpm2.push(json!({"binding": what, "status": status}));
        }
        let how = latchkey_client::Recover {
            opts: &opts,
            tpm: Some(tpm.clone()),
            network: None,
            deadline: opts.deadline(),
        };
        let outcome = latchkey_client::open_keyslot(
            jwe,
            b.keyslot,
            &hdr,
            how,
            &limits,
            || File::open(dev),
            || (),
        )
        .map_err(|e| e.to_string());
        let mut entry = json!({"binding": name, "keyslot": b.keyslot,
            "policy": pin::describe(&jwe.header), "servers": servers, "tpm2": tpm2});
        match outcome {
            Ok(u) => {
                out.line(format!("  opens keyslot {}", u.keyslot));
                entry["opens"] = json!(u.keyslot);
                opened.push(name);
            }
            Err(e) => {
                out.line(format!("  FAILS: {e}"));
                entry["error"] = json!(e);
            }
        }
        found.push(entry);
    }
    out.doc.insert("bindings".into(), Value::Array(found));
    if let Some(kf) = &a.key_file {
        let key =
            std::fs::read(kf).with_context(|| format!("reading key file {}", kf.display()))?;
        let key = latchkey_proto::secret::Secret::new(key);
        let mut f = File::open(dev)?;
        match unlock(&hdr, &mut f, key.expose(), None, &limits) {
            Ok(u) => {
                out.line(format!(
                    "key file {}: opens keyslot {}",
                    kf.display(),
                    u.keyslot
                ));
                out.doc
                    .insert("key_file".into(), json!({"path": kf, "opens": u.keyslot}));
                opened.push(format!("key file {}", kf.display()));
            }
            Err(e) => {
                out.line(format!("key file {}: FAILS: {e}", kf.display()));
                out.doc.insert(
                    "key_file".into(),
                    json!({"path": kf, "error": e.to_string()}),
                );
            }
        }
    }
    out.doc.insert("unlocks".into(), json!(!opened.is_empty()));
    if out.json {
        super::print_json(&Value::Object(std::mem::take(&mut out.doc)));
    }
    if opened.is_empty() {
        bail!("{} would NOT unlock at boot", dev.display());
    }
    out.line(format!("verdict: would unlock ({})", opened.join("; ")));
    Ok(0)
}
