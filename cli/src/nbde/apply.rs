//! `latchkey nbde apply`, run by the companion `latchkey-luks` (it writes the
//! header through libcryptsetup): the request checked, the Tang servers'
//! advertisements fetched and verified, then latchkey-enroll's policy
//! applied, and the outcome printed for people or a controller.
//!
//! ```text
//!   args ─▶ Record::choose ─▶ recovery secret (a file) ─▶ tang::fetch_all
//!        ─▶ Session::open ─▶ policy::apply::apply (settle, plan, steps, check) ─▶ output
//! ```

use std::time::Duration;

use anyhow::{Context, Result, bail};
use argh::FromArgs;
use latchkey_client::Options;
use latchkey_enroll::Session;
use latchkey_enroll::policy::apply::{self, Policy};
use latchkey_enroll::policy::keyfile::{self, BootDir};
use latchkey_enroll::policy::{Mode, Record, Server};
use latchkey_proto::Secret;
use latchkey_proto::jwe::Jwe;
use serde_json::{Value, json};

use super::{ApplyArgs, TRADE_OFF, report, tang};

/// `latchkey-luks nbde apply ARGS...`.
pub fn main() -> ! {
    let argv: Vec<String> = std::env::args().skip(2).collect();
    if argv.first().map(String::as_str) != Some("apply") {
        eprintln!("latchkey-luks nbde: expected `apply`");
        std::process::exit(2);
    }
    let strs: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let a = match ApplyArgs::from_args(&["latchkey nbde apply"], &strs) {
        Ok(a) => a,
        Err(e) if e.status.is_ok() => {
            println!("{}", e.output);
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{}", e.output);
            std::process::exit(2)
        }
    };
    let code = match run(&a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latchkey nbde apply: {e:#}");
            if a.json {
                crate::luks::print_json(&json!({"device": a.device, "error": format!("{e:#}")}));
            }
            1
        }
    };
    std::process::exit(code)
}

/// The pins of a policy binding: encrypted against the advertisements in its
/// config, and never written unless it decrypts against its servers.
struct Pins {
    opts: Options,
}

impl latchkey_enroll::Pins for Pins {
    fn encrypt(&mut self, pin: &str, config: &str, secret: &Secret) -> Result<String, String> {
        crate::luks::pins::encrypt(pin, config, secret, true, &self.opts)
    }

    fn decrypt(&mut self, jwe: &str) -> Result<Secret, String> {
        let jwe = Jwe::parse(jwe).map_err(|e| e.to_string())?;
        latchkey_client::decrypt(&jwe, &self.opts).map_err(|e| e.to_string())
    }

    fn accept_unverified(&mut self, _: &str, _: &str, why: &str) -> Result<(), String> {
        Err(format!(
            "it could not be checked by decrypting it against its servers ({why})"
        ))
    }
}

/// The servers to bind: every one's advertisement, or with `allow_missing`
/// those that answered (at least `threshold`).
fn servers(record: &Record, allow_missing: bool, json: bool) -> Result<(Vec<Server>, Vec<Value>)> {
    if record.mode == Mode::Degraded {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (url, answer) in record
        .tang
        .iter()
        .zip(tang::fetch_all(&record.tang, &tang::options()))
    {
        match answer {
            Ok(s) => found.push(s),
            Err(e) => missing.push((url.clone(), e)),
        }
    }
    let lines: Vec<String> = missing.iter().map(|(u, e)| format!("{u}: {e}")).collect();
    if !missing.is_empty() && !allow_missing {
        bail!(
            "{} of {} Tang servers did not give a valid advertisement (pass --allow-missing to \
             bind the others): {}",
            missing.len(),
            record.tang.len(),
            lines.join("; ")
        );
    }
    let t = record.threshold.unwrap_or(1) as usize;
    if found.len() < t {
        bail!(
            "{} needs {t} Tang server{} and only {} answered: {}",
            record.describe(),
            if t == 1 { "" } else { "s" },
            found.len(),
            lines.join("; ")
        );
    }
    if !json {
        for l in &lines {
            eprintln!(
                "latchkey nbde apply: warning: {l}; the binding leaves it out and \
                 `latchkey nbde status` reports it as partial"
            );
        }
    }
    let missing = missing
        .into_iter()
        .map(|(u, e)| json!({"url": u, "error": e}))
        .collect();
    Ok((found, missing))
}

fn run(a: &ApplyArgs) -> Result<i32> {
    let record = match a.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("latchkey nbde apply: {e}");
            return Ok(2);
        }
    };
    let recovery = keyfile::read(&a.recovery_key_file)
        .context("reading the recovery secret")?
        .with_context(|| {
            format!(
                "the recovery secret file {} does not exist",
                a.recovery_key_file.display()
            )
        })?;
    let (servers, missing) = servers(&record, a.allow_missing, a.json)?;
    let boot = BootDir::new(&a.boot_dir);
    let dev = a.device.display().to_string();
    let mut pins = Pins {
        opts: Options::new(Duration::from_secs(10), Duration::from_secs(30), 3),
    };
    let mut s = Session::open(&a.device, &mut pins)?;
    let policy = Policy {
        record: &record,
        servers: &servers,
        boot: &boot,
        limits: latchkey_luks::Limits::for_this_machine(),
    };
    let mut progress = |step: &latchkey_enroll::policy::Step| {
        if !a.json {
            println!("done: {}", step.describe(&boot));
        }
    };
    let out = match apply::apply(&mut s, &recovery, &policy, a.dry_run, &mut progress) {
        Err(apply::Error::WrongRecovery { .. }) => bail!(
            "{dev}: the recovery secret in {} opens no keyslot; nothing was changed",
            a.recovery_key_file.display()
        ),
        r => r.with_context(|| format!("applying {} to {dev}", record.describe()))?,
    };
    drop(s);
    let settled: Vec<String> = out.settled.iter().map(|d| d.describe()).collect();
    let changed = !a.dry_run && (!out.steps.is_empty() || !settled.is_empty());
    if a.json {
        let mut doc = report::state_json(&out.state, &boot);
        doc.insert("device".into(), json!(a.device));
        doc.insert("changed".into(), json!(changed));
        doc.insert("dryRun".into(), json!(a.dry_run));
        doc.insert(
            "steps".into(),
            out.steps.iter().map(|st| st.to_json(&boot)).collect(),
        );
        doc.insert("settled".into(), json!(settled));
        doc.insert("unreachable".into(), Value::Array(missing));
        crate::luks::print_json(&Value::Object(doc));
        return Ok(0);
    }
    for d in &settled {
        eprintln!("latchkey nbde apply: {dev}: {d}");
    }
    if a.dry_run {
        if out.steps.is_empty() {
            println!("{dev}: {} is in force; nothing to do", record.describe());
        } else {
            println!(
                "{dev}: plan for {} (dry run: nothing is changed):",
                record.describe()
            );
            for (i, st) in out.steps.iter().enumerate() {
                println!("  {}. {}", i + 1, st.describe(&boot));
            }
        }
        return Ok(0);
    }
    if changed {
        println!("{dev}: {}", report::summary(&out.state));
    } else {
        println!("{dev}: {} is in force; nothing changed", record.describe());
    }
    if record.mode == Mode::Degraded {
        println!("note: {TRADE_OFF}");
    }
    Ok(0)
}
