//! Offline recovery: the McCallum-Relyea exchange carried by a person instead of HTTP.
//!
//! ```text
//!  node (holds e)                      person                Tang side (holds s)
//!  Recovery::new(jwe) ── request code ──────────────────────▶ RequestCode::parse
//!    X = C + e·G, key tag                                      resolve the key, Y = s·X
//!  Recovery::answer ◀─────────────────────────── answer code ─ (one /rec, or the key dir)
//!    K = Y − e·S → JWE → (sss) → passphrase
//! ```
//!
//! When a node cannot reach its Tang servers, each tang binding it needs becomes a
//! **request code** that someone reads over the phone (or photographs as a QR code) to a
//! person who can reach the server, or who holds its key directory. That person answers
//! with an **answer code**, `Y = s·X`. Neither code reveals anything: X is uniformly random
//! whatever the disk (e is fresh), and Y is useless without e, which never leaves the node
//! except in the `--state` file of `latchkey recover` ([`State`]).
//!
//! # The code format (version 1)
//!
//! A code is 535 bits, written as 107 symbols of Crockford's base32
//! (`0123456789ABCDEFGHJKMNPQRSTVWXYZ`), most significant bit first:
//!
//! | bits | field |
//! |---|---|
//! | 3 | format: `0` request, `1` answer (both P-521); `2`–`7` reserved |
//! | 10 | tag. Request: the first 10 bits of the SHA-256 JWK thumbprint (RFC 7638) of the Tang exchange key, i.e. of the JWE's S256 `kid`. Answer: the first 10 bits of SHA-256 of the request's X in SEC1 compressed form (67 bytes) |
//! | 1 | the parity of the point's y (SEC1 compression) |
//! | 521 | the point's x, big-endian |
//!
//! The 107 symbols are cut into 12 **groups** of 9 (the last of 8), and each group is
//! followed by one **check symbol**: 119 symbols in all, shown as 12 groups of 10 (the
//! last 9), each split 5 + 5 with a hyphen for reading: `0R4ZK-7M2QT`. The check symbol of
//! group g (0-based), with data symbols d₀…dₖ₋₁, is `(g+1) + Σ αⁱ⁺¹·dᵢ` in GF(32) (the
//! polynomial x⁵+x²+1, α = x): one wrong symbol, or two symbols swapped anywhere in the
//! group (check included), always fails the group's check, and a group typed in the place
//! of another fails too, so an error is named by its group. Input is read
//! case-insensitively; spaces, tabs and hyphens are ignored; `I` and `L` read as `1`, `O`
//! as `0`; `U` is refused.
//!
//! The point is checked on reading: an x with no point on P-521 is refused on both sides,
//! before any multiplication.
//!
//! # Why this shape
//!
//! A compressed P-521 point alone is 522 bits: 105 symbols. Tang's `/rec/{kid}` needs the
//! whole kid (a 43-character S256 thumbprint), far too long to read out, so a code carries
//! only a 10-bit **key tag**. `latchkey recover answer --url` resolves it against the
//! exchange keys the server advertises, and `tangd recover` against every key of the
//! directory, hidden (rotated) ones included; a tag that matches no key, or several, is a
//! clear error, and `--kid` (the full kid, which the challenge prints beside each code)
//! overrides it, e.g. for a rotated key that `/adv` no longer lists. Ten bits make a
//! collision between two keys of one server a 1-in-1024 event, for two symbols. The answer
//! carries a 10-bit tag of the request it answers, so answers can come back in any order
//! and one meant for another code (or another challenge) is named as such before the JWE's
//! own authentication tag confirms it. Checks cost 12 symbols: one per group of 9 keeps
//! the code at 119 symbols, within the 120 that can be read over a telephone in a few
//! minutes; one per 4 symbols (groups of 5) would have made 134.
//!
//! A QR code (feature `qr`) holds the same 119 symbols without separators, in QR's
//! alphanumeric mode: version 5 (37×37 modules) at error correction level M.

mod code;
mod exchange;
mod plan;
#[cfg(feature = "qr")]
mod qr;
mod state;

pub use code::{
    AnswerCode, CODE_SYMBOLS, CodeKind, GROUPS, RecoveryCode, RequestCode, looks_like_code,
    split_codes, typed_groups,
};
pub use exchange::answer_from_keys;
pub use plan::{Challenge, Recovery};
#[cfg(feature = "qr")]
pub use qr::qr_rows;
pub use state::State;

/// What can go wrong in offline recovery. The `Display` text is meant for the person
/// typing the codes: it names the group, the code or the line, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// No code symbols at all.
    #[error("no code given")]
    Empty,
    /// A character that is not a code symbol or a separator.
    #[error(
        "{ch:?} in group {group} is not a code character (digits and letters except U; spaces and hyphens are ignored)"
    )]
    BadCharacter {
        /// The character found.
        ch: char,
        /// The group (1-based) it falls in.
        group: usize,
    },
    /// Too few or too many symbols.
    #[error("the code has {got} characters, {expected} expected{}", suspect_group(.first_bad_group))]
    Length {
        /// Symbols found (separators not counted).
        got: usize,
        /// [`CODE_SYMBOLS`].
        expected: usize,
        /// The first complete group whose check fails, where a symbol was probably lost
        /// or added.
        first_bad_group: Option<usize>,
    },
    /// One or more groups fail their check symbol.
    #[error("{} not check: a typo there? Read {} again", groups_text(.groups), if .groups.len() == 1 { "it" } else { "them" })]
    Checksum {
        /// The failing groups, 1-based.
        groups: Vec<usize>,
    },
    /// The first symbol names a format this version does not know.
    #[error("not a recovery code this version knows (format {0})")]
    UnknownFormat(u8),
    /// A request code where an answer is expected, or the reverse.
    #[error("this is {} code; {} code is expected here", article(*.got), article(*.expected))]
    WrongKind {
        /// What the code is.
        got: CodeKind,
        /// What was expected.
        expected: CodeKind,
    },
    /// The code's x has no point on the curve: damaged or forged.
    #[error("the code's point is not on P-521: the code is damaged; read it again")]
    NotOnCurve,
    /// No exchange key matches a request code's key tag.
    #[error(
        "no exchange key of {server} matches the code's key id; it may have been rotated away: pass --kid with the full key id shown beside the code"
    )]
    UnknownKey {
        /// The URL or key directory searched.
        server: String,
    },
    /// Several exchange keys match the key tag.
    #[error("the code's key id matches {} keys of {server} ({}): pass --kid with the full key id shown beside the code", .candidates.len(), .candidates.join(", "))]
    AmbiguousKey {
        /// The URL or key directory searched.
        server: String,
        /// S256 thumbprints of the matching keys.
        candidates: Vec<String>,
    },
    /// `--kid` names no key.
    #[error("{server} has no key {kid}")]
    UnknownKid {
        /// The URL or key directory searched.
        server: String,
        /// The kid given.
        kid: String,
    },
    /// The server's exchange refused the request (tang's status and reason).
    #[error("the exchange failed: {0}")]
    Exchange(String),
    /// The answer matches no code of this challenge, or does not open the one it names.
    #[error("this answer is not for this code{}", answer_detail(.code))]
    NotForThisCode {
        /// The code whose tag the answer carries but whose JWE it does not open (made
        /// with another key, e.g. a wrong `--kid`); `None` if its tag matches no code.
        code: Option<usize>,
    },
    /// The answer is for a code that is answered already, or no longer needed.
    #[error("code {0} is answered already or no longer needed")]
    NotNeeded(usize),
    /// The binding opens without any Tang server (only null pins are needed).
    #[error("this binding needs no Tang server: `latchkey decrypt` opens it")]
    NothingToRecover,
    /// The state file is not one this version reads.
    #[error("the state file is malformed (line {line}): {reason}")]
    StateMalformed {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The state file was made for another binding.
    #[error("the state file was made for another binding ({0})")]
    StateMismatch(String),
    /// The JWE could not be read as a clevis binding.
    #[error(transparent)]
    Jwe(#[from] crate::Error),
}

fn suspect_group(g: &Option<usize>) -> String {
    match g {
        Some(g) => format!(
            "; group {g} is the first that does not check: a character is missing or extra there"
        ),
        None => String::new(),
    }
}

fn groups_text(groups: &[usize]) -> String {
    match groups {
        [g] => format!("group {g} does"),
        _ => {
            let list: Vec<String> = groups.iter().map(ToString::to_string).collect();
            format!("groups {} do", list.join(", "))
        }
    }
}

fn article(k: CodeKind) -> &'static str {
    match k {
        CodeKind::Request => "a request",
        CodeKind::Answer => "an answer",
    }
}

fn answer_detail(code: &Option<usize>) -> String {
    match code {
        Some(n) => format!(
            " (it names code {n}, but does not open its JWE: it was made with another key, or the request was mistyped)"
        ),
        None => " (it answers none of the codes of this challenge)".into(),
    }
}
