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
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use argh::FromArgs;
use latchkey_client::Options;
use latchkey_client::time::Backoff;
use latchkey_enroll::inventory;
use latchkey_luks::{Argon2Variant, ClevisBinding, CopyState, Header, Kdf, Limits, unlock};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, Tpm2Binding, Unseal};
use latchkey_proto::secret::Secret;
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

/// Each tpm2 share of a binding unsealed on its own, as each Tang server is asked on its
/// own: a share the boot would not wait for (an sss quorum met by Tang first) shows
/// whether the TPM still gives it, say after a firmware update changed a PCR. The
/// answers then serve the binding's own recovery, so the TPM is asked once per share.
struct Asked {
    tpm: Arc<dyn Unseal>,
    answers: Vec<(Tpm2Binding, Result<Secret, String>)>,
}

impl Asked {
    fn probe(jwe: &Jwe, tpm: &Arc<dyn Unseal>, opts: &Options) -> Asked {
        let stop = AtomicBool::new(false);
        // A tree that cannot be planned fails in the binding's outcome, with its reason.
        let answers = match Decryption::new(jwe, &mut latchkey_sys::rng::os()) {
            Ok(mut plan) => plan
                .unseal_requests()
                .into_iter()
                .map(|req| {
                    let answer = tpm.unseal(&req.binding, opts.deadline().instant(), &stop);
                    (Tpm2Binding::clone(&req.binding), answer)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        Asked {
            tpm: tpm.clone(),
            answers,
        }
    }

    /// `(tpm2 (sha256:7), unseals | does NOT unseal: WHY)` for each share asked.
    fn findings(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.answers.iter().map(|(binding, answer)| {
            let status = match answer {
                Ok(_) => "unseals".to_owned(),
                Err(e) => format!("does NOT unseal: {e}"),
            };
            (binding.describe(), status)
        })
    }
}

impl Unseal for Asked {
    fn unseal(
        &self,
        binding: &Tpm2Binding,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Secret, String> {
        match self.answers.iter().find(|(asked, _)| asked == binding) {
            Some((_, answer)) => answer.clone(),
            None => self.tpm.unseal(binding, deadline, stop),
        }
    }
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
        let asked = Asked::probe(jwe, &tpm, &opts);
        let mut tpm2 = Vec::new();
        for (what, status) in asked.findings() {
            out.line(format!("  {what}: {status}"));
            tpm2.push(json!({"binding": what, "status": status}));
        }
        let how = latchkey_client::Recover {
            opts: &opts,
            tpm: Some(Arc::new(asked)),
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
        let key = Secret::new(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::pin::{EncryptIo, SealRequest, Sealed};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Seals by keeping what it was given; no network, no files.
    #[derive(Default)]
    struct KeepingTpm {
        sealed: Option<Secret>,
    }

    impl EncryptIo for KeepingTpm {
        fn fetch_adv(&mut self, _: &str, _: Option<&str>) -> Result<Vec<u8>, String> {
            Err("no network here".into())
        }
        fn read_file(&mut self, _: &str) -> Result<Vec<u8>, String> {
            Err("no files here".into())
        }
        fn trust(&mut self, _: &str, _: &[String]) -> bool {
            false
        }
        fn tpm2_seal(&mut self, req: &SealRequest) -> Result<Sealed, String> {
            self.sealed = Some(req.data.clone());
            Ok(Sealed {
                jwk_pub: vec![1; 8],
                jwk_priv: vec![2; 8],
                pcr_bank: None,
            })
        }
    }

    /// Gives back what was sealed, counting how often it is asked.
    struct CountingTpm {
        sealed: Secret,
        asked: AtomicUsize,
    }

    impl Unseal for CountingTpm {
        fn unseal(&self, _: &Tpm2Binding, _: Instant, _: &AtomicBool) -> Result<Secret, String> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Ok(self.sealed.clone())
        }
    }

    #[test]
    fn the_probe_and_the_bindings_recovery_ask_the_tpm_once_per_share() {
        let mut io = KeepingTpm::default();
        let mut rng = latchkey_sys::rng::os();
        let compact =
            pin::encrypt_json("tpm2", "{}", b"the passphrase", false, &mut io, &mut rng).unwrap();
        let jwe = Jwe::parse(&compact).unwrap();
        let tpm = Arc::new(CountingTpm {
            sealed: io.sealed.unwrap(),
            asked: AtomicUsize::new(0),
        });
        let opts = Options::new(Duration::from_secs(2), Duration::from_secs(6), 1);

        let asked = Asked::probe(&jwe, &(tpm.clone() as Arc<dyn Unseal>), &opts);
        assert_eq!(
            asked.findings().collect::<Vec<_>>(),
            vec![("tpm2 (no PCR policy)".to_owned(), "unseals".to_owned())]
        );
        let plaintext = latchkey_client::decrypt_with(&jwe, &opts, Some(Arc::new(asked))).unwrap();
        assert_eq!(plaintext.expose(), b"the passphrase");
        assert_eq!(tpm.asked.load(Ordering::SeqCst), 1);
    }
}
