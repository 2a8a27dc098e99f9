//! The header-changing commands, run by the companion `latchkey-luks`:
//! `bind`, `unbind`, `regen`, `edit`, with clevis's flags, prompts, messages
//! and exit statuses. The changes themselves are latchkey-enroll's `Session`.
//!
//! ```text
//!   parse ─▶ open (writable LUKS) ─▶ settle (finish/undo an interrupted run) ─▶ existing key
//!         ─▶ Session::bind | unbind | rebind ─▶ clevis's success line, or --json
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use latchkey_enroll::inventory;
use latchkey_enroll::journal::Op;
use latchkey_enroll::listing;
use latchkey_enroll::{Bound, Error, Request, Session, Settled};
use latchkey_luks::Version;
use latchkey_proto::Secret;
use serde_json::{Value, json};

use super::opts::{Opts, Spec};
use super::pins::{self, Pins};
use crate::tty;

/// Largest key file read (cryptsetup's default `--keyfile-size` limit).
const MAX_KEY_FILE: u64 = 8 << 20;
/// Pins `bind` can use.
const PINS: [&str; 4] = ["tang", "sss", "tpm2", "null"];

/// `latchkey-luks COMMAND ARGS...`.
pub fn main() {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let spec: &Spec = match command.as_str() {
        "bind" => &super::BIND,
        "unbind" => &super::UNBIND,
        "regen" => &super::REGEN,
        "edit" => &super::EDIT,
        other => {
            eprintln!("latchkey-luks: unknown command {other:?} (bind, unbind, regen or edit)");
            std::process::exit(1)
        }
    };
    let o = super::parse_or_exit(spec, &rest);
    let result = match spec.name {
        "bind" => bind(&o),
        "unbind" => unbind(&o),
        "regen" => regen(&o),
        _ => edit(&o),
    };
    if let Err(e) = &result {
        if o.json {
            super::print_json(&json!({"error": format!("{e:#}")}));
        }
    }
    super::exit_with(spec.name, result)
}

fn pins(yes: bool) -> Pins {
    Pins {
        yes,
        opts: pins::options(),
        warnings: Vec::new(),
    }
}

/// Prints what settling did (stderr) and keeps it for `--json`.
fn settled_notes(dev: &str, done: &[Settled]) -> Vec<Value> {
    done.iter()
        .map(|s| {
            eprintln!("latchkey luks: {dev}: {}", s.describe());
            json!(s.describe())
        })
        .collect()
}

fn warn(pins: &Pins) {
    for w in &pins.warnings {
        eprintln!("latchkey luks: warning: {w}");
    }
}

/// The journal a settle finished for `op` on `slot`, if any.
fn finished(
    done: &[Settled],
    op: Op,
    slot: Option<u32>,
) -> Option<&latchkey_enroll::journal::Journal> {
    done.iter().find_map(|s| match s {
        Settled::Finished(j) if j.op == op && slot.is_none_or(|s| s == j.keyslot) => Some(j),
        _ => None,
    })
}

fn bound_json(dev: &str, b: &Bound, pin: &str, config: &str, settled: Vec<Value>) -> Value {
    let token = match b.store {
        inventory::Store::Token(t) => Some(t),
        inventory::Store::LuksMeta(_) => None,
    };
    json!({
        "device": dev,
        "slot": b.keyslot,
        "token": token,
        "pin": pin,
        "config": config,
        "verified": b.verified,
        "settled": settled,
    })
}

/// Reads the existing passphrase as `-k` says: a file (whole), `-` (one line of
/// stdin) or, without `-k`, a prompt on stdin.
fn existing_key(key: Option<&str>) -> Result<Option<Secret>> {
    match key {
        None => Ok(tty::ask_secret("Enter existing LUKS password: ")),
        Some("-") => Ok(tty::ask_secret("")),
        Some(file) => {
            let meta = std::fs::metadata(file)
                .with_context(|| format!("Cannot read key file '{file}'"))?;
            if meta.len() > MAX_KEY_FILE {
                bail!("key file '{file}' is larger than {MAX_KEY_FILE} bytes");
            }
            let bytes =
                std::fs::read(file).with_context(|| format!("Cannot read key file '{file}'"))?;
            Ok(Some(Secret::new(bytes)))
        }
    }
}

/// clevis's way to an existing key: the given one; else the passphrase of any
/// binding; else one more prompt on stdin.
fn unlock(s: &mut Session<'_>, given: Option<Secret>) -> Result<()> {
    if let Some(k) = given {
        match s.unlock(&k) {
            Ok(_) => return Ok(()),
            Err(Error::WrongPassphrase { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if s.unlock_with_bindings()?.is_some() {
        return Ok(());
    }
    if let Some(k) = tty::ask_secret("Enter existing LUKS password: ") {
        s.unlock(&k)?;
        return Ok(());
    }
    Err(Error::WrongPassphrase {
        device: s.path().to_path_buf(),
    }
    .into())
}

fn luks_version(dev: &str) -> Result<Version> {
    Ok(super::read_header(dev)?.0.version())
}

fn bind(o: &Opts) -> Result<i32> {
    let spec = &super::BIND;
    let (dev, slot) = super::device_and_slot(spec, o, false);
    let version = match luks_version(&dev) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{dev} is not a supported LUKS device ({e:#})");
            return Ok(1);
        }
    };
    let Some(pin) = o.operands.first().filter(|p| !p.is_empty()) else {
        super::usage(spec, "Did not specify a pin!");
    };
    if !PINS.contains(&pin.as_str()) {
        super::usage(spec, &format!("'{pin}' is not a valid pin!"));
    }
    let Some(config) = o.operands.get(1).filter(|c| !c.is_empty()) else {
        super::usage(spec, "Did not specify a pin config!");
    };
    if !matches!(serde_json::from_str::<Value>(config), Ok(Value::Object(_))) {
        eprintln!("Configuration is malformed; it should be valid JSON");
        return Ok(1);
    }
    let token = match o.value('t') {
        None => None,
        Some(_) if version == Version::Luks1 => {
            eprintln!("{dev} is a LUKS1 device; -t is only supported in LUKS2");
            return Ok(1);
        }
        Some(t) => Some(
            t.parse::<u32>()
                .with_context(|| format!("-t {t}: not a token id"))?,
        ),
    };
    let existing_token = match o.value('e') {
        None => None,
        Some(_) if version == Version::Luks1 => {
            eprintln!("{dev} is a LUKS1 device; -e is only supported in LUKS2");
            return Ok(1);
        }
        Some(_) if o.value('k').is_some_and(|k| k != "-") => {
            eprintln!("Cannot specify kernel keyring description together with key file");
            return Ok(1);
        }
        Some(e) => Some(
            e.parse::<u32>()
                .with_context(|| format!("-e {e}: not a token id"))?,
        ),
    };
    let force = o.flag('f') || o.flag('y');
    let yes = o.flag('y');
    let (hdr, _) = super::read_header(&dev)?;
    let uninitialized = version == Version::Luks1 && hdr.luksmeta().is_none();
    if o.value('k') == Some("-") && uninitialized && !force {
        super::usage(
            spec,
            "Cannot use '-k-' without '-f' or '-y' unless already initialized!",
        );
    }
    let mut pins = pins(yes);
    let mut s = Session::open(Path::new(&dev), &mut pins)?;
    // With -e the token gives the key, and nothing is asked first (as clevis).
    let given = match (existing_token, o.value('k')) {
        (Some(_), None) => None,
        (_, k) => existing_key(k)?,
    };
    // As clevis, LUKSMeta is initialized first (-f or -y, or the operator's yes).
    let init = uninitialized
        && (force
            || tty::confirm(&format!(
                "You are about to initialize a LUKS device for metadata storage.\n\
                 Attempting to initialize it may result in data loss if data was\n\
                 already written into the LUKS header gap in a different format.\n\
                 A backup is advised before initialization is performed.\n\n\
                 Do you wish to initialize {dev}? [yn] "
            )));
    if init {
        s.init_luksmeta()?;
    }
    let done = s.settle()?;
    let settled = settled_notes(&dev, &done);
    if let Some(j) = finished(&done, Op::Bind, slot) {
        if j.pin == *pin && j.config == *config {
            // The interrupted run was this very command, and it is now complete.
            let b = Bound {
                keyslot: j.keyslot,
                store: j.token.map_or(
                    inventory::Store::LuksMeta(j.keyslot),
                    inventory::Store::Token,
                ),
                verified: true,
            };
            if o.json {
                super::print_json(&bound_json(&dev, &b, pin, config, settled));
            }
            return Ok(0);
        }
    }
    let from_token = existing_token.and_then(|id| match s.unlock_with_token(id) {
        Ok(slot) => Some(slot),
        Err(e) => {
            // As clevis: on to the other ways to an existing key.
            eprintln!("latchkey luks bind: {e}");
            None
        }
    });
    if from_token.is_none() {
        unlock(&mut s, given)?;
    }
    let req = Request {
        keyslot: slot,
        token,
        pin: pin.clone(),
        config: config.clone(),
        init_luksmeta: false,
    };
    let b = s
        .bind(&req)
        .with_context(|| format!("Error adding new binding to {dev}"))?;
    drop(s);
    warn(&pins);
    if o.json {
        super::print_json(&bound_json(&dev, &b, pin, config, settled));
    }
    Ok(0)
}

fn unbind(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::UNBIND, o, true);
    let slot = slot.expect("required above");
    let mut pins = pins(false);
    let mut s = match Session::open(Path::new(&dev), &mut pins) {
        Ok(s) => s,
        Err(e @ Error::NotLuks { .. }) => {
            eprintln!("{e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let done = s.settle()?;
    let settled = settled_notes(&dev, &done);
    let report = |settled: Vec<Value>| {
        if o.json {
            super::print_json(&json!({"device": dev, "slot": slot, "settled": settled}));
        }
    };
    let wiped = done
        .iter()
        .any(|d| matches!(d, Settled::StaleEntryWiped(s) if *s == slot));
    if wiped || finished(&done, Op::Unbind, Some(slot)).is_some() {
        // An interrupted unbind of this keyslot, now complete.
        report(settled);
        return Ok(0);
    }
    let hdr = s.header()?;
    let mut reader = std::fs::File::open(&dev)?;
    let max = if hdr.version() == Version::Luks1 {
        8
    } else {
        32
    };
    if slot >= max || inventory::binding_of(&hdr, &mut reader, slot).is_none() {
        match hdr.version() {
            Version::Luks1 => {
                eprintln!("The LUKSMeta slot {slot} on device {dev} holds no clevis binding.")
            }
            Version::Luks2 => eprintln!("No clevis slot detected on device {dev}:{slot}!"),
        }
        return Ok(1);
    }
    if !o.flag('f') && hdr.keyslots().len() == 1 {
        return Err(Error::LastKeyslot {
            device: dev.clone().into(),
            slot,
        }
        .into());
    }
    if !o.flag('f') {
        eprintln!("The unbind operation will wipe a slot. This operation is unrecoverable.");
        if !tty::confirm(&format!(
            "Do you wish to erase LUKS slot {slot} on {dev}? [ynYN] "
        )) {
            return Ok(0);
        }
    }
    s.unbind(slot, o.flag('f'))?;
    report(settled);
    Ok(0)
}

/// The current pin and config of `slot` (as `clevis luks list -s` prints them),
/// or those of an interrupted rebind of it, which the command then finishes;
/// with whether it came from there.
fn current_policy(dev: &str, slot: u32) -> Result<(String, String, bool)> {
    let (hdr, mut f) = super::read_header(dev)?;
    let inv = inventory::inventory(&hdr, &mut f);
    let interrupted = inv.problems.iter().find_map(|p| match p {
        inventory::Problem::Interrupted { journal, .. }
            if journal.op == Op::Rebind && journal.keyslot == slot =>
        {
            Some((journal.pin.clone(), journal.config.clone(), true))
        }
        _ => None,
    });
    if let Some(found) = interrupted {
        return Ok(found);
    }
    if let Some((_, jwe)) = inventory::binding_of(&hdr, &mut f, slot) {
        let (pin, config) = listing::pin_and_config(&jwe)
            .with_context(|| format!("{dev}: keyslot {slot}: the binding cannot be read"))?;
        return Ok((pin, config, false));
    }
    anyhow::bail!("{dev}: keyslot {slot} has no clevis binding")
}

/// Replaces the binding of `slot` (regen and edit): settle, a key, rebind.
fn rebind(dev: &str, slot: u32, pin: &str, config: &str) -> Result<Value> {
    let mut pins = pins(true);
    let mut s = Session::open(Path::new(dev), &mut pins)?;
    let done = s.settle()?;
    let settled = settled_notes(dev, &done);
    let resumed =
        finished(&done, Op::Rebind, Some(slot)).filter(|j| j.pin == pin && j.config == config);
    let b = match resumed {
        Some(j) => Bound {
            keyslot: j.keyslot,
            store: j.token.map_or(
                inventory::Store::LuksMeta(j.keyslot),
                inventory::Store::Token,
            ),
            verified: true,
        },
        None => {
            unlock(&mut s, None)?;
            s.rebind(slot, pin, config)?
        }
    };
    drop(s);
    warn(&pins);
    Ok(bound_json(dev, &b, pin, config, settled))
}

fn regen(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::REGEN, o, true);
    let slot = slot.expect("required above");
    let (pin, config) = match current_policy(&dev, slot) {
        Ok((pin, config, _)) => (pin, config),
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(1);
        }
    };
    if !o.json {
        println!("Regenerating binding (device {dev}, slot {slot}):");
        println!("Pin: {pin}, Config: '{config}'");
    }
    if !o.flag('q')
        && !matches!(
            tty::ask_stdin("Do you want to proceed? [ynYN] ").as_deref(),
            Some("y" | "Y")
        )
    {
        return Ok(0);
    }
    let doc = rebind(&dev, slot, &pin, &config)
        .with_context(|| format!("Unable to regenerate binding in {dev}:{slot}"))?;
    if o.json {
        super::print_json(&doc);
    } else {
        eprintln!("Binding regenerated successfully");
    }
    Ok(0)
}

fn edit(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::EDIT, o, true);
    let slot = slot.expect("required above");
    let (pin, current, interrupted) = match current_policy(&dev, slot) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error retrieving current configuration from {dev}:{slot} ({e:#})");
            return Ok(1);
        }
    };
    let Ok(current_value) = serde_json::from_str::<Value>(&current) else {
        eprintln!("Error reading the configuration from {dev}:{slot}");
        return Ok(1);
    };
    let new_value = match o.value('c') {
        Some(new) => match serde_json::from_str::<Value>(new) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                eprintln!("Invalid configuration given as parameter with -c");
                return Ok(1);
            }
        },
        None => match super::editor::edit(&current)? {
            Some(v) => v,
            None => return Ok(1),
        },
    };
    // clevis compares and binds the config with its keys sorted (jq -S);
    // serde_json's maps are sorted.
    if current_value == new_value && !interrupted && !o.flag('f') {
        eprintln!("No changes detected; exiting");
        return Ok(1);
    }
    if o.value('c').is_none() {
        let shown = format!(
            "Pin: {pin}\nNew config:\n{}",
            serde_json::to_string_pretty(&new_value)?
        );
        // stdout stays one JSON document with --json.
        if o.json {
            eprintln!("{shown}");
        } else {
            println!("{shown}");
        }
        let answer =
            tty::ask_stdin("Would you like to proceed with the updated configuration? [ynYN] ");
        if !matches!(answer.as_deref(), Some("y" | "Y")) {
            return Ok(0);
        }
    }
    let new = new_value.to_string();
    if !o.json {
        println!("Updating binding...");
    }
    let doc = rebind(&dev, slot, &pin, &new).with_context(|| {
        format!("Unable to update binding in {dev}:{slot}. Operation cancelled.")
    })?;
    if o.json {
        super::print_json(&doc);
    } else {
        eprintln!("Binding edited successfully");
    }
    Ok(0)
}
