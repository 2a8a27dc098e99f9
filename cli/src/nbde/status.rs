//! `latchkey nbde status -d DEV [--boot-dir /boot] [--json]`: the policy as
//! the header and the boot directory hold it, each binding's Tang servers
//! asked whether they still advertise its keys, and every inconsistency.
//! Reads only; runs in the static `latchkey`.

use std::fs::File;

use anyhow::{Context, Result};
use latchkey_enroll::policy::keyfile::BootDir;
use latchkey_enroll::policy::{Mode, observe};
use latchkey_enroll::rotation;
use latchkey_luks::Header;
use serde_json::{Value, json};

use super::{StatusArgs, TRADE_OFF, report, tang};

/// Runs `status`; 0 when nothing is inconsistent, 1 otherwise.
pub fn run(a: &StatusArgs) -> Result<i32> {
    let dev = a.device.display().to_string();
    let mut f = File::open(&a.device).with_context(|| format!("opening {dev}"))?;
    let hdr =
        Header::read(&mut f).with_context(|| format!("{dev} is not a supported LUKS device"))?;
    let boot = BootDir::new(&a.boot_dir);
    let o = observe(
        &hdr,
        &mut f,
        &boot,
        None,
        &latchkey_luks::Limits::for_this_machine(),
    );
    let mut problems = report::problems(&o, &boot);

    // Every Tang server of every policy binding, once.
    let mut urls: Vec<String> = Vec::new();
    for b in &o.bindings {
        for u in &b.policy.urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
    }
    let answers = tang::fetch_all(&urls, &tang::options());
    let mut bindings = Vec::new();
    for b in &o.bindings {
        let mut servers = Vec::new();
        for node in rotation::tang_nodes(&b.jwe) {
            let answer = urls
                .iter()
                .position(|u| *u == node.url)
                .map(|i| &answers[i]);
            let entry = match answer {
                Some(Ok(server)) => {
                    let stale = rotation::rotated(&node, &server.adv);
                    if !stale.is_empty() {
                        problems.push(format!(
                            "keyslot {}: {} no longer advertises the key{} the binding was made \
                             with ({}); it still opens while the server keeps the old key; \
                             `latchkey nbde apply` rebinds",
                            b.keyslot,
                            node.url,
                            if stale.len() == 1 { "" } else { "s" },
                            stale.join(", ")
                        ));
                    }
                    json!({"url": node.url, "answers": true, "stale": stale})
                }
                Some(Err(e)) => {
                    problems.push(format!(
                        "keyslot {}: {} does not answer: {e}",
                        b.keyslot, node.url
                    ));
                    json!({"url": node.url, "answers": false, "error": e})
                }
                None => json!({"url": node.url, "answers": Value::Null}),
            };
            servers.push(entry);
        }
        bindings.push(servers);
    }

    let mut doc = report::state_json(&o, &boot);
    if let Some(Value::Array(list)) = doc.get_mut("bindings") {
        for (b, servers) in list.iter_mut().zip(bindings) {
            b["servers"] = Value::Array(servers);
        }
    }
    doc.insert("device".into(), json!(a.device));
    doc.insert("problems".into(), json!(problems));
    if a.json {
        crate::luks::print_json(&Value::Object(doc));
    } else {
        println!("device: {dev} (LUKS{})", o.version.number());
        match o.record() {
            Some(r) => println!("requested: {}", r.describe()),
            None => println!("requested: nothing recorded"),
        }
        println!("state: {}", report::summary(&o));
        if let Some(Value::Array(slots)) = doc.get("slots") {
            for s in slots {
                println!(
                    "keyslot {}: {}",
                    s["slot"],
                    s["role"].as_str().unwrap_or("")
                );
            }
        }
        println!(
            "local key: {} ({})",
            boot.key().display(),
            doc["localKey"]["file"].as_str().unwrap_or("")
        );
        if o.mode() == Some(Mode::Degraded) {
            println!("note: {TRADE_OFF}");
        }
        for p in &problems {
            println!("problem: {p}");
        }
        if problems.is_empty() {
            println!("consistent");
        }
    }
    Ok(i32::from(!problems.is_empty()))
}
