//! [`Session`]: one device opened for binding changes, and the order in which
//! every change happens.
//!
//! ```text
//!   open ─▶ settle (finish or undo what an interrupted run left) ─▶ unlock ─▶ bind | unbind | rebind
//!                                                                               │
//!          new passphrase ─▶ Pins::encrypt ─▶ Pins::decrypt == passphrase? ─────┘ (before any write)
//! ```
//!
//! Additive before destructive: a new keyslot and its binding exist, and the
//! new passphrase has opened that keyslot, before anything old is removed.
//! Every multi-step change first writes a journal (see [`crate::journal`]) so
//! that a re-run after a crash finishes or undoes it; the format-specific
//! steps are in `luks1` and `luks2`.

use std::path::Path;

use latchkey_luks::{Header, Version};
use latchkey_proto::Secret;
use latchkey_proto::jwe::Jwe;

use crate::device::Device;
use crate::inventory::{self, Store};
use crate::journal::{Journal, Op};
use crate::{Error, luks1, luks2, passphrase};

/// What a session needs from the outside world: the pins' network and the
/// operator. Encryption and decryption stay out of this crate.
pub trait Pins {
    /// `clevis encrypt PIN CONFIG`: the compact JWE of `secret`.
    fn encrypt(&mut self, pin: &str, config: &str, secret: &Secret) -> Result<String, String>;
    /// `clevis decrypt`: the plaintext of a compact JWE.
    fn decrypt(&mut self, jwe: &str) -> Result<Secret, String>;
    /// The new JWE could not be decrypted now (`why`); `Ok` to write it anyway
    /// (say, its config carries the advertisement of a server not reachable
    /// from here), `Err` to stop with nothing written.
    fn accept_unverified(&mut self, pin: &str, config: &str, why: &str) -> Result<(), String>;
}

/// A binding to make: its keyslot and token (or the first free ones), pin and config.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-s`.
    pub keyslot: Option<u32>,
    /// `-t` (LUKS2).
    pub token: Option<u32>,
    /// The pin.
    pub pin: String,
    /// Its config, as given.
    pub config: String,
    /// LUKS1: initialize LUKSMeta if needed.
    pub init_luksmeta: bool,
}

/// Where a binding ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The keyslot.
    pub keyslot: u32,
    /// Where its JWE is.
    pub store: Store,
    /// False when the new JWE could not be checked by decrypting it.
    pub verified: bool,
}

/// What [`Session::settle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// An interrupted operation was completed.
    Finished(Journal),
    /// An interrupted operation was undone (it had not yet changed anything
    /// anyone relies on).
    Undone(Journal),
    /// A clevis token that named no keyslot was removed.
    OrphanTokenRemoved(u32),
    /// A clevis LUKSMeta entry of an inactive keyslot was wiped.
    StaleEntryWiped(u32),
}

impl Settled {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Settled::Finished(j) => format!("finished {}", j.describe()),
            Settled::Undone(j) => format!("undid {}", j.describe()),
            Settled::OrphanTokenRemoved(t) => {
                format!("removed clevis token {t}, which named no keyslot")
            }
            Settled::StaleEntryWiped(s) => {
                format!("wiped LUKSMeta slot {s}, a clevis entry of inactive keyslot {s}")
            }
        }
    }
}

/// A new passphrase and its JWE, checked against each other.
pub(crate) struct NewBinding {
    pub passphrase: Secret,
    pub jwe: String,
    pub verified: bool,
}

impl NewBinding {
    pub fn tag(&self) -> String {
        crate::journal::jwe_tag(&self.jwe).to_owned()
    }

    /// The LUKS2 token clevis writes for keyslot `slot`, as text.
    pub fn token(&self, slot: u32) -> String {
        let flat = Jwe::parse(&self.jwe)
            .map(|j| j.to_flattened_value())
            .unwrap_or_default();
        luks2::clevis_token(slot, &flat)
    }
}

/// One device, open for binding changes.
pub struct Session<'p> {
    pub(crate) dev: Device,
    pub(crate) pins: &'p mut dyn Pins,
    volume_key: Option<Secret>,
}

impl<'p> Session<'p> {
    /// Opens `path` (writable, LUKS1 or LUKS2).
    pub fn open(path: &Path, pins: &'p mut dyn Pins) -> Result<Session<'p>, Error> {
        Ok(Session {
            dev: Device::open(path)?,
            pins,
            volume_key: None,
        })
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        self.dev.path()
    }

    /// The header as it is now.
    pub fn header(&self) -> Result<Header, Error> {
        self.dev.header()
    }

    /// LUKS1: writes an empty LUKSMeta header if the device has none (clevis's
    /// `luksmeta init`, which its bind runs before anything else); true if it did.
    pub fn init_luksmeta(&mut self) -> Result<bool, Error> {
        let hdr = self.header()?;
        if hdr.version() != Version::Luks1 || hdr.luksmeta().is_some() {
            return Ok(false);
        }
        let area = hdr.luksmeta_area().ok_or_else(|| Error::NoRoom {
            device: self.path().to_path_buf(),
            what: "the gap between the keyslots and the data has no room for LUKSMeta".into(),
        })?;
        crate::luksmeta::init(&self.dev, area)?;
        Ok(true)
    }

    /// Checks `passphrase` and keeps the volume key for the keyslots to add;
    /// returns the keyslot it opened.
    pub fn unlock(&mut self, passphrase: &Secret) -> Result<u32, Error> {
        let (slot, vk) = self.dev.volume_key(None, passphrase.expose())?;
        self.volume_key = Some(vk);
        Ok(slot)
    }

    /// Tries the passphrase of every binding (clevis's recovery of an existing
    /// key); the keyslot that opened, if any.
    pub fn unlock_with_bindings(&mut self) -> Result<Option<u32>, Error> {
        let hdr = self.header()?;
        let mut reader = self.dev.file();
        let inv = inventory::inventory(&hdr, &mut reader);
        for b in inv.bindings {
            let Ok(p) = self.pins.decrypt(&b.jwe) else {
                continue;
            };
            if let Ok(slot) = self.unlock(&p) {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Takes the existing passphrase from LUKS2 token `id` (`clevis luks bind -e`):
    /// a `luks2-keyring` token, as `cryptsetup token add --key-description DESC`
    /// writes, names a `user` key of the kernel keyring that holds it. Keeps the
    /// volume key of the first keyslot the token is assigned to that the key
    /// opens (as `cryptsetup --token-id` tries them); returns that keyslot.
    pub fn unlock_with_token(&mut self, id: u32) -> Result<u32, Error> {
        let (pass, slots) = luks2::keyring_passphrase(self, id)?;
        for slot in slots {
            match self.dev.volume_key(Some(slot), pass.expose()) {
                Ok((slot, vk)) => {
                    self.volume_key = Some(vk);
                    return Ok(slot);
                }
                Err(Error::WrongPassphrase { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::ExistingToken {
            device: self.path().to_path_buf(),
            token: id,
            reason: "the passphrase it names opens none of its keyslots".into(),
        })
    }

    pub(crate) fn set_volume_key(&mut self, vk: Secret) {
        self.volume_key = Some(vk);
    }

    /// Finishes or undoes what an interrupted run left (journals), then removes
    /// clevis tokens that name no keyslot and wipes clevis LUKSMeta entries of
    /// inactive keyslots, as clevis's own bind does.
    pub fn settle(&mut self) -> Result<Vec<Settled>, Error> {
        match self.dev.version() {
            Version::Luks2 => luks2::settle(self),
            Version::Luks1 => luks1::settle(self),
        }
    }

    /// A new binding (`clevis luks bind`). Needs [`Session::unlock`] first.
    pub fn bind(&mut self, req: &Request) -> Result<Bound, Error> {
        match self.dev.version() {
            Version::Luks2 => luks2::bind(self, req),
            Version::Luks1 => {
                if req.token.is_some() {
                    return Err(Error::TokenOnLuks1 {
                        device: self.path().to_path_buf(),
                    });
                }
                luks1::bind(self, req)
            }
        }
    }

    /// Removes the binding of `slot` and the keyslot (`clevis luks unbind`);
    /// refuses to remove the last keyslot unless `force`.
    pub fn unbind(&mut self, slot: u32, force: bool) -> Result<(), Error> {
        let hdr = self.bound_header(slot)?;
        if !force && hdr.keyslots().len() == 1 {
            return Err(Error::LastKeyslot {
                device: self.path().to_path_buf(),
                slot,
            });
        }
        match self.dev.version() {
            Version::Luks2 => luks2::unbind(self, slot),
            Version::Luks1 => luks1::unbind(self, slot),
        }
    }

    /// Replaces the binding of `slot` with a new passphrase and a JWE for `pin`
    /// and `config` (`regen`, `edit`), keeping the keyslot number (and LUKS2
    /// token id). Needs [`Session::unlock`] first.
    pub fn rebind(&mut self, slot: u32, pin: &str, config: &str) -> Result<Bound, Error> {
        self.bound_header(slot)?;
        match self.dev.version() {
            Version::Luks2 => luks2::rebind(self, slot, pin, config),
            Version::Luks1 => luks1::rebind(self, slot, pin, config),
        }
    }

    /// The header, once `slot` is known to be in range and to have a clevis binding.
    fn bound_header(&self, slot: u32) -> Result<Header, Error> {
        self.check_range(slot)?;
        let hdr = self.header()?;
        let mut reader = self.dev.file();
        if inventory::binding_of(&hdr, &mut reader, slot).is_none() || hdr.keyslot(slot).is_none() {
            return Err(Error::NotBound {
                device: self.path().to_path_buf(),
                slot,
            });
        }
        Ok(hdr)
    }

    pub(crate) fn check_range(&self, slot: u32) -> Result<(), Error> {
        let max = self.dev.max_keyslots();
        if slot >= max {
            return Err(Error::NoSuchKeyslot {
                device: self.path().to_path_buf(),
                slot,
                version: self.dev.version().number(),
                last: max - 1,
            });
        }
        Ok(())
    }

    /// The keyslot a new binding goes to: `wanted` if free, else the first free one
    /// (not `except`).
    pub(crate) fn free_keyslot(
        &mut self,
        wanted: Option<u32>,
        except: Option<u32>,
        what: &str,
    ) -> Result<u32, Error> {
        if let Some(s) = wanted {
            self.check_range(s)?;
            if self.dev.in_use(s) {
                return Err(Error::KeyslotInUse {
                    device: self.path().to_path_buf(),
                    slot: s,
                });
            }
            return Ok(s);
        }
        (0..self.dev.max_keyslots())
            .find(|&s| Some(s) != except && !self.dev.in_use(s))
            .ok_or_else(|| Error::NoFreeKeyslot {
                device: self.path().to_path_buf(),
                what: what.to_owned(),
            })
    }

    /// A fresh passphrase of clevis's length, its JWE, and the check that the
    /// JWE gives it back. Nothing is written.
    pub(crate) fn new_binding(&mut self, pin: &str, config: &str) -> Result<NewBinding, Error> {
        let hdr = self.header()?;
        let bits = passphrase::bits_for(hdr.keyslots().iter().map(|k| k.key_size));
        let mut rng = latchkey_sys::rng::os();
        let pass = passphrase::generate(bits, &mut rng);
        let jwe = self
            .pins
            .encrypt(pin, config, &pass)
            .map_err(|reason| Error::Encrypt {
                pin: pin.to_owned(),
                reason,
            })?;
        let verified = match self.pins.decrypt(&jwe) {
            Ok(back) if back.ct_eq(&pass) => true,
            Ok(_) => {
                return Err(Error::Verify {
                    device: self.path().to_path_buf(),
                    reason: "it decrypts to something else".into(),
                });
            }
            Err(why) => {
                self.pins
                    .accept_unverified(pin, config, &why)
                    .map_err(|reason| Error::Verify {
                        device: self.path().to_path_buf(),
                        reason,
                    })?;
                false
            }
        };
        Ok(NewBinding {
            passphrase: pass,
            jwe,
            verified,
        })
    }

    /// Adds keyslot `slot` for `pass` and checks that `pass` opens it.
    pub(crate) fn add_and_check(&mut self, slot: u32, pass: &Secret) -> Result<(), Error> {
        let vk = self
            .volume_key
            .as_ref()
            .expect("Session::unlock comes before any keyslot is added");
        self.dev.add_keyslot(slot, vk, pass)?;
        if !self.dev.opens(slot, pass.expose()) {
            return Err(Error::Verify {
                device: self.path().to_path_buf(),
                reason: format!("the new passphrase does not open keyslot {slot}"),
            });
        }
        Ok(())
    }

    /// Settling a rebind whose new JWE is already in place (token or LUKSMeta slot,
    /// under temporary keyslot `temp`): recovers its passphrase, takes the volume key
    /// from it, and makes `j.keyslot` open with it (replacing what an earlier run left).
    pub(crate) fn restore_rebound_keyslot(
        &mut self,
        j: &Journal,
        temp: u32,
        jwe: &str,
    ) -> Result<(), Error> {
        let pass = self.pins.decrypt(jwe).map_err(|e| {
            self.interrupted(
                j,
                format!(
                    "cannot recover the new passphrase ({e}); the volume opens with the binding \
                     of keyslot {temp} meanwhile; run the command again once the pin's servers answer"
                ),
            )
        })?;
        let (_, vk) = self.dev.volume_key(None, pass.expose())?;
        self.set_volume_key(vk);
        let slot = j.keyslot;
        if self.dev.in_use(slot) && !self.dev.opens(slot, pass.expose()) {
            self.dev.kill_keyslot(slot)?;
        }
        if !self.dev.in_use(slot) {
            self.add_and_check(slot, &pass)?;
        }
        Ok(())
    }

    /// The journal record of an operation on `slot`.
    pub(crate) fn journal(&self, op: Op, slot: u32, pin: &str, config: &str) -> Journal {
        Journal {
            op,
            keyslot: slot,
            temp: None,
            token: None,
            jwe_tag: None,
            phase: None,
            pin: pin.to_owned(),
            config: config.to_owned(),
        }
    }

    pub(crate) fn interrupted(&self, j: &Journal, reason: impl Into<String>) -> Error {
        Error::Interrupted {
            device: self.path().to_path_buf(),
            what: j.describe(),
            reason: reason.into(),
        }
    }
}
