//! `latchkey luks pass -d DEV -s SLOT`: the passphrase of a bound keyslot on
//! stdout, without a newline, once it has opened the device (as clevis checks).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use latchkey_enroll::inventory;
use latchkey_proto::Secret;

use super::opts::Opts;

pub fn run(o: &Opts) -> Result<i32> {
    let (dev, slot) = super::device_and_slot(&super::PASS, o, true);
    let slot = slot.expect("required above");
    match recover(&dev, slot) {
        Ok(pass) => {
            let mut out = std::io::stdout().lock();
            if o.json {
                let text =
                    std::str::from_utf8(pass.expose()).context("the passphrase is not text")?;
                // Written straight from the secret into a buffer that is wiped.
                let mut doc = Vec::with_capacity(text.len() * 6 + dev.len() * 6 + 64);
                doc.extend_from_slice(b"{\"device\":");
                serde_json::to_writer(&mut doc, &dev)?;
                write!(doc, ",\"slot\":{slot},\"passphrase\":")?;
                serde_json::to_writer(&mut doc, text)?;
                doc.extend_from_slice(b"}\n");
                let doc = Secret::new(doc);
                out.write_all(doc.expose())?;
            } else {
                out.write_all(pass.expose())?;
            }
            out.flush().context("writing the passphrase")?;
            Ok(0)
        }
        Err(e) => {
            eprintln!("latchkey luks pass: {e:#}");
            eprintln!(
                "It was not possible to decrypt the passphrase associated to slot {slot} in {dev}!"
            );
            Ok(1)
        }
    }
}

fn recover(dev: &str, slot: u32) -> Result<Secret> {
    let (hdr, mut f) = super::read_header(dev)?;
    let (_, jwe) = inventory::binding_of(&hdr, &mut f, slot)
        .with_context(|| format!("{dev}: keyslot {slot} has no clevis binding"))?;
    let pass = super::pins::decrypt(&jwe, &super::pins::options())
        .with_context(|| format!("{dev}: keyslot {slot}"))?;
    if !super::opens(&hdr, Path::new(dev), slot, pass.expose()) {
        anyhow::bail!("{dev}: keyslot {slot}: the recovered passphrase opens no keyslot");
    }
    Ok(pass)
}
