//! The one place that calls libcryptsetup: open and load a header, derive the
//! volume key, add and remove keyslots, set and remove LUKS2 tokens. Every
//! write is one libcryptsetup call that commits the header (both LUKS2 copies,
//! each fsync'ed) before it returns. Tokens are written from JSON text, whose
//! member order libcryptsetup keeps (latchkey-sys's `cryptsetup` module), so
//! a clevis token is stored byte for byte as clevis stores it.
//!
//! New keyslots get PBKDF2 with 1000 iterations, as clevis 19 forces: their
//! passphrase is already high-entropy.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use latchkey_luks::{Header, Version};
use latchkey_proto::Secret;
use latchkey_sys::cryptsetup::Context;
use libcryptsetup_rs::consts::flags::{CryptActivate, CryptPbkdf, CryptVolumeKey};
use libcryptsetup_rs::consts::vals::{CryptKdf, EncryptionFormat, KeyslotInfo};
use libcryptsetup_rs::{CryptPbkdfType, Either, LibcryptErr, TokenInput};
use rustix::io::Errno;
use serde_json::Value;

use crate::Error;

/// Iterations of the PBKDF2 of every keyslot this crate adds (clevis's value).
pub const ITERATIONS: u32 = 1000;
/// Largest volume key libcryptsetup hands out (LUKS2 allows 512 bytes).
const MAX_VOLUME_KEY: usize = 512;

/// An open LUKS device.
pub struct Device {
    path: PathBuf,
    cd: Context,
    file: File,
    version: Version,
}

impl Device {
    /// Opens `path` for header changes: it must be writable and hold a LUKS1 or
    /// LUKS2 header that both this crate's reader and libcryptsetup accept.
    pub fn open(path: &Path) -> Result<Device, Error> {
        let device = path.to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(
                |source| match source.raw_os_error().map(Errno::from_raw_os_error) {
                    Some(Errno::ROFS | Errno::ACCESS | Errno::PERM) => Error::ReadOnly {
                        device: device.clone(),
                    },
                    _ => Error::Open {
                        device: device.clone(),
                        source,
                    },
                },
            )?;
        let mut reader = &file;
        let hdr = Header::read(&mut reader).map_err(|e| Error::NotLuks {
            device: device.clone(),
            reason: e.to_string(),
        })?;
        let version = hdr.version();
        let mut cd =
            Context::init(path).map_err(|e| sys(&device, "initializing libcryptsetup", e))?;
        let format = match version {
            Version::Luks1 => EncryptionFormat::Luks1,
            Version::Luks2 => EncryptionFormat::Luks2,
        };
        cd.device()
            .context_handle()
            .load::<()>(Some(format), None)
            .map_err(|e| Error::NotLuks {
                device: device.clone(),
                reason: format!("libcryptsetup cannot load it: {e}"),
            })?;
        // LUKS1 keyslots must use the header's own hash.
        let hash = match version {
            Version::Luks1 => hdr
                .digests()
                .first()
                .map(|d| d.hash.name())
                .unwrap_or("sha256"),
            Version::Luks2 => "sha256",
        };
        let pbkdf = CryptPbkdfType {
            type_: CryptKdf::Pbkdf2,
            hash: Some(hash.to_owned()),
            time_ms: 0,
            iterations: ITERATIONS,
            max_memory_kb: 0,
            parallel_threads: 0,
            flags: CryptPbkdf::NO_BENCHMARK,
        };
        cd.device()
            .settings_handle()
            .set_pbkdf_type(&pbkdf)
            .map_err(|e| cs(&device, "choosing PBKDF2 for new keyslots", e))?;
        Ok(Device {
            path: device,
            cd,
            file,
            version,
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// LUKS1 or LUKS2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The read-write file, for LUKSMeta.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The header as it is on disk now (read again by this project's reader).
    pub fn header(&self) -> Result<Header, Error> {
        let mut reader = &self.file;
        Header::read(&mut reader).map_err(|e| Error::NotLuks {
            device: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Keyslots the format has.
    pub fn max_keyslots(&self) -> u32 {
        match self.version {
            Version::Luks1 => 8,
            Version::Luks2 => 32,
        }
    }

    /// Whether keyslot `slot` is in use (libcryptsetup's view, which also counts
    /// keyslots the reader skips, such as reencryption ones).
    pub fn in_use(&mut self, slot: u32) -> bool {
        !matches!(
            self.cd.device().keyslot_handle().status(slot),
            Ok(KeyslotInfo::Inactive) | Ok(KeyslotInfo::Invalid) | Err(_)
        )
    }

    /// The volume key, from keyslot `slot` (or any keyslot) if `passphrase`
    /// opens it; with the keyslot.
    pub fn volume_key(
        &mut self,
        slot: Option<u32>,
        passphrase: &[u8],
    ) -> Result<(u32, Secret), Error> {
        let mut buf = vec![0u8; MAX_VOLUME_KEY];
        let got = self
            .cd
            .device()
            .volume_key_handle()
            .get(slot, &mut buf, Some(passphrase));
        match got {
            Ok((slot, len)) => {
                buf.truncate(len);
                Ok((slot as u32, Secret::new(buf)))
            }
            Err(e) => {
                buf.fill(0);
                if errno(&e) == Some(Errno::PERM) {
                    Err(Error::WrongPassphrase {
                        device: self.path.clone(),
                    })
                } else {
                    Err(cs(&self.path, "deriving the volume key", e))
                }
            }
        }
    }

    /// Whether `passphrase` opens keyslot `slot` (nothing is activated).
    pub fn opens(&mut self, slot: u32, passphrase: &[u8]) -> bool {
        self.cd
            .device()
            .activate_handle()
            .activate_by_passphrase(None, Some(slot), passphrase, CryptActivate::empty())
            .is_ok()
    }

    /// Adds keyslot `slot` for `passphrase`, holding `volume_key`.
    pub fn add_keyslot(
        &mut self,
        slot: u32,
        volume_key: &Secret,
        passphrase: &Secret,
    ) -> Result<(), Error> {
        self.cd
            .device()
            .keyslot_handle()
            .add_by_key(
                Some(slot),
                Some(Either::Left(volume_key.expose())),
                passphrase.expose(),
                CryptVolumeKey::empty(),
            )
            .map(drop)
            .map_err(|e| cs(&self.path, &format!("adding keyslot {slot}"), e))
    }

    /// Removes keyslot `slot` (its key material is wiped; LUKS2 tokens stop
    /// naming it).
    pub fn kill_keyslot(&mut self, slot: u32) -> Result<(), Error> {
        self.cd
            .device()
            .keyslot_handle()
            .destroy(slot)
            .map_err(|e| cs(&self.path, &format!("removing keyslot {slot}"), e))
    }

    /// LUKS2 token `id`, if there is one.
    pub fn token(&mut self, id: u32) -> Option<Value> {
        self.cd.device().token_handle().json_get(id).ok()
    }

    /// Writes LUKS2 token `id` from its JSON text (creating or replacing it in
    /// one commit); the members keep the text's order.
    pub fn set_token(&mut self, id: u32, token: &str) -> Result<(), Error> {
        self.cd.set_token_text(id, token).map_err(|e| {
            if e.errno() == Some(Errno::INVAL) && self.token(id).is_none() {
                Error::NoRoom {
                    device: self.path.clone(),
                    what: format!(
                        "the LUKS2 metadata has no room for token {id} ({} bytes of JSON)",
                        token.len()
                    ),
                }
            } else {
                sys(&self.path, &format!("writing token {id}"), e)
            }
        })
    }

    /// Removes LUKS2 token `id`.
    pub fn remove_token(&mut self, id: u32) -> Result<(), Error> {
        self.cd
            .device()
            .token_handle()
            .json_set(TokenInput::RemoveToken(id))
            .map(drop)
            .map_err(|e| cs(&self.path, &format!("removing token {id}"), e))
    }
}

fn errno(e: &LibcryptErr) -> Option<Errno> {
    match e {
        LibcryptErr::IOError(io) => io.raw_os_error().map(Errno::from_raw_os_error),
        _ => None,
    }
}

fn sys(device: &Path, what: &str, e: latchkey_sys::Error) -> Error {
    let source = match e.errno() {
        Some(errno) => io::Error::from_raw_os_error(errno.raw_os_error()),
        None => io::Error::other(e.to_string()),
    };
    Error::Cryptsetup {
        device: device.to_path_buf(),
        what: what.to_owned(),
        source,
    }
}

fn cs(device: &Path, what: &str, e: LibcryptErr) -> Error {
    let source = match e {
        LibcryptErr::IOError(io) => io,
        other => io::Error::other(other.to_string()),
    };
    Error::Cryptsetup {
        device: device.to_path_buf(),
        what: what.to_owned(),
        source,
    }
}
