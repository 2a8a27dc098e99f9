//! The kernel keyring: the payload of a `user` key found by its description,
//! as libcryptsetup's `luks2-keyring` token reads the passphrase it names
//! (`cryptsetup token add --key-description DESC`; `keyctl padd user DESC @s`).
//!
//! ```text
//!   request_key("user", DESC) ─▶ key id ─▶ keyctl(KEYCTL_READ, id) ─▶ payload (wiped on drop)
//! ```
//!
//! request_key(2) searches the caller's thread, process and session keyrings
//! and, with no callout text, never asks user space to make the key.

use std::ffi::CString;

use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The largest payload a `user` key holds (linux/security/keys/user_defined.c).
pub const MAX_PAYLOAD: usize = 32767;

/// The payload of the `user` key `description`.
pub fn read_user_key(description: &str) -> Result<Zeroizing<Vec<u8>>> {
    let fail = |op: &'static str, errno: Errno| Error::Keyring {
        op,
        description: description.to_owned(),
        errno,
    };
    let desc = CString::new(description).map_err(|_| fail("request_key", Errno::INVAL))?;
    // SAFETY: request_key(2) reads the two NUL-terminated strings, which live
    // until the call returns; a null callout asks for no upcall, and keyring 0
    // links the key nowhere. It writes no memory of ours.
    let id = unsafe {
        libc::syscall(
            libc::SYS_request_key,
            c"user".as_ptr(),
            desc.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0 as libc::c_int,
        )
    };
    if id < 0 {
        return Err(fail("request_key", Errno::from_raw_os_error(errno())));
    }
    let mut buf = Zeroizing::new(vec![0u8; MAX_PAYLOAD]);
    // SAFETY: KEYCTL_READ copies at most `buf.len()` bytes of the payload into
    // `buf`, which is valid and exclusively ours for that many bytes.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_READ as libc::c_long,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(fail("keyctl read", Errno::from_raw_os_error(errno())));
    }
    // The return value is the payload's whole size, which a buffer of the
    // largest size always holds.
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > buf.len() {
        return Err(fail("keyctl read", Errno::MSGSIZE));
    }
    buf.truncate(n);
    Ok(buf)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_names_its_description() {
        let e = read_user_key("latchkey-test: no such key, ever").unwrap_err();
        // ENOKEY, or ENOSYS/EACCES where keyrings are unavailable (containers).
        assert!(
            e.to_string()
                .starts_with("request_key of user key \"latchkey-test: no such key, ever\": "),
            "{e}"
        );
        let e = read_user_key("nul\0inside").unwrap_err();
        assert_eq!(e.errno(), Some(Errno::INVAL));
    }
}
