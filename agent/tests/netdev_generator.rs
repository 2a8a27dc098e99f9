//! `latchkey-netdev-generator` (the agent by that name) beside systemd's own
//! systemd-cryptsetup-generator on the same crypttab: every drop-in it
//! writes belongs to a unit systemd generates (the names escaped the same
//! way), and only the `_netdev` volumes get one.

use std::path::Path;
use std::process::Command;

use latchkey_testkit::{Scratch, have, run_ok};

const SYSTEMD_GENERATOR: &str = "/lib/systemd/system-generators/systemd-cryptsetup-generator";

const CRYPTTAB: &str = "\
# name device keyfile options
cryptroot UUID=0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10 none luks,discard
data UUID=4c4b0000-0000-4000-8000-000000000009 none luks,_netdev
luks-4c4b0000-0000-4000-8000-00000000000b UUID=4c4b0000-0000-4000-8000-00000000000b none _netdev,luks
odd\\x2dname:é /dev/vdd none luks,_netdev,nofail
.dotted /dev/vde none luks,_netdev
later UUID=4c4b0000-0000-4000-8000-00000000000a none luks,_netdev,noauto
";

fn generate(program: &str, args: &[&str], tab: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    run_ok(
        Command::new(program)
            .args(args)
            .arg(out)
            .arg(out)
            .arg(out)
            .env("SYSTEMD_CRYPTTAB", tab)
            // Not the kernel's: no luks.* option of the host may filter the table.
            .env("SYSTEMD_PROC_CMDLINE", "quiet"),
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn drop_ins_match_systemds_units() {
    if !have(&[SYSTEMD_GENERATOR]) {
        return;
    }
    let s = Scratch::new("netdev-generator");
    let tab = s.path("crypttab");
    std::fs::write(&tab, CRYPTTAB).unwrap();
    let (theirs, ours) = (s.path("systemd"), s.path("latchkey"));
    generate(SYSTEMD_GENERATOR, &[], &tab, &theirs);
    // As installed: a link named latchkey-netdev-generator in system-generators.
    let link = s.path("latchkey-netdev-generator");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_latchkey-agent"), &link).unwrap();
    generate(link.to_str().unwrap(), &[], &tab, &ours);
    let units = entries(&theirs);
    let drop_ins = entries(&ours);
    assert_eq!(
        drop_ins,
        [
            "systemd-cryptsetup@\\x2edotted.service.d",
            "systemd-cryptsetup@data.service.d",
            "systemd-cryptsetup@luks\\x2d4c4b0000\\x2d0000\\x2d4000\\x2d8000\\x2d00000000000b.service.d",
            "systemd-cryptsetup@odd\\x5cx2dname:\\xc3\\xa9.service.d",
        ]
    );
    for d in &drop_ins {
        let unit = d.trim_end_matches(".d");
        assert!(
            units.iter().any(|u| u == unit),
            "{unit}: systemd generated no such unit; it generated {units:?}"
        );
        let conf = std::fs::read_to_string(ours.join(d).join("50-latchkey.conf")).unwrap();
        assert!(
            conf.contains("Wants=latchkey-netdev.service\nAfter=latchkey-netdev.service\n"),
            "{conf}"
        );
    }
    // systemd puts the same volumes in remote-cryptsetup.target.
    let remote = entries(&theirs.join("remote-cryptsetup.target.requires"))
        .into_iter()
        .chain(entries(&theirs.join("remote-cryptsetup.target.wants")))
        .map(|u| format!("{u}.d"))
        .collect::<Vec<_>>();
    let mut remote_sorted = remote.clone();
    remote_sorted.sort();
    assert_eq!(remote_sorted, drop_ins);
}

#[test]
fn no_crypttab_no_drop_in() {
    let s = Scratch::new("netdev-generator-none");
    let out = s.path("out");
    generate(
        env!("CARGO_BIN_EXE_latchkey-agent"),
        &["netdev-generator"],
        &s.path("absent"),
        &out,
    );
    assert!(entries(&out).is_empty());
}
