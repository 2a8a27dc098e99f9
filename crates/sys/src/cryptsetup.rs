//! libcryptsetup where libcryptsetup-rs stops: a LUKS2 token written from
//! JSON text exactly as given (feature `cryptsetup`; only the operator's
//! companion `latchkey-luks` builds it, never the agent).
//!
//! ```text
//!   Context::init(path) ─▶ crypt_init ─▶ &mut CryptDevice (libcryptsetup-rs, everything else)
//!                                    └─▶ set_token_text ─▶ crypt_token_json_set(text)
//! ```
//!
//! libcryptsetup keeps a token's members in the order of the text it is
//! given (json-c objects keep insertion order), and clevis's tokens begin
//! with `"type"`. libcryptsetup-rs takes a `serde_json::Value`, whose members
//! serialize sorted (`"jwe"` first), so it cannot write clevis's bytes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use libcryptsetup_rs::CryptDevice;
use libcryptsetup_rs_sys::crypt_device;
use rustix::io::Errno;

use crate::{Error, Result};

/// One libcryptsetup context on a device.
pub struct Context {
    /// The context, for every call libcryptsetup-rs wraps; it frees `raw` on drop.
    device: CryptDevice,
    /// The same context, for the calls below.
    raw: NonNull<crypt_device>,
    path: String,
}

impl Context {
    /// `crypt_init(path)`: a context with nothing loaded yet.
    pub fn init(path: &Path) -> Result<Context> {
        let name = path.display().to_string();
        let fail = |op, errno| Error::Cryptsetup {
            op,
            device: name.clone(),
            errno,
        };
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| fail("crypt_init", Errno::INVAL))?;
        let mut raw: *mut crypt_device = std::ptr::null_mut();
        // SAFETY: crypt_init writes a new context's address into `raw` (a valid
        // out-pointer) and reads the NUL-terminated path, which outlives the call.
        let rc = unsafe { libcryptsetup_rs_sys::crypt_init(&mut raw, cpath.as_ptr()) };
        if rc < 0 {
            return Err(fail("crypt_init", Errno::from_raw_os_error(-rc)));
        }
        let raw = NonNull::new(raw).ok_or_else(|| fail("crypt_init", Errno::NOMEM))?;
        Ok(Context {
            // Owns the context from here on: crypt_free when it drops, once.
            device: CryptDevice::from_ptr(raw.as_ptr()),
            raw,
            path: name,
        })
    }

    /// The context for libcryptsetup-rs's calls.
    pub fn device(&mut self) -> &mut CryptDevice {
        &mut self.device
    }

    /// Writes LUKS2 token `id` (created or replaced in one header commit) from
    /// `json`, a token object as text; its members stay in the text's order.
    pub fn set_token_text(&mut self, id: u32, json: &str) -> Result<()> {
        let fail = |errno| Error::Cryptsetup {
            op: "crypt_token_json_set",
            device: self.path.clone(),
            errno,
        };
        let text = CString::new(json).map_err(|_| fail(Errno::INVAL))?;
        let id = libc::c_int::try_from(id).map_err(|_| fail(Errno::INVAL))?;
        // SAFETY: `raw` is the live context `device` owns (freed only when self
        // drops). `&mut self` keeps any other call on it from running meanwhile,
        // and a Context never leaves the thread that made it (NonNull is neither
        // Send nor Sync). libcryptsetup reads the NUL-terminated text, which
        // outlives the call, and keeps no pointer to it.
        let rc = unsafe {
            libcryptsetup_rs_sys::crypt_token_json_set(self.raw.as_ptr(), id, text.as_ptr())
        };
        if rc < 0 {
            return Err(fail(Errno::from_raw_os_error(-rc)));
        }
        Ok(())
    }
}
