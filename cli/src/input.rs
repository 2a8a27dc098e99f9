//! Reading stdin with a bound.

use anyhow::{Context, Result};
use latchkey_proto::secret::Secret;

/// More than any clevis JWE (a 3-server sss one is about 6 KiB) or LUKS secret.
const LIMIT: usize = 1 << 20;

/// All of stdin, kept in a wiping buffer since it may be a secret.
pub fn stdin() -> Result<Secret> {
    Secret::read_bounded(&mut std::io::stdin().lock(), LIMIT).context("reading stdin")
}
