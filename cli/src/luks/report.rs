//! `latchkey luks report -d DEV -s SLOT [-q] [-r]`: the Tang keys a binding was
//! made with that its servers no longer advertise (clevis's wording and exit
//! statuses: 0 nothing rotated, 1 rotated or unverifiable); `-r` regenerates.

use std::ffi::OsString;

use anyhow::Result;
use latchkey_enroll::{inventory, rotation};
use latchkey_proto::jws;
use serde_json::{Value, json};

use super::opts::Opts;

pub fn run(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::REPORT, o, true);
    let slot = slot.expect("required above");
    let (hdr, mut f) = match super::read_header(&dev) {
        Ok(x) => x,
        Err(e) => return super::failed(o, &dev, &format!("{e:#}")),
    };
    let Some((_, jwe)) = inventory::binding_of(&hdr, &mut f, slot) else {
        let m = format!("Cannot load data from {dev} slot:{slot}. No clevis binding found!");
        return super::failed(o, &dev, &m);
    };
    let opts = super::pins::options();
    let mut servers = Vec::new();
    let mut stale: Vec<String> = Vec::new();
    let mut failed = false;
    for node in rotation::tang_nodes(&jwe) {
        let checked = latchkey_client::fetch_adv(&node.url, None, &opts)
            .map_err(|e| format!("Unable to fetch advertisement ({}/adv): {e}", node.url))
            .and_then(|body| {
                jws::verify_advertisement(&body)
                    .map_err(|e| format!("Advertisement of {} does not verify: {e}", node.url))
            })
            .map(|adv| rotation::rotated(&node, &adv));
        match checked {
            Ok(keys) => {
                stale.extend(keys.iter().cloned());
                servers.push(json!({"url": node.url, "stale": keys}));
            }
            Err(e) => {
                if !o.json {
                    eprintln!("{e}");
                }
                failed = true;
                servers.push(json!({"url": node.url, "error": e}));
            }
        }
    }
    let mut doc = json!({"device": dev, "slot": slot, "servers": servers, "stale": stale});
    if failed {
        if o.json {
            doc["error"] = json!("Unable to verify whether there are rotated keys");
            super::print_json(&doc);
        } else {
            eprintln!("Unable to verify whether there are rotated keys");
        }
        return Ok(1);
    }
    if stale.is_empty() {
        if o.json {
            super::print_json(&doc);
        }
        return Ok(0);
    }
    let regen_args = ["-q", "-d", &dev, "-s", &slot.to_string()].map(String::from);
    if o.json {
        if !o.flag('r') {
            super::print_json(&doc);
            return Ok(1);
        }
        let mut args: Vec<OsString> = regen_args.iter().map(OsString::from).collect();
        args.push("--json".into());
        let (code, out) = super::handover::run("regen", &args)?;
        doc["regen"] = serde_json::from_slice(&out).unwrap_or(Value::Null);
        super::print_json(&doc);
        return Ok(code);
    }
    println!("The following keys are not in the current advertisement and were probably rotated:");
    for k in &stale {
        println!("  {k}");
    }
    let mut regen = o.flag('r');
    if !regen && !o.flag('q') {
        let q = format!(
            "Do you want to regenerate the binding with \"latchkey luks regen -q -d {dev} -s {slot}\"? [ynYN] "
        );
        regen = matches!(crate::tty::ask_stdin(&q).as_deref(), Some("y" | "Y"));
    }
    if regen {
        super::handover::exec("regen", &regen_args);
    }
    Ok(1)
}
