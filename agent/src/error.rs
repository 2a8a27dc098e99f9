//! What can go wrong while opening volumes, and the per-volume report of
//! what was tried: a list of [`Attempt`]s, each a [`Method`] (or none, for
//! what concerns the volume as a whole) and its typed [`Error`]. The lines
//! the agent logs are their `Display`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::net::NetError;

/// Why a volume, or one way of opening it, failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A device or image could not be opened.
    Open {
        /// The device or image.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file (the local key) could not be opened or read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory (a mount point) could not be created.
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A device's LUKS header could not be read.
    Header {
        /// The device or image.
        path: PathBuf,
        /// What is wrong with the header.
        source: latchkey_luks::Error,
    },
    /// A device that was named holds no LUKS header.
    NotLuks {
        /// The device.
        path: PathBuf,
    },
    /// No device matching the spec (`UUID=...`, `LABEL=...`, a path) appeared in time.
    NoDevice {
        /// The spec, as crypttab writes it.
        spec: String,
    },
    /// One device was named twice; the later name is refused.
    SameDevice {
        /// The refused volume's device.
        path: PathBuf,
        /// What the two have in common: "the same file", "the same mapping name", ...
        why: &'static str,
        /// The device opened under the first name.
        kept: PathBuf,
        /// The first name (with its UUID).
        kept_label: String,
    },
    /// The mapping name is taken by a mapping of another device.
    NameTaken {
        /// The mapping name.
        name: String,
        /// The other mapping's dm UUID, if any.
        uuid: String,
        /// The devices under the other mapping.
        on: Vec<String>,
        /// This volume's device.
        path: PathBuf,
    },
    /// The device is mapped already, under another name.
    MappedElsewhere {
        /// The device.
        path: PathBuf,
        /// The existing mapping's name.
        existing: String,
        /// The name this volume would have had.
        name: String,
    },
    /// A passphrase opened no keyslot, or its key derivation was stopped.
    Unlock(latchkey_luks::Error),
    /// The passphrase recovered from a binding does not open its keyslot.
    Keyslot {
        /// The binding's keyslot.
        slot: u32,
        /// Why it did not open.
        source: latchkey_luks::Error,
    },
    /// A binding's JWE cannot be read.
    Jwe(latchkey_proto::Error),
    /// The network, needed by a binding, could not be brought up before the deadline.
    Network(Arc<NetError>),
    /// Tang (or sss, or a tpm2 pin) did not give the passphrase back.
    Recover(latchkey_client::Error),
    /// The local key file is unusable: not a regular file, empty, too large.
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: KeyFileProblem,
    },
    /// The boot partition of `latchkey.boot=` did not appear.
    NoBootPartition {
        /// Its spec (`UUID=...`).
        spec: String,
    },
    /// The boot partition could not be mounted read-only.
    Mount {
        /// Its spec (`UUID=...`).
        spec: String,
        /// The kernel's answer.
        source: latchkey_sys::Error,
    },
    /// Loading the local key failed (shared by every volume that asked).
    LocalKey(Arc<Error>),
    /// No data area follows the LUKS header.
    NoDataArea {
        /// The device.
        path: PathBuf,
    },
    /// Device-mapper could not be reached.
    DmControl(latchkey_sys::Error),
    /// A device-mapper step failed.
    Dm {
        /// What was under way: "creating dm device root", ...
        doing: String,
        /// The kernel's answer.
        source: latchkey_sys::Error,
    },
    /// A worker thread could not be started.
    Thread(std::io::Error),
    /// A worker thread panicked.
    Panicked,
    /// The console was closed (end of input) before a passphrase opened the volume.
    NoInput,
    /// Every passphrase typed at the console was wrong.
    WrongPassphrases {
        /// How many were tried.
        tries: u32,
    },
    /// The LUKS header has no clevis binding to recover from.
    NoBinding,
    /// The deadline passed with methods still at work.
    Unanswered {
        /// How many.
        pending: usize,
    },
}

/// What is wrong with a local key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileProblem {
    /// Not a regular file: what it is instead ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
    /// Larger than a key file may be.
    TooLarge,
    /// Empty.
    Empty,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open { path, source } => write!(f, "opening {}: {source}", path.display()),
            Error::Read { path, source } => write!(f, "{}: {source}", path.display()),
            Error::CreateDir { path, source } => write!(f, "creating {}: {source}", path.display()),
            Error::Header { path, source } => {
                write!(f, "reading the LUKS header of {}: {source}", path.display())
            }
            Error::NotLuks { path } => write!(f, "{} holds no LUKS header", path.display()),
            Error::NoDevice { spec } => write!(f, "no device with {spec} appeared"),
            Error::SameDevice {
                path,
                why,
                kept,
                kept_label,
            } => write!(
                f,
                "{} has {why} as {} ({kept_label}); a device is opened once",
                path.display(),
                kept.display()
            ),
            Error::NameTaken {
                name,
                uuid,
                on,
                path,
            } => {
                let uuid = if uuid.is_empty() {
                    "no dm UUID".to_owned()
                } else {
                    format!("dm UUID {uuid}")
                };
                let on = if on.is_empty() {
                    "no device".to_owned()
                } else {
                    on.join(", ")
                };
                write!(
                    f,
                    "a mapping named {name} already exists for another device ({uuid}, on {on}); \
                     not opening {} over it",
                    path.display()
                )
            }
            Error::MappedElsewhere {
                path,
                existing,
                name,
            } => write!(
                f,
                "{} is already open as /dev/mapper/{existing}; not mapping it a second time as {name}",
                path.display()
            ),
            Error::Unlock(e) => write!(f, "{e}"),
            Error::Keyslot { slot, source } => write!(f, "keyslot {slot}: {source}"),
            Error::Jwe(e) => write!(f, "{e}"),
            Error::Network(e) => write!(f, "network: {e}"),
            Error::Recover(e) => write!(f, "{e}"),
            Error::KeyFile { path, reason } => {
                let path = path.display();
                match reason {
                    KeyFileProblem::NotRegular(kind) => {
                        write!(f, "{path}: not a regular file ({kind})")
                    }
                    KeyFileProblem::TooLarge => write!(f, "{path}: larger than 8 MiB"),
                    KeyFileProblem::Empty => write!(f, "{path}: empty"),
                }
            }
            Error::NoBootPartition { spec } => write!(f, "boot partition {spec} not found"),
            Error::Mount { spec, source } => write!(f, "mounting boot partition {spec}: {source}"),
            Error::LocalKey(e) => write!(f, "{e}"),
            Error::NoDataArea { path } => {
                write!(f, "{}: no data area after the LUKS header", path.display())
            }
            Error::DmControl(e) => write!(f, "{e}"),
            Error::Dm { doing, source } => write!(f, "{doing}: {source}"),
            Error::Thread(e) => write!(f, "cannot start a thread: {e}"),
            Error::Panicked => write!(f, "internal error: worker panicked"),
            Error::NoInput => write!(f, "no input"),
            Error::WrongPassphrases { tries } => write!(f, "{tries} wrong passphrases"),
            Error::NoBinding => write!(f, "no clevis binding in the LUKS header"),
            Error::Unanswered { pending } => write!(
                f,
                "deadline reached with {pending} method(s) still unanswered"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A way of opening a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// The local key file of degraded mode.
    LocalKey,
    /// A clevis binding, by its `Display` name ("clevis token 0 (keyslot 1)").
    Binding(String),
    /// A passphrase typed at the console.
    Console,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::LocalKey => f.write_str("local key"),
            Method::Binding(name) => f.write_str(name),
            Method::Console => f.write_str("console"),
        }
    }
}

/// One line of a volume's failure report: what was tried, and why it failed.
#[derive(Debug)]
pub struct Attempt {
    /// The method, or `None` for what concerns the volume itself.
    pub method: Option<Method>,
    /// Why it failed.
    pub cause: Error,
}

impl Attempt {
    /// A failure of `method`.
    pub fn of(method: Method, cause: Error) -> Attempt {
        Attempt {
            method: Some(method),
            cause,
        }
    }
}

impl From<Error> for Attempt {
    fn from(cause: Error) -> Attempt {
        Attempt {
            method: None,
            cause,
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m}: {}", self.cause),
            None => write!(f, "{}", self.cause),
        }
    }
}
