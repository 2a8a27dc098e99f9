//! How a disk's policy state is shown: one line for people, the same as JSON
//! for a controller, and what is inconsistent.

use latchkey_enroll::inventory::Store;
use latchkey_enroll::policy::keyfile::BootDir;
use latchkey_enroll::policy::{KeyFile, Mode, Observed, PolicyBinding, Record};
use serde_json::{Value, json};

/// `degraded: the local key opens keyslot 1` and the like.
pub fn summary(o: &Observed) -> String {
    match (o.mode(), o.local_slot(), o.bindings.as_slice()) {
        (Some(Mode::Degraded), Some(s), _) => format!("degraded: the local key opens keyslot {s}"),
        (Some(m), _, [b]) => format!(
            "{m}: keyslot {} is bound to {}",
            b.keyslot,
            b.policy.describe()
        ),
        (None, None, []) => "no policy in force (no local key, no Tang binding)".into(),
        (_, local, bindings) => {
            let mut parts: Vec<String> = bindings
                .iter()
                .map(|b| format!("keyslot {}: {}", b.keyslot, b.policy.describe()))
                .collect();
            if let Some(s) = local {
                parts.insert(0, format!("local key in keyslot {s}"));
            }
            format!("between policies: {}", parts.join("; "))
        }
    }
}

fn store_json(at: Store) -> Value {
    match at {
        Store::Token(t) => json!({"token": t}),
        Store::LuksMeta(s) => json!({"luksmeta": s}),
    }
}

fn binding_json(b: &PolicyBinding) -> Value {
    json!({
        "slot": b.keyslot,
        "store": store_json(b.store),
        "pin": "sss",
        "threshold": b.policy.threshold,
        "tang": b.policy.urls,
    })
}

/// The role of each active keyslot.
pub fn slots_json(o: &Observed) -> Value {
    let local = o.local_slots();
    o.active
        .iter()
        .map(|&s| {
            let role = if Some(s) == o.recovery {
                "recovery"
            } else if local.contains(&s) {
                "local-key"
            } else if o.bindings.iter().any(|b| b.keyslot == s) {
                "tang"
            } else if o.foreign.contains(&s) {
                "other-clevis"
            } else {
                "unknown"
            };
            json!({"slot": s, "role": role})
        })
        .collect()
}

/// The servers the record asks for that the binding in force lacks (bound with
/// `--allow-missing`).
pub fn missing(o: &Observed) -> Vec<String> {
    match (o.record(), o.bindings.as_slice()) {
        (Some(r), [b])
            if r.mode != Mode::Degraded
                && r.threshold == Some(b.policy.threshold)
                && b.policy.urls.iter().all(|u| r.tang.contains(u)) =>
        {
            r.tang
                .iter()
                .filter(|u| !b.policy.urls.contains(u))
                .cloned()
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Whether the disk is in the mode its record asks for, with the record's threshold
/// over the record's servers (or some of them: partial).
pub fn converged(o: &Observed) -> bool {
    let Some(r) = o.record() else { return false };
    if o.mode() != Some(r.mode) {
        return false;
    }
    match (r.mode, o.bindings.as_slice()) {
        (Mode::Degraded, _) => true,
        (_, [b]) => {
            Some(b.policy.threshold) == r.threshold
                && b.policy.urls.iter().all(|u| r.tang.contains(u))
        }
        _ => false,
    }
}

fn record_json(r: &Record, recovery: Option<u32>) -> Value {
    let mut v = r.to_value();
    v["recoverySlot"] = json!(recovery);
    v
}

/// The state for a controller: `mode`, `localBootKeyPresent`, `bindings`, `slots`, and
/// what was asked for.
pub fn state_json(o: &Observed, boot: &BootDir) -> serde_json::Map<String, Value> {
    let (file, error) = match &o.key_file {
        KeyFile::Absent => ("absent", None),
        KeyFile::Present { .. } => ("present", None),
        KeyFile::Unreadable(e) => ("unreadable", Some(e.clone())),
    };
    let mut local = json!({
        "path": boot.key(),
        "file": file,
        "opens": o.opened_by_file(),
        "marked": o.marked(),
    });
    if let Some(e) = error {
        local["error"] = json!(e);
    }
    let missing = missing(o);
    let mut m = serde_json::Map::new();
    m.insert("luks".into(), json!(o.version.number()));
    m.insert("mode".into(), json!(o.mode().map(Mode::name)));
    m.insert(
        "requested".into(),
        o.record()
            .map(|r| record_json(r, o.recovery))
            .unwrap_or(Value::Null),
    );
    m.insert("converged".into(), json!(converged(o)));
    m.insert("partial".into(), json!(!missing.is_empty()));
    m.insert("missing".into(), json!(missing));
    m.insert(
        "localBootKeyPresent".into(),
        json!(o.local_slot().is_some()),
    );
    m.insert("localKey".into(), local);
    m.insert(
        "bindings".into(),
        o.bindings.iter().map(binding_json).collect(),
    );
    m.insert("slots".into(), slots_json(o));
    if o.mode() == Some(Mode::Degraded) {
        m.insert("warning".into(), json!(super::TRADE_OFF));
    }
    m
}

/// What is inconsistent, from the header and the boot directory alone.
pub fn problems(o: &Observed, boot: &BootDir) -> Vec<String> {
    let key = boot.key();
    let key = key.display();
    let mut out: Vec<String> = o.problems.iter().map(|p| p.describe()).collect();
    match &o.key_file {
        KeyFile::Present { opens } if opens.is_empty() => out.push(format!(
            "{key} is present but no keyslot accepts it: it opens nothing (left by an \
             interrupted change, or its keyslot was removed); `latchkey nbde apply` \
             replaces or removes it"
        )),
        KeyFile::Present { opens } if opens.len() > 1 => out.push(format!(
            "{key} opens keyslots {opens:?}: more than one local key keyslot"
        )),
        KeyFile::Unreadable(e) => out.push(format!("the local key file cannot be read: {e}")),
        _ => {}
    }
    if o.temp_left {
        out.push(format!(
            "{} is an unfinished key file (an interrupted write); it opens nothing",
            boot.temp().display()
        ));
    }
    let opens = o.opened_by_file();
    for s in o.marked() {
        if !opens.contains(&s) {
            out.push(format!(
                "keyslot {s} is marked as the local key's, but {key} does not open it: \
                 whoever holds an old copy of the key can still open the disk; \
                 `latchkey nbde apply` removes it"
            ));
        }
    }
    let marked = o.marked();
    for s in opens {
        if !marked.contains(s) {
            out.push(format!(
                "keyslot {s} has no token: {key} opens it, but it is not marked as the local \
                 key's (an interrupted change); `latchkey nbde apply` marks it"
            ));
        }
    }
    for at in o.stale_markers() {
        out.push(format!(
            "{} marks a local key keyslot that is gone",
            at.name()
        ));
    }
    for s in &o.unknown {
        out.push(format!(
            "keyslot {s} has no token: it is not the recovery keyslot, holds no clevis binding \
             and the local key does not open it (left by an interrupted change, or added \
             outside latchkey); latchkey never removes it"
        ));
    }
    match o.records.as_slice() {
        [] => out.push(
            "no policy is recorded in the header: `latchkey nbde apply` has not run on this disk"
                .into(),
        ),
        [f] if f.record.is_none() => out.push(format!(
            "{} holds a policy record that cannot be read",
            f.at.name()
        )),
        [f] if f.keyslot.is_none_or(|s| !o.active.contains(&s)) => out.push(format!(
            "the policy record in {} names no active recovery keyslot",
            f.at.name()
        )),
        [_] => {}
        more => out.push(format!("{} policy records in the header", more.len())),
    }
    if let Some(r) = o.record() {
        if !converged(o) {
            out.push(format!(
                "the header asks for {}, but the disk is {}; run `latchkey nbde apply` again",
                r.describe(),
                summary(o)
            ));
        }
        let missing = missing(o);
        if !missing.is_empty() {
            out.push(format!(
                "partial: the binding leaves out {} of the {} requested Tang servers ({}), \
                 which did not answer when it was made; apply again once they do",
                missing.len(),
                r.tang.len(),
                missing.join(", ")
            ));
        }
    }
    out
}
