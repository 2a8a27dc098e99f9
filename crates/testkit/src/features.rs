//! The cargo features a binary's dependencies are built with, as `cargo tree` resolves
//! them for that binary alone (feature unification differs from a workspace build).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The target of the static binaries (`make agent`, `make cli`).
const TARGET: &str = "x86_64-unknown-linux-musl";

/// Which crates of a build declare a feature, split by whether the build turns it on.
#[derive(Debug, Default)]
pub struct FeatureUse {
    /// `name version` of the crates built with the feature.
    pub on: BTreeSet<String>,
    /// `name version` of the crates that declare it but are built without it.
    pub off: BTreeSet<String>,
}

/// How `package` (default features, normal dependencies, the musl target) uses `feature`
/// across its dependency tree. Runs `cargo metadata` and `cargo tree` offline.
pub fn feature_use(package: &str, feature: &str) -> FeatureUse {
    let declared = declaring(feature);
    let tree = cargo(&[
        "tree", "-p", package, "--target", TARGET, "-e", "normal", "--prefix", "none", "-f",
        "{p}|{f}",
    ]);
    let mut out = FeatureUse::default();
    for line in tree.lines() {
        let Some((pkg, features)) = line.split_once('|') else {
            continue;
        };
        // "name vX.Y.Z (path)" → "name vX.Y.Z"; features "a,b,c", maybe followed by " (*)".
        let id = pkg.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        if !declared.contains(&id) {
            continue;
        }
        let features = features.trim_end_matches(" (*)");
        if features.split(',').any(|f| f == feature) {
            out.on.insert(id);
        } else {
            out.off.insert(id);
        }
    }
    out.off.retain(|id| !out.on.contains(id));
    out
}

/// Asserts that every crate in `package`'s build that can wipe its state on drop (a
/// `zeroize` feature) is built to, and that the check sees the build at all (aes, which
/// every binary here links, is among those built with it).
pub fn assert_zeroize_everywhere(package: &str) {
    let z = feature_use(package, "zeroize");
    assert!(
        z.on.iter().any(|id| id.starts_with("aes ")),
        "aes not found with zeroize on: {z:?}"
    );
    assert!(
        z.off.is_empty(),
        "built without their zeroize feature (turn it on in [workspace.dependencies]): {:?}",
        z.off
    );
}

/// `name vX.Y.Z` of every package (for the musl target) that declares `feature`.
fn declaring(feature: &str) -> BTreeSet<String> {
    let json = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--filter-platform",
        TARGET,
    ]);
    let meta: serde_json::Value = serde_json::from_str(&json).expect("cargo metadata JSON");
    let packages = meta["packages"]
        .as_array()
        .expect("cargo metadata packages");
    packages
        .iter()
        .filter(|p| {
            p["features"]
                .as_object()
                .is_some_and(|f: &serde_json::Map<_, _>| f.contains_key(feature))
        })
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            format!("{} v{}", s("name"), s("version"))
        })
        .collect()
}

/// Runs cargo (the one running the tests) offline in the workspace and returns stdout.
fn cargo(args: &[&str]) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args)
        .args(["--offline", "--locked"])
        .current_dir(workspace);
    let out = crate::run_ok_with(&mut cmd, b"", Duration::from_secs(300));
    String::from_utf8(out.stdout).expect("cargo prints UTF-8")
}
