//! `latchkey luks list -d DEV [-s SLOT]`: `N: PIN 'CONFIG'` per bound keyslot,
//! byte for byte as `clevis luks list` prints it. Leftovers of interrupted
//! changes are named on stderr (stdout stays clevis's).

use anyhow::Result;
use latchkey_enroll::inventory::{self, Problem, Store};
use latchkey_enroll::listing;
use latchkey_luks::Version;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin;
use serde_json::{Value, json};

use super::opts::Opts;

pub fn run(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::LIST, o, false);
    let (hdr, mut f) = match super::read_header(&dev) {
        Ok(x) => x,
        Err(e) => return super::failed(o, &dev, &format!("{e:#}")),
    };
    if hdr.version() == Version::Luks1 && hdr.luksmeta().is_none() {
        let m =
            format!("The {dev} device is not valid! (LUKS1 without LUKSMeta: nothing is bound)");
        return super::failed(o, &dev, &m);
    }
    let slots: Vec<u32> = match slot {
        Some(s) => vec![s],
        None => hdr.keyslots().iter().map(|k| k.id).collect(),
    };
    let mut lines = Vec::new();
    let mut bindings = Vec::new();
    for s in &slots {
        let Some((store, jwe)) = inventory::binding_of(&hdr, &mut f, *s) else {
            continue;
        };
        let Some(line) = listing::describe(&jwe) else {
            continue;
        };
        lines.push(format!("{s}: {line}"));
        bindings.push(binding_json(*s, store, &jwe, &line));
    }
    let inv = inventory::inventory(&hdr, &mut f);
    let problems: Vec<&Problem> = inv
        .problems
        .iter()
        .filter(|p| slot.is_none_or(|s| concerns(p, s)))
        .collect();
    if o.json {
        super::print_json(&json!({
            "device": dev,
            "luks": hdr.version().number(),
            "bindings": bindings,
            "unbound": inv.unbound,
            "problems": problems.iter().map(|p| problem_json(p)).collect::<Vec<_>>(),
        }));
    } else {
        for l in &lines {
            println!("{l}");
        }
        for p in &problems {
            eprintln!("latchkey luks list: {dev}: {}", p.describe());
        }
    }
    // `clevis luks list -s N` fails when N is not bound; without -s it succeeds.
    Ok(i32::from(slot.is_some() && lines.is_empty()))
}

fn concerns(p: &Problem, slot: u32) -> bool {
    match p {
        Problem::StaleEntry { slot: s } => *s == slot,
        Problem::Interrupted { journal, .. } => {
            journal.keyslot == slot || journal.temp == Some(slot)
        }
        _ => true,
    }
}

/// One binding for `--json`: the clevis line, its parts, where it is stored and
/// its Tang servers.
pub fn binding_json(slot: u32, store: Store, jwe: &str, line: &str) -> Value {
    let (pin_name, config) = listing::pin_and_config(jwe).unwrap_or_default();
    let servers: Vec<Value> = Jwe::parse(jwe)
        .map(|j| pin::tang_servers(&j.header))
        .unwrap_or_default()
        .into_iter()
        .map(|(url, kid)| json!({"url": url, "kid": kid}))
        .collect();
    let store = match store {
        Store::Token(t) => json!({"token": t}),
        Store::LuksMeta(s) => json!({"luksmeta": s}),
    };
    json!({
        "slot": slot,
        "pin": pin_name,
        "config": serde_json::from_str::<Value>(&config).ok(),
        "line": format!("{slot}: {line}"),
        "store": store,
        "tang": servers,
    })
}

/// A problem for `--json`.
pub fn problem_json(p: &Problem) -> Value {
    let mut v = match p {
        Problem::OrphanToken { token } => json!({"kind": "orphan-token", "token": token}),
        Problem::StaleEntry { slot } => json!({"kind": "stale-luksmeta-entry", "luksmeta": slot}),
        Problem::Interrupted { at, journal } => json!({
            "kind": "interrupted",
            "at": at.name(),
            "op": journal.op.name(),
            "keyslot": journal.keyslot,
            "temp": journal.temp,
        }),
        Problem::UnreadableJournal { at } => json!({"kind": "unreadable-journal", "at": at.name()}),
        _ => json!({"kind": "other"}),
    };
    v["message"] = json!(p.describe());
    v
}
