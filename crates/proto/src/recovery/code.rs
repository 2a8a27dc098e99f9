//! The text form of recovery codes: packing, check symbols, parsing and printing (the
//! format is specified in the module above).

use core::fmt;

use sha2::{Digest, Sha256};

use super::RecoveryError;
use crate::curve::{Curve, EcPoint};
use crate::jwk::{Jwk, ThpHash};

/// Crockford's base32 alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The only curve tang uses; the format reserves values for others.
const CURVE: Curve = Curve::P521;
const FORMAT_BITS: usize = 3;
const TAG_BITS: usize = 10;
const X_BITS: usize = 521;
const DATA_BITS: usize = FORMAT_BITS + TAG_BITS + 1 + X_BITS;
const DATA_SYMBOLS: usize = DATA_BITS.div_ceil(5);
const GROUP_DATA: usize = 9;
/// Groups of a code, each ending with its check symbol.
pub const GROUPS: usize = DATA_SYMBOLS.div_ceil(GROUP_DATA);
/// Symbols of a code, check symbols included, separators not.
pub const CODE_SYMBOLS: usize = DATA_SYMBOLS + GROUPS;
/// Longest input line looked at; a code with separators is about 140 characters.
const MAX_LINE: usize = 4096;

const _: () = assert!(DATA_SYMBOLS == 107 && GROUPS == 12 && CODE_SYMBOLS == 119);

/// Which way a code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// From the node to the Tang side: X and the key tag.
    Request,
    /// From the Tang side back: Y and the request's tag.
    Answer,
}

impl CodeKind {
    fn format(self) -> u8 {
        match self {
            CodeKind::Request => 0,
            CodeKind::Answer => 1,
        }
    }
}

/// A parsed code of either kind. Public points only: nothing here is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode {
    kind: CodeKind,
    tag: u16,
    point: EcPoint,
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCode({self})")
    }
}

/// A request code: the blinded point `X = C + e·G` and the tag of the server key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCode(RecoveryCode);

/// An answer code: `Y = s·X` and the tag of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerCode(RecoveryCode);

/// The first 10 bits of a digest.
fn tag_of(digest: &[u8]) -> u16 {
    (u16::from(digest[0]) << 2) | u16::from(digest[1] >> 6)
}

/// The key tag of a Tang exchange key: its S256 thumbprint's first 10 bits.
pub(crate) fn key_tag(server: &EcPoint) -> u16 {
    tag_of(&Jwk::from_point(server).thumbprint_digest(ThpHash::S256))
}

/// The answer tag of a request point X.
pub(crate) fn answer_tag(x: &EcPoint) -> u16 {
    tag_of(&Sha256::digest(x.to_compressed()))
}

fn symbol_value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'I' | 'L' => '1',
        'O' => '0',
        c => c,
    };
    ALPHABET
        .iter()
        .position(|&a| char::from(a) == c)
        .map(|p| p as u8)
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '-' | '\r' | '\n')
}

/// GF(32) multiplication modulo x⁵ + x² + 1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 0x20 != 0 {
            a ^= 0x25;
        }
    }
    r
}

/// The check symbol of group `g` (0-based).
fn check_symbol(g: usize, data: &[u8]) -> u8 {
    let mut c = (g as u8) + 1;
    let mut w = 2;
    for &d in data {
        c ^= gf_mul(w, d);
        w = gf_mul(w, 2);
    }
    c
}

struct Bits {
    bits: Vec<bool>,
}

impl Bits {
    fn push(&mut self, value: u32, n: usize) {
        for i in (0..n).rev() {
            self.bits.push((value >> i) & 1 == 1);
        }
    }
}

impl RecoveryCode {
    fn new(kind: CodeKind, tag: u16, point: &EcPoint) -> RecoveryCode {
        RecoveryCode {
            kind,
            tag: tag & ((1 << TAG_BITS) - 1),
            point: point.clone(),
        }
    }

    /// Request or answer.
    pub fn kind(&self) -> CodeKind {
        self.kind
    }

    /// The point the code carries (X or Y), validated.
    pub fn point(&self) -> &EcPoint {
        &self.point
    }

    /// The 107 data symbols.
    fn data_symbols(&self) -> Vec<u8> {
        let mut b = Bits {
            bits: Vec::with_capacity(DATA_SYMBOLS * 5),
        };
        b.push(u32::from(self.kind.format()), FORMAT_BITS);
        b.push(u32::from(self.tag), TAG_BITS);
        b.push(u32::from(self.point.y.last().copied().unwrap_or(0) & 1), 1);
        let skip = self.point.x.len() * 8 - X_BITS;
        for (i, byte) in self.point.x.iter().enumerate() {
            for bit in (0..8).rev() {
                if i * 8 + (7 - bit) >= skip {
                    b.bits.push((byte >> bit) & 1 == 1);
                }
            }
        }
        b.bits.resize(DATA_SYMBOLS * 5, false);
        b.bits
            .chunks(5)
            .map(|c| c.iter().fold(0u8, |v, &bit| (v << 1) | u8::from(bit)))
            .collect()
    }

    /// The 12 groups, each with its check symbol, as text without separators.
    fn groups(&self) -> Vec<String> {
        self.data_symbols()
            .chunks(GROUP_DATA)
            .enumerate()
            .map(|(g, data)| {
                data.iter()
                    .chain(core::iter::once(&check_symbol(g, data)))
                    .map(|&s| char::from(ALPHABET[usize::from(s)]))
                    .collect()
            })
            .collect()
    }

    /// The 119 symbols without separators (what the QR code holds).
    pub fn compact(&self) -> String {
        self.groups().concat()
    }

    /// The code in rows of `per_row` groups, for a narrow screen (the usual form is
    /// three rows of four).
    pub fn rows(&self, per_row: usize) -> Vec<String> {
        self.groups()
            .iter()
            .map(|g| show_group(g))
            .collect::<Vec<_>>()
            .chunks(per_row.max(1))
            .map(|r| r.join(" "))
            .collect()
    }

    /// Reads one code: exactly [`CODE_SYMBOLS`] symbols, any separators.
    pub fn parse(text: &str) -> Result<RecoveryCode, RecoveryError> {
        // Past a code's length and one more group, only the count matters.
        const KEEP: usize = CODE_SYMBOLS + GROUP_DATA + 1;
        let mut symbols = Vec::with_capacity(KEEP);
        let mut count = 0;
        for c in text.chars() {
            if is_separator(c) {
                continue;
            }
            let group = count / (GROUP_DATA + 1) + 1;
            let v = symbol_value(c).ok_or(RecoveryError::BadCharacter { ch: c, group })?;
            count += 1;
            if symbols.len() < KEEP {
                symbols.push(v);
            }
        }
        if count == 0 {
            return Err(RecoveryError::Empty);
        }
        let bad: Vec<usize> = symbols
            .chunks(GROUP_DATA + 1)
            .take(GROUPS)
            .enumerate()
            .filter(|(g, group)| {
                let full = if *g == GROUPS - 1 {
                    CODE_SYMBOLS - g * (GROUP_DATA + 1)
                } else {
                    GROUP_DATA + 1
                };
                group.len() == full && {
                    let (data, check) = group.split_at(group.len() - 1);
                    check_symbol(*g, data) != check[0]
                }
            })
            .map(|(g, _)| g + 1)
            .collect();
        if count != CODE_SYMBOLS {
            return Err(RecoveryError::Length {
                got: count,
                expected: CODE_SYMBOLS,
                first_bad_group: bad.first().copied(),
            });
        }
        if !bad.is_empty() {
            return Err(RecoveryError::Checksum { groups: bad });
        }
        let data: Vec<u8> = symbols
            .chunks(GROUP_DATA + 1)
            .flat_map(|g| g[..g.len() - 1].iter().copied())
            .collect();
        Self::unpack(&data)
    }

    fn unpack(data: &[u8]) -> Result<RecoveryCode, RecoveryError> {
        let bits: Vec<bool> = data
            .iter()
            .flat_map(|&s| (0..5).rev().map(move |i| (s >> i) & 1 == 1))
            .collect();
        let mut at = 0;
        let mut take = |n: usize| {
            let v = bits[at..at + n]
                .iter()
                .fold(0u32, |v, &b| (v << 1) | u32::from(b));
            at += n;
            v
        };
        let kind = match take(FORMAT_BITS) {
            0 => CodeKind::Request,
            1 => CodeKind::Answer,
            other => return Err(RecoveryError::UnknownFormat(other as u8)),
        };
        let tag = take(TAG_BITS) as u16;
        let y_odd = take(1) == 1;
        let width = CURVE.width();
        let mut x = vec![0u8; width];
        for i in (width * 8 - X_BITS)..width * 8 {
            if take(1) == 1 {
                x[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let point =
            EcPoint::from_compressed(CURVE, &x, y_odd).map_err(|_| RecoveryError::NotOnCurve)?;
        Ok(RecoveryCode { kind, tag, point })
    }

    fn expect(self, expected: CodeKind) -> Result<RecoveryCode, RecoveryError> {
        if self.kind != expected {
            return Err(RecoveryError::WrongKind {
                got: self.kind,
                expected,
            });
        }
        Ok(self)
    }
}

fn show_group(g: &str) -> String {
    let (a, b) = g.split_at(5);
    format!("{a}-{b}")
}

impl fmt::Display for RecoveryCode {
    /// All twelve groups on one line, separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rows(GROUPS)[0])
    }
}

impl RequestCode {
    /// The request code for X and the server's exchange key S.
    pub fn new(x: &EcPoint, server: &EcPoint) -> RequestCode {
        RequestCode(RecoveryCode::new(CodeKind::Request, key_tag(server), x))
    }

    /// Reads a request code.
    pub fn parse(text: &str) -> Result<RequestCode, RecoveryError> {
        RecoveryCode::parse(text)?
            .expect(CodeKind::Request)
            .map(RequestCode)
    }

    /// The code itself.
    pub fn code(&self) -> &RecoveryCode {
        &self.0
    }

    /// X.
    pub fn point(&self) -> &EcPoint {
        &self.0.point
    }

    /// Whether `key`'s S256 thumbprint starts with the code's key tag.
    pub fn names_key(&self, key: &Jwk) -> bool {
        key.point().is_some_and(|p| key_tag(p) == self.0.tag)
    }

    /// The answer tag this request's answer must carry.
    pub(crate) fn answer_tag(&self) -> u16 {
        answer_tag(&self.0.point)
    }
}

impl AnswerCode {
    /// The answer Y to the request X.
    pub fn new(y: &EcPoint, request: &RequestCode) -> AnswerCode {
        AnswerCode(RecoveryCode::new(CodeKind::Answer, request.answer_tag(), y))
    }

    /// Reads an answer code.
    pub fn parse(text: &str) -> Result<AnswerCode, RecoveryError> {
        RecoveryCode::parse(text)?
            .expect(CodeKind::Answer)
            .map(AnswerCode)
    }

    /// The code itself.
    pub fn code(&self) -> &RecoveryCode {
        &self.0
    }

    /// Y.
    pub fn point(&self) -> &EcPoint {
        &self.0.point
    }

    pub(crate) fn tag(&self) -> u16 {
        self.0.tag
    }
}

impl fmt::Display for RequestCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for AnswerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Cuts typed or pasted text into codes, each with the 1-based line it starts on.
///
/// A code may span lines (three rows of four groups, as shown) or sit on one. Lines that
/// start with `#` are comments and end the current code, as blank lines do. A code also
/// ends at the line where it reaches [`CODE_SYMBOLS`] symbols, or before a line that would
/// take it past that, so a code with a symbol missing does not swallow the next one. Each
/// piece is for [`RequestCode::parse`] or [`AnswerCode::parse`], which say what is wrong
/// with it. Lines longer than 4096 bytes are cut there.
pub fn split_codes(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut count = 0;
    let mut start = 0;
    let mut flush = |cur: &mut String, count: &mut usize, start: usize| {
        if *count > 0 {
            out.push((start, core::mem::take(cur)));
        }
        cur.clear();
        *count = 0;
    };
    for (n, line) in text.lines().enumerate() {
        let line = match line.char_indices().nth(MAX_LINE) {
            Some((at, _)) => &line[..at],
            None => line,
        };
        let symbols = line.chars().filter(|&c| !is_separator(c)).count();
        if symbols == 0 || line.trim_start().starts_with('#') {
            flush(&mut cur, &mut count, start);
            continue;
        }
        if count > 0 && count + symbols > CODE_SYMBOLS {
            flush(&mut cur, &mut count, start);
        }
        if count == 0 {
            start = n + 1;
        }
        cur.push_str(line);
        cur.push(' ');
        count += symbols;
        if count >= CODE_SYMBOLS {
            flush(&mut cur, &mut count, start);
        }
    }
    flush(&mut cur, &mut count, start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curve::{EcBackend, RustCrypto, random_scalar};

    fn point() -> EcPoint {
        RustCrypto
            .mul_base(CURVE, &random_scalar(CURVE, &mut latchkey_sys::rng::os()))
            .unwrap()
    }

    fn request() -> RequestCode {
        RequestCode::new(&point(), &point())
    }

    /// Replaces the symbol at `i` (0-based, separators not counted).
    fn with_symbol(code: &str, i: usize, c: char) -> String {
        let mut s: Vec<char> = code.chars().filter(|&c| !is_separator(c)).collect();
        s[i] = c;
        s.into_iter().collect()
    }

    #[test]
    fn round_trip_in_every_form() {
        for _ in 0..32 {
            let req = request();
            let text = req.to_string();
            assert_eq!(text.len(), CODE_SYMBOLS + 2 * GROUPS - 1, "{text}");
            assert_eq!(RequestCode::parse(&text).unwrap(), req);
            assert_eq!(RequestCode::parse(&req.code().compact()).unwrap(), req);
            assert_eq!(
                RequestCode::parse(&req.code().rows(4).join("\n")).unwrap(),
                req
            );
            let lower = text.to_lowercase();
            assert_eq!(RequestCode::parse(&lower).unwrap(), req);
            // Requests start with 0-3, answers with 4-7.
            assert!(matches!(text.as_bytes()[0], b'0'..=b'3'), "{text}");
            let ans = AnswerCode::new(&point(), &req);
            assert!(matches!(ans.to_string().as_bytes()[0], b'4'..=b'7'));
            assert_eq!(AnswerCode::parse(&ans.to_string()).unwrap(), ans);
            assert_eq!(ans.tag(), req.answer_tag());
        }
    }

    #[test]
    fn crockford_aliases_read_as_digits() {
        let req = request();
        let text = req.code().compact();
        let aliased: String = text
            .chars()
            .map(|c| match c {
                '1' => 'l',
                '0' => 'O',
                c => c,
            })
            .collect();
        assert_eq!(RequestCode::parse(&aliased).unwrap(), req);
    }

    #[test]
    fn every_single_typo_names_its_group() {
        let text = request().code().compact();
        for i in 0..CODE_SYMBOLS {
            let group = i / (GROUP_DATA + 1) + 1;
            let orig = text.as_bytes()[i];
            for &sub in ALPHABET.iter().filter(|&&a| a != orig) {
                let bad = with_symbol(&text, i, char::from(sub));
                assert_eq!(
                    RequestCode::parse(&bad).unwrap_err(),
                    RecoveryError::Checksum {
                        groups: vec![group]
                    },
                    "symbol {i} -> {}",
                    char::from(sub)
                );
            }
        }
    }

    #[test]
    fn swapped_symbols_in_a_group_are_caught() {
        let text = request().code().compact();
        let chars: Vec<char> = text.chars().collect();
        for g in 0..GROUPS {
            let start = g * (GROUP_DATA + 1);
            let end = (start + GROUP_DATA + 1).min(CODE_SYMBOLS);
            for i in start..end {
                for j in i + 1..end {
                    if chars[i] == chars[j] {
                        continue;
                    }
                    let mut s = chars.clone();
                    s.swap(i, j);
                    let s: String = s.into_iter().collect();
                    assert_eq!(
                        RequestCode::parse(&s).unwrap_err(),
                        RecoveryError::Checksum {
                            groups: vec![g + 1]
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn a_group_in_the_wrong_place_is_caught() {
        let req = request();
        let groups = req.code().groups();
        let mut swapped = groups.clone();
        swapped.swap(2, 3);
        let err = RequestCode::parse(&swapped.concat()).unwrap_err();
        assert_eq!(err, RecoveryError::Checksum { groups: vec![3, 4] });
        assert!(
            err.to_string().contains("groups 3, 4 do not check"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_extra_symbols_are_located() {
        let text = request().code().compact();
        // One symbol dropped in group 5.
        let mut short = text.clone();
        short.remove(4 * 10 + 3);
        let err = RequestCode::parse(&short).unwrap_err();
        assert!(
            matches!(
                err,
                RecoveryError::Length {
                    got: 118,
                    expected: 119,
                    first_bad_group: Some(5)
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("group 5"), "{err}");
        let mut long = text.clone();
        long.insert(2, 'A');
        assert!(matches!(
            RequestCode::parse(&long).unwrap_err(),
            RecoveryError::Length {
                got: 120,
                first_bad_group: Some(1),
                ..
            }
        ));
        assert_eq!(
            RequestCode::parse(" - \n").unwrap_err(),
            RecoveryError::Empty
        );
        // A huge input is counted, not stored.
        let huge = "A".repeat(1 << 20);
        assert!(matches!(
            RecoveryCode::parse(&huge).unwrap_err(),
            RecoveryError::Length { got, .. } if got == 1 << 20
        ));
    }

    #[test]
    fn bad_characters_are_named() {
        let text = request().to_string();
        let bad = with_symbol(&text, 25, 'U');
        let err = RequestCode::parse(&bad).unwrap_err();
        assert_eq!(err, RecoveryError::BadCharacter { ch: 'U', group: 3 });
        assert!(err.to_string().contains("group 3"), "{err}");
        assert!(matches!(
            RequestCode::parse(&with_symbol(&text, 0, 'é')).unwrap_err(),
            RecoveryError::BadCharacter { ch: 'é', group: 1 }
        ));
    }

    #[test]
    fn kinds_and_formats_are_checked() {
        let req = request();
        let ans = AnswerCode::new(&point(), &req);
        let err = AnswerCode::parse(&req.to_string()).unwrap_err();
        assert_eq!(
            err,
            RecoveryError::WrongKind {
                got: CodeKind::Request,
                expected: CodeKind::Answer
            }
        );
        assert_eq!(
            err.to_string(),
            "this is a request code; an answer code is expected here"
        );
        assert!(RequestCode::parse(&ans.to_string()).is_err());
        // A reserved format, with valid checks.
        let mut data = req.code().data_symbols();
        data[0] |= 0b11100;
        assert_eq!(
            RecoveryCode::parse(&encode(&data)).unwrap_err(),
            RecoveryError::UnknownFormat(7)
        );
    }

    /// Data symbols with correct check symbols.
    fn encode(data: &[u8]) -> String {
        data.chunks(GROUP_DATA)
            .enumerate()
            .flat_map(|(g, d)| {
                d.iter()
                    .copied()
                    .chain(core::iter::once(check_symbol(g, d)))
                    .collect::<Vec<_>>()
            })
            .map(|s| char::from(ALPHABET[usize::from(s)]))
            .collect()
    }

    #[test]
    fn an_x_off_the_curve_is_refused() {
        let req = request();
        let mut x = req.point().x.clone();
        // Walk x until it has no point; the checks are recomputed, so only the curve
        // equation can refuse it.
        loop {
            *x.last_mut().unwrap() = x.last().unwrap().wrapping_add(1);
            if EcPoint::from_compressed(CURVE, &x, false).is_err() {
                break;
            }
        }
        let forged = RecoveryCode {
            kind: CodeKind::Request,
            tag: 0,
            point: EcPoint::new(CURVE, x, vec![0; CURVE.width()]).unwrap(),
        };
        let text = encode(&forged.data_symbols());
        assert_eq!(
            RequestCode::parse(&text).unwrap_err(),
            RecoveryError::NotOnCurve
        );
        // x = p (all 521 bits set) is not a field element.
        let mut data = req.code().data_symbols();
        let skip = FORMAT_BITS + TAG_BITS + 1;
        for bit in skip..DATA_BITS {
            data[bit / 5] |= 0x10 >> (bit % 5);
        }
        assert_eq!(
            RecoveryCode::parse(&encode(&data)).unwrap_err(),
            RecoveryError::NotOnCurve
        );
    }

    #[test]
    fn splitting_typed_input() {
        let a = request();
        let b = request();
        let text = format!(
            "# a comment\n{}\n\n{}\n{}\n",
            a.code().rows(4).join("\n"),
            b,
            a.code().compact()
        );
        let parts = split_codes(&text);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0].0, 2);
        assert_eq!(RequestCode::parse(&parts[0].1).unwrap(), a);
        assert_eq!(RequestCode::parse(&parts[1].1).unwrap(), b);
        assert_eq!(RequestCode::parse(&parts[2].1).unwrap(), a);
        // A code short of a symbol does not take the next one's first row.
        let mut rows = a.code().rows(4);
        rows[1].remove(3);
        let text = format!("{}\n{}", rows.join("\n"), b.code().rows(4).join("\n"));
        let parts = split_codes(&text);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(matches!(
            RequestCode::parse(&parts[0].1).unwrap_err(),
            RecoveryError::Length { got: 118, .. }
        ));
        assert_eq!(RequestCode::parse(&parts[1].1).unwrap(), b);
        assert!(split_codes("\n  \n# only a comment\n").is_empty());
    }

    #[test]
    fn tags_follow_the_key_and_the_request() {
        let s = point();
        let jwk = Jwk::from_point(&s);
        let req = RequestCode::new(&point(), &s);
        assert!(req.names_key(&jwk));
        let digest = crate::b64::decode(&jwk.thumbprint(ThpHash::S256)).unwrap();
        assert_eq!(key_tag(&s), tag_of(&digest));
        assert_eq!(
            req.answer_tag(),
            tag_of(&Sha256::digest(req.point().to_compressed()))
        );
    }
}
