//! The agent holds passphrases, volume keys and Tang exchange secrets: every crate in its
//! build that can wipe its state on drop (a `zeroize` cargo feature) must be built to.

#[test]
fn every_dependency_with_a_zeroize_feature_is_built_with_it() {
    let z = latchkey_testkit::features::feature_use("latchkey-agent", "zeroize");
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
