//! The operator's tool holds passphrases, volume keys and Tang exchange secrets: every crate in its
//! build that can wipe its state on drop (a `zeroize` cargo feature) must be built to.

#[test]
fn every_dependency_with_a_zeroize_feature_is_built_with_it() {
    latchkey_testkit::features::assert_zeroize_everywhere("latchkey");
}
