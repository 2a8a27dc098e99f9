//! Passphrase to keyslot-area key: PBKDF2 or Argon2 with the header's costs.

use crate::model::{Argon2Variant, Kdf};
use crate::{Error, Limits};
use zeroize::Zeroizing;

/// Derive `len` bytes for keyslot `slot`.
pub(crate) fn derive(
    kdf: &Kdf,
    slot: u32,
    passphrase: &[u8],
    len: usize,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    match kdf {
        Kdf::Pbkdf2 {
            hash,
            iterations,
            salt,
        } => {
            if *iterations == 0 {
                return Err(Error::Kdf {
                    slot,
                    reason: "PBKDF2 iteration count is 0".into(),
                });
            }
            hash.pbkdf2(passphrase, salt, *iterations, &mut out);
        }
        Kdf::Argon2 {
            variant,
            time,
            memory_kib,
            cpus,
            salt,
        } => {
            if u64::from(*memory_kib) > limits.max_memory_kib {
                return Err(Error::MemoryLimit {
                    slot,
                    needed_kib: u64::from(*memory_kib),
                    limit_kib: limits.max_memory_kib,
                });
            }
            let kdf_err = |e: argon2::Error| Error::Kdf {
                slot,
                reason: e.to_string(),
            };
            let params =
                argon2::Params::new(*memory_kib, *time, *cpus, Some(len)).map_err(kdf_err)?;
            let algorithm = match variant {
                Argon2Variant::I => argon2::Algorithm::Argon2i,
                Argon2Variant::Id => argon2::Algorithm::Argon2id,
            };
            argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
                .hash_password_into(passphrase, salt, &mut out)
                .map_err(kdf_err)?;
        }
    }
    Ok(out)
}
