//! The steps from where a disk stands to a policy, in the one safe order:
//! additive before destructive, so that between any two steps the disk opens
//! by the old policy or the new one.
//!
//! ```text
//!   → degraded   record · stale markers · new key file ─▶ its keyslot (+marker, checked)
//!                ─▶ remove the policy's clevis bindings
//!   → tang/quorum record · stale markers · bind (checked against the servers)
//!                ─▶ remove the old bindings ─▶ remove the local key's keyslot ─▶ only then its file
//! ```
//!
//! The plan is a function of what [`observe`](super::observe) saw: running
//! it again after a crash plans what is left, so a re-run converges. A plan
//! that is empty is the policy in force (`apply` twice changes nothing).

use serde_json::{Value, json};

use latchkey_luks::Version;

use super::keyfile::BootDir;
use super::record::Record;
use super::state::{Observed, PolicyBinding};
use super::{Mode, Server, TangPolicy, describe};
use crate::inventory::Store;
use crate::rotation;

/// What the plan aims at.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The request.
    pub record: &'a Record,
    /// The keyslot the recovery secret opens.
    pub recovery: u32,
    /// tang and quorum: the servers to bind, each with its verified
    /// advertisement (with `--allow-missing`, those that answered).
    pub servers: &'a [Server],
}

impl Target<'_> {
    /// The URLs to bind.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.url.clone()).collect()
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Finish or undo changes an interrupted `latchkey luks` command left
    /// (shown by a dry run; a run settles first).
    Settle(Vec<String>),
    /// LUKS1: write an empty LUKSMeta header (where the bindings, the record
    /// and the marker live).
    InitLuksMeta,
    /// Write the record beside the recovery keyslot, replacing `replaces`.
    WriteRecord {
        /// The request.
        record: Record,
        /// The recovery keyslot.
        recovery: u32,
        /// Records there now.
        replaces: Vec<Store>,
    },
    /// Remove a local key marker whose keyslot is gone.
    DropMarker(Store),
    /// Remove a local key's keyslot (and its marker).
    RemoveLocalSlot {
        /// The keyslot.
        keyslot: u32,
        /// Why it goes.
        why: &'static str,
    },
    /// Write a new random key to the key file (temporary name, flush, rename).
    WriteKeyFile,
    /// Add a keyslot for the key file (with the recovery secret), mark it, and
    /// check that the file as written opens it.
    AddLocalSlot {
        /// The keyslot expected (the first free one).
        keyslot: u32,
    },
    /// Mark the keyslot the key file opens as the local key's.
    MarkLocalSlot {
        /// The keyslot.
        keyslot: u32,
    },
    /// A new clevis binding: sss, any `threshold` of `urls`, checked by
    /// decrypting it against the servers before anything is written.
    Bind {
        /// t.
        threshold: u32,
        /// The servers.
        urls: Vec<String>,
        /// The keyslot expected (the first free one).
        keyslot: u32,
    },
    /// Replace the policy binding of `keyslot` in place (LUKS2): a new
    /// passphrase in a temporary keyslot, the binding's token switched to the
    /// new JWE in one commit, then the keyslot remade (see `Session::rebind`).
    /// The header never holds two multi-server bindings at once, which its
    /// metadata area (12 KiB of JSON by default) has no room for.
    Rebind {
        /// The keyslot.
        keyslot: u32,
        /// Its policy now.
        from: TangPolicy,
        /// The new t.
        threshold: u32,
        /// The new servers.
        urls: Vec<String>,
    },
    /// Remove a policy binding and its keyslot.
    Unbind {
        /// The keyslot.
        keyslot: u32,
        /// Its policy.
        policy: TangPolicy,
        /// Why it goes.
        why: &'static str,
    },
    /// Overwrite, flush and remove the key file (and a temporary one), then
    /// the empty `nbde` directory.
    RemoveKeyFile,
    /// Remove a temporary key file an interrupted write left.
    RemoveTemp,
}

impl Step {
    /// A short name for JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Settle(_) => "settle",
            Step::InitLuksMeta => "init-luksmeta",
            Step::WriteRecord { .. } => "write-record",
            Step::DropMarker(_) => "drop-marker",
            Step::RemoveLocalSlot { .. } => "remove-local-keyslot",
            Step::WriteKeyFile => "write-key-file",
            Step::AddLocalSlot { .. } => "add-local-keyslot",
            Step::MarkLocalSlot { .. } => "mark-local-keyslot",
            Step::Bind { .. } => "bind",
            Step::Rebind { .. } => "rebind",
            Step::Unbind { .. } => "unbind",
            Step::RemoveKeyFile => "remove-key-file",
            Step::RemoveTemp => "remove-temporary-key-file",
        }
    }

    /// One line for people.
    pub fn describe(&self, boot: &BootDir) -> String {
        match self {
            Step::Settle(what) => format!(
                "finish or undo what interrupted changes left: {}",
                what.join("; ")
            ),
            Step::InitLuksMeta => {
                "initialize LUKSMeta (LUKS1 metadata for bindings and the record)".into()
            }
            Step::WriteRecord {
                record, recovery, ..
            } => format!(
                "record the policy in the header beside recovery keyslot {recovery}: {}",
                record.describe()
            ),
            Step::DropMarker(at) => format!(
                "remove the local key marker in {}, whose keyslot is gone",
                at.name()
            ),
            Step::RemoveLocalSlot { keyslot, why } => {
                format!("remove keyslot {keyslot} of a local key ({why})")
            }
            Step::WriteKeyFile => format!(
                "write a new random {}-byte local key to {} (0400, in a 0700 directory)",
                super::keyfile::KEY_BYTES,
                boot.key().display()
            ),
            Step::AddLocalSlot { keyslot } => format!(
                "add keyslot {keyslot} for the local key, mark it, and check that {} opens it",
                boot.key().display()
            ),
            Step::MarkLocalSlot { keyslot } => format!(
                "mark keyslot {keyslot}, which {} opens, as the local key's",
                boot.key().display()
            ),
            Step::Bind {
                threshold,
                urls,
                keyslot,
            } => format!(
                "bind keyslot {keyslot} to {}, checked by decrypting it",
                describe(*threshold, urls)
            ),
            Step::Rebind {
                keyslot,
                from,
                threshold,
                urls,
            } => format!(
                "rebind keyslot {keyslot} from {} to {}, checked by decrypting it",
                from.describe(),
                describe(*threshold, urls)
            ),
            Step::Unbind {
                keyslot,
                policy,
                why,
            } => format!(
                "remove keyslot {keyslot} and its binding, {} ({why})",
                policy.describe()
            ),
            Step::RemoveKeyFile => format!(
                "overwrite and remove {}, then the directory if empty",
                boot.key().display()
            ),
            Step::RemoveTemp => format!("remove the unfinished {}", boot.temp().display()),
        }
    }

    /// The step for a controller.
    pub fn to_json(&self, boot: &BootDir) -> Value {
        let mut v = json!({"step": self.name(), "text": self.describe(boot)});
        match self {
            Step::RemoveLocalSlot { keyslot, .. }
            | Step::AddLocalSlot { keyslot }
            | Step::MarkLocalSlot { keyslot } => v["keyslot"] = json!(keyslot),
            Step::Bind {
                threshold,
                urls,
                keyslot,
            }
            | Step::Rebind {
                threshold,
                urls,
                keyslot,
                ..
            } => {
                v["keyslot"] = json!(keyslot);
                v["threshold"] = json!(threshold);
                v["tang"] = json!(urls);
            }
            Step::Unbind { keyslot, .. } => v["keyslot"] = json!(keyslot),
            _ => {}
        }
        v
    }
}

/// Whether `b`'s Tang keys are all still advertised by the servers of
/// `servers` (a server not among them cannot be checked, and counts as fresh).
pub fn fresh(b: &PolicyBinding, servers: &[Server]) -> bool {
    rotation::tang_nodes(&b.jwe).iter().all(|node| {
        servers
            .iter()
            .find(|s| s.url == node.url)
            .is_none_or(|s| rotation::rotated(node, &s.adv).is_empty())
    })
}

/// The keyslots a plan expects to fill, in order: the first free ones.
struct Slots {
    used: Vec<u32>,
    max: u32,
}

impl Slots {
    fn free(&mut self) -> u32 {
        let s = (0..self.max)
            .find(|s| !self.used.contains(s))
            .unwrap_or(self.max);
        self.used.push(s);
        s
    }

    fn release(&mut self, slot: u32) {
        self.used.retain(|&s| s != slot);
    }
}

/// The steps from `o` to `target`, in order. Empty when the policy is in force.
pub fn plan(o: &Observed, target: &Target<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut slots = Slots {
        used: o.active.clone(),
        max: match o.version {
            Version::Luks1 => 8,
            Version::Luks2 => 32,
        },
    };
    if !o.problems.is_empty() {
        steps.push(Step::Settle(
            o.problems.iter().map(|p| p.describe()).collect(),
        ));
    }
    if !o.luksmeta {
        steps.push(Step::InitLuksMeta);
    }
    let recorded = matches!(o.records.as_slice(),
        [f] if f.record.as_ref() == Some(target.record) && f.keyslot == Some(target.recovery));
    if !recorded {
        steps.push(Step::WriteRecord {
            record: target.record.clone(),
            recovery: target.recovery,
            replaces: o.records.iter().map(|f| f.at).collect(),
        });
    }
    for at in o.stale_markers() {
        steps.push(Step::DropMarker(at));
    }
    let marked = o.marked();
    match target.record.mode {
        Mode::Degraded => {
            let keep = o.local_slot();
            for s in o.local_slots() {
                if Some(s) != keep && s != target.recovery {
                    let why = if keep.is_some() {
                        "a second local key"
                    } else {
                        "the key file does not open it"
                    };
                    steps.push(Step::RemoveLocalSlot { keyslot: s, why });
                    slots.release(s);
                }
            }
            match keep {
                Some(s) if marked.contains(&s) => {}
                Some(s) => steps.push(Step::MarkLocalSlot { keyslot: s }),
                None => {
                    steps.push(Step::WriteKeyFile);
                    steps.push(Step::AddLocalSlot {
                        keyslot: slots.free(),
                    });
                }
            }
            if o.temp_left && keep.is_some() {
                steps.push(Step::RemoveTemp);
            }
            for b in &o.bindings {
                steps.push(Step::Unbind {
                    keyslot: b.keyslot,
                    policy: b.policy.clone(),
                    why: "degraded mode has no clevis binding",
                });
            }
        }
        Mode::Tang | Mode::Quorum => {
            let threshold = target.record.threshold.unwrap_or(1);
            let urls = target.urls();
            let keep = o
                .bindings
                .iter()
                .find(|b| b.policy.same_as(threshold, &urls) && fresh(b, target.servers))
                .map(|b| b.keyslot);
            // LUKS2 replaces a binding in place (its metadata has room for one
            // multi-server binding); LUKS1 binds beside it, then unbinds (a
            // rebind's journal entries take LUKSMeta blocks it needs).
            let mut replaced = None;
            if keep.is_none() {
                match (o.version, o.bindings.first()) {
                    (Version::Luks2, Some(b)) => {
                        steps.push(Step::Rebind {
                            keyslot: b.keyslot,
                            from: b.policy.clone(),
                            threshold,
                            urls: urls.clone(),
                        });
                        replaced = Some(b.keyslot);
                    }
                    _ => steps.push(Step::Bind {
                        threshold,
                        urls: urls.clone(),
                        keyslot: slots.free(),
                    }),
                }
            }
            for b in o
                .bindings
                .iter()
                .filter(|b| Some(b.keyslot) != keep && Some(b.keyslot) != replaced)
            {
                let why = if b.policy.same_as(threshold, &urls) {
                    "its servers no longer advertise its keys"
                } else {
                    "replaced"
                };
                steps.push(Step::Unbind {
                    keyslot: b.keyslot,
                    policy: b.policy.clone(),
                    why,
                });
            }
            for s in o.local_slots() {
                if s != target.recovery {
                    steps.push(Step::RemoveLocalSlot {
                        keyslot: s,
                        why: "no local key outside degraded mode",
                    });
                }
            }
            if o.key_file != super::KeyFile::Absent || o.temp_left {
                steps.push(Step::RemoveKeyFile);
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::super::KeyFile;
    use super::super::record::{Found, Marker};
    use super::*;

    fn record(mode: Option<Mode>, n: usize) -> Record {
        let urls: Vec<String> = (0..n).map(|i| format!("http://t{i}")).collect();
        Record::choose(mode, &urls, None).unwrap()
    }

    fn binding(slot: u32, t: u32, n: usize) -> PolicyBinding {
        PolicyBinding {
            keyslot: slot,
            store: Store::Token(slot),
            policy: TangPolicy {
                threshold: t,
                urls: (0..n).map(|i| format!("http://t{i}")).collect(),
            },
            jwe: String::new(),
        }
    }

    /// A LUKS2 disk with recovery keyslot 0 and a record of `rec`.
    fn disk(rec: &Record) -> Observed {
        Observed {
            version: Version::Luks2,
            luksmeta: true,
            active: vec![0],
            recovery: Some(0),
            records: vec![Found {
                at: Store::Token(0),
                keyslot: Some(0),
                record: Some(rec.clone()),
            }],
            markers: vec![],
            key_file: KeyFile::Absent,
            temp_left: false,
            bindings: vec![],
            foreign: vec![],
            unknown: vec![],
            problems: vec![],
        }
    }

    fn names(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(Step::name).collect()
    }

    /// The record's servers, with empty advertisements: bindings here have no
    /// JWE, so freshness has no key to look for.
    fn servers(rec: &Record) -> Vec<Server> {
        rec.tang
            .iter()
            .map(|u| Server {
                url: u.clone(),
                adv: latchkey_proto::jws::Advertisement {
                    payload: vec![],
                    keys: vec![],
                },
            })
            .collect()
    }

    fn target<'a>(rec: &'a Record, servers: &'a [Server]) -> Target<'a> {
        Target {
            record: rec,
            recovery: 0,
            servers,
        }
    }

    fn degraded_disk(rec: &Record) -> Observed {
        let mut o = disk(rec);
        o.active = vec![0, 1];
        o.markers = vec![Marker {
            at: Store::Token(1),
            keyslot: Some(1),
        }];
        o.key_file = KeyFile::Present { opens: vec![1] };
        o
    }

    #[test]
    fn degraded_from_scratch_writes_the_file_before_its_keyslot() {
        let rec = record(None, 1);
        let mut o = disk(&rec);
        o.records.clear();
        o.bindings = vec![binding(2, 1, 3)];
        o.active = vec![0, 2];
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(
            names(&p),
            [
                "write-record",
                "write-key-file",
                "add-local-keyslot",
                "unbind"
            ]
        );
        assert_eq!(p[2], Step::AddLocalSlot { keyslot: 1 });
    }

    #[test]
    fn a_policy_in_force_plans_nothing() {
        let rec = record(None, 2);
        assert!(plan(&degraded_disk(&rec), &target(&rec, &servers(&rec))).is_empty());
        let rec = record(None, 4);
        let mut o = disk(&rec);
        o.active = vec![0, 1];
        o.bindings = vec![binding(1, 3, 4)];
        assert!(plan(&o, &target(&rec, &servers(&rec))).is_empty());
        // Another recovery keyslot: only the record moves.
        let sv = servers(&rec);
        let t = Target {
            recovery: 5,
            ..target(&rec, &sv)
        };
        assert_eq!(names(&plan(&o, &t)), ["write-record"]);
    }

    #[test]
    fn tang_binds_first_and_removes_the_local_key_last() {
        let rec = record(None, 3);
        let o = degraded_disk(&record(None, 1));
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(
            names(&p),
            [
                "write-record",
                "bind",
                "remove-local-keyslot",
                "remove-key-file"
            ]
        );
        assert!(matches!(p[1], Step::Bind { keyslot: 2, .. }));
    }

    #[test]
    fn crash_leftovers_are_planned_away() {
        let rec = record(None, 2);
        // A keyslot the file opens but no marker (crash between keyslot and marker).
        let mut o = degraded_disk(&rec);
        o.markers.clear();
        assert_eq!(
            names(&plan(&o, &target(&rec, &servers(&rec)))),
            ["mark-local-keyslot"]
        );
        // A file that opens nothing, and a marked keyslot it does not open.
        let mut o = degraded_disk(&rec);
        o.key_file = KeyFile::Present { opens: vec![] };
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(
            names(&p),
            [
                "remove-local-keyslot",
                "write-key-file",
                "add-local-keyslot"
            ]
        );
        assert_eq!(p[2], Step::AddLocalSlot { keyslot: 1 }, "the freed keyslot");
        // A marker whose keyslot is gone, a leftover temporary file.
        let mut o = degraded_disk(&rec);
        o.markers.push(Marker {
            at: Store::Token(4),
            keyslot: None,
        });
        o.temp_left = true;
        assert_eq!(
            names(&plan(&o, &target(&rec, &servers(&rec)))),
            ["drop-marker", "remove-temporary-key-file"]
        );
        // A key file left after its keyslot went, in tang mode.
        let rec = record(None, 3);
        let mut o = disk(&rec);
        o.active = vec![0, 1];
        o.bindings = vec![binding(1, 1, 3)];
        o.key_file = KeyFile::Present { opens: vec![] };
        assert_eq!(
            names(&plan(&o, &target(&rec, &servers(&rec)))),
            ["remove-key-file"]
        );
        // Two bindings after a crash between bind and unbind (LUKS1).
        let rec = record(None, 4);
        let mut o = disk(&rec);
        o.version = Version::Luks1;
        o.active = vec![0, 1, 2];
        o.bindings = vec![binding(1, 1, 3), binding(2, 3, 4)];
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(names(&p), ["unbind"]);
        assert!(matches!(p[0], Step::Unbind { keyslot: 1, .. }));
    }

    #[test]
    fn luks2_replaces_a_binding_in_place_luks1_beside_it() {
        let rec = record(None, 4);
        let mut o = disk(&record(None, 3));
        o.active = vec![0, 1];
        o.bindings = vec![binding(1, 1, 3)];
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(names(&p), ["write-record", "rebind"]);
        assert!(
            matches!(&p[1], Step::Rebind { keyslot: 1, threshold: 3, urls, .. } if urls.len() == 4)
        );
        o.version = Version::Luks1;
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert_eq!(names(&p), ["write-record", "bind", "unbind"]);
        assert!(matches!(p[1], Step::Bind { keyslot: 2, .. }));
        assert!(matches!(p[2], Step::Unbind { keyslot: 1, .. }));
    }

    #[test]
    fn the_recovery_keyslot_is_never_removed() {
        let rec = record(None, 3);
        let mut o = degraded_disk(&record(None, 1));
        o.markers.push(Marker {
            at: Store::Token(5),
            keyslot: Some(0),
        });
        let p = plan(&o, &target(&rec, &servers(&rec)));
        assert!(
            !p.iter()
                .any(|s| matches!(s, Step::RemoveLocalSlot { keyslot: 0, .. })),
            "{p:?}"
        );
    }
}
