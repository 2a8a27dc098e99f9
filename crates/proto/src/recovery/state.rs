//! The recovery state: what a node must keep between printing its request codes and
//! reading the answers, when those happen in two processes (`latchkey recover challenge`,
//! then `finish`).
//!
//! ```text
//! latchkey-recovery-state 1
//! jwe-sha256 <64 hex digits: SHA-256 of the binding's compact JWE>
//! e <base64url of one ephemeral scalar>        one line per tang leaf, in tree order
//! ```
//!
//! The e lines are the secret: with an answer, e opens its JWE. The rest follows from the
//! JWE: the same e replayed into the same tree gives the same request codes and tags.

use sha2::{Digest, Sha256};

use super::RecoveryError;
use crate::b64;
use crate::jwe::Jwe;
use crate::secret::Secret;

const MAGIC: &str = "latchkey-recovery-state 1";
/// Larger than any state: a 1 MiB JWE could not hold more tang leaves than this.
pub(crate) const MAX_BYTES: usize = 64 << 10;
const MAX_EPHEMERALS: usize = 512;

/// The secret half of a recovery, as kept in a state file. No `Debug`; wiped on drop.
pub struct State {
    pub(crate) digest: [u8; 32],
    pub(crate) ephemerals: Vec<Secret>,
}

/// The binding a state belongs to: SHA-256 of its compact JWE.
pub(crate) fn digest(jwe: &Jwe) -> [u8; 32] {
    Sha256::digest(jwe.to_compact().as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn malformed(line: usize, reason: impl Into<String>) -> RecoveryError {
    RecoveryError::StateMalformed {
        line,
        reason: reason.into(),
    }
}

impl State {
    /// Whether this state was made for `jwe`.
    pub fn is_for(&self, jwe: &Jwe) -> bool {
        self.digest == digest(jwe)
    }

    /// The file's bytes (they hold the ephemeral scalars: a secret).
    pub fn to_bytes(&self) -> Secret {
        use zeroize::Zeroize as _;
        let head = format!("{MAGIC}\njwe-sha256 {}\n", hex(&self.digest));
        let lines: usize = self
            .ephemerals
            .iter()
            .map(|e| 3 + e.len().div_ceil(3) * 4)
            .sum();
        // Sized up front: a growing buffer would leave copies of the scalars behind.
        let mut text = Vec::with_capacity(head.len() + lines);
        text.extend_from_slice(head.as_bytes());
        for e in &self.ephemerals {
            let mut value = b64::encode(e.expose());
            text.extend_from_slice(b"e ");
            text.extend_from_slice(value.as_bytes());
            text.push(b'\n');
            value.zeroize();
        }
        Secret::new(text)
    }

    /// Reads a state file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<State, RecoveryError> {
        if bytes.len() > MAX_BYTES {
            return Err(malformed(0, format!("larger than {MAX_BYTES} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| malformed(0, "not UTF-8 text"))?;
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, MAGIC)) => {}
            _ => return Err(malformed(1, format!("the first line must be {MAGIC:?}"))),
        }
        let (n, line) = lines.next().unwrap_or((2, ""));
        let digest = line
            .strip_prefix("jwe-sha256 ")
            .and_then(unhex)
            .ok_or_else(|| malformed(n, "expected jwe-sha256 and 64 hex digits"))?;
        let mut ephemerals = Vec::new();
        for (n, line) in lines {
            let value = line
                .strip_prefix("e ")
                .ok_or_else(|| malformed(n, "expected an e line"))?;
            if ephemerals.len() == MAX_EPHEMERALS {
                return Err(malformed(n, format!("more than {MAX_EPHEMERALS} e lines")));
            }
            let e = b64::decode(value).map_err(|_| malformed(n, "e is not base64url"))?;
            ephemerals.push(Secret::new(e));
        }
        if ephemerals.is_empty() {
            return Err(malformed(3, "no e line"));
        }
        Ok(State { digest, ephemerals })
    }
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            digest: [0xab; 32],
            ephemerals: vec![Secret::from_slice(&[1; 66]), Secret::from_slice(&[2; 66])],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = s.to_bytes();
        let back = State::parse(bytes.expose()).unwrap();
        assert_eq!(back.digest, s.digest);
        assert_eq!(back.ephemerals.len(), 2);
        assert!(back.ephemerals[1].ct_eq(&s.ephemerals[1]));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let good = String::from_utf8(sample().to_bytes().expose().to_vec()).unwrap();
        let cases: Vec<(String, usize)> = vec![
            (String::new(), 1),
            ("latchkey-recovery-state 2\n".into(), 1),
            (good.replace("jwe-sha256 ab", "jwe-sha256 zz"), 2),
            (good.replace("jwe-sha256 ", "jwe-sha1 "), 2),
            (format!("{MAGIC}\njwe-sha256 {}\n", "ab".repeat(32)), 3),
            (good.replace("\ne ", "\nx "), 3),
            (format!("{good}e AB==\n"), 5),
            (format!("{good}\n"), 5),
        ];
        for (text, line) in cases {
            match State::parse(text.as_bytes()) {
                Err(RecoveryError::StateMalformed { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}")
                }
                Err(e) => panic!("{text:?}: {e}"),
                Ok(_) => panic!("{text:?} accepted"),
            }
        }
        assert!(State::parse(&[0xff, 0xfe]).is_err());
        assert!(State::parse(&vec![b'e'; MAX_BYTES + 1]).is_err());
        let many = format!("{good}{}", "e AQ\n".repeat(MAX_EPHEMERALS));
        assert!(State::parse(many.as_bytes()).is_err());
    }
}
