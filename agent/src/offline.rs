//! Offline recovery at the console: when no Tang server can be reached, every binding of
//! the volume that needs one becomes recovery codes on the console, and the answers
//! come back through the same prompt as a passphrase.
//!
//! ```text
//!  prompt ─┬─ empty line ──────────▶ the codes as text, then each code as a QR code in turn
//!          ├─ a code-shaped line ──▶ answer code ─▶ Recovery (per binding) ─▶ passphrase ─▶ its keyslot
//!          └─ any other line ──────▶ passphrase ─▶ every keyslot
//! ```
//!
//! A line is read as an answer code when it holds only code characters (digits and
//! letters but `U`, any case), spaces and hyphens, and 100 to 140 of those characters
//! ([`recovery::looks_like_code`]); anything else is a passphrase. A code is 119 such
//! characters, so an answer with symbols lost or added is still taken as an answer and
//! its error names the group; a typed passphrase of that shape is not plausible.
//!
//! The codes are written to the console only, never to the kernel log. The blinding
//! scalars live in the [`Recovery`] plans, in the agent's locked memory, and are wiped
//! when the plans drop. Unblinding (`Y − e·S`) is the network path's own, constant time.

use latchkey_luks::ClevisBinding;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{self, Status};
use latchkey_proto::rand_core::CryptoRng;
use latchkey_proto::recovery::{
    self, AnswerCode, GROUPS, Recovery, RecoveryError, looks_like_code, qr_rows,
};
use latchkey_proto::secret::Secret;

/// Groups per row of a code in the list (three rows of four, 47 columns).
const LIST_GROUPS: usize = 4;
/// Groups per row of the code printed beside its QR code: 41 + 3 + 23 columns.
const BESIDE_QR_GROUPS: usize = 2;

/// One binding that needs Tang, and its codes.
struct Bound {
    /// `clevis token 0 (keyslot 1)`.
    what: String,
    keyslot: u32,
    /// The pin tree, e.g. `sss 2 of 3: tang http://a, ...`.
    pins: String,
    rec: Recovery,
}

/// What a typed line came to.
pub enum Typed {
    /// A binding's passphrase, recovered from the answers: it opens `keyslot`.
    Recovered {
        /// The keyslot the binding is for.
        keyslot: u32,
        /// The binding, for the log.
        what: String,
        /// Its passphrase.
        passphrase: Secret,
    },
    /// Lines to show; then ask again.
    Again(Vec<String>),
}

/// The volume's recovery codes and what has been answered.
pub struct Offline {
    bound: Vec<Bound>,
    /// Which code the next empty line draws as a QR code (`None`: the list first).
    next_qr: Option<usize>,
}

impl Offline {
    /// Fresh codes for every binding that needs a Tang server. A binding that cannot
    /// be read, or needs no Tang, has none (the race reports it already).
    pub fn new<R: CryptoRng + ?Sized>(bindings: &[ClevisBinding], rng: &mut R) -> Offline {
        Offline::of(
            bindings
                .iter()
                .filter_map(|b| Some((b.to_string(), b.keyslot, b.jwe.as_ref().ok()?))),
            rng,
        )
    }

    /// [`Offline::new`] for bindings given as (name, keyslot, JWE).
    fn of<'a, R: CryptoRng + ?Sized>(
        bindings: impl Iterator<Item = (String, u32, &'a Jwe)>,
        rng: &mut R,
    ) -> Offline {
        let bound = bindings
            .filter_map(|(what, keyslot, jwe)| {
                if !pin::needs_network(&jwe.header) {
                    return None;
                }
                let rec = Recovery::new(jwe, rng).ok()?;
                Some(Bound {
                    what,
                    keyslot,
                    pins: pin::describe(&jwe.header),
                    rec,
                })
            })
            .collect();
        Offline {
            bound,
            next_qr: None,
        }
    }

    /// Whether no binding has codes.
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// Whether `line` is meant as an answer code (while there are codes to answer).
    pub fn takes(&self, line: &Secret) -> bool {
        !self.is_empty() && looks_like_code(line.expose())
    }

    /// A one-line hint for a prompt shown while automatic recovery still runs.
    pub fn hint(&self) -> &'static str {
        "No network to Tang? An empty line at the prompt shows recovery codes."
    }

    /// The codes as text, every binding's, with what each still needs.
    pub fn list(&mut self, disk: &str) -> Vec<String> {
        self.next_qr = Some(0);
        let mut out = vec![
            format!("Recovery codes for disk {disk}."),
            "Read each to someone who can reach its Tang server, who answers with".into(),
            "latchkey recover answer --url URL, or tangd recover --keys DIR on the server.".into(),
        ];
        let several = self.bound.len() > 1;
        for b in &self.bound {
            if several {
                out.push(format!(
                    "{} ({}), any one binding opens the disk:",
                    b.what, b.pins
                ));
            }
            let of = b.rec.challenges().len();
            for c in b.rec.challenges() {
                out.push(c.heading(of));
                out.extend(
                    c.code
                        .code()
                        .rows(LIST_GROUPS)
                        .iter()
                        .map(|r| format!("  {r}")),
                );
            }
            out.push(b.rec.progress());
        }
        out.push("Type the answer codes at the prompt (or the passphrase).".into());
        out.push("An empty line draws the next code as a QR code.".into());
        out
    }

    /// The next code as a QR code with its text beside it: 23 lines (the key id on the
    /// second, for `--kid`) of at most 80 columns, so one code fits an 80×25 console with
    /// the prompt.
    pub fn next_qr(&mut self) -> Vec<String> {
        let all: Vec<(&Bound, usize)> = self
            .bound
            .iter()
            .flat_map(|b| (0..b.rec.challenges().len()).map(move |i| (b, i)))
            .collect();
        if all.is_empty() {
            return Vec::new();
        }
        let at = self.next_qr.unwrap_or(0) % all.len();
        self.next_qr = Some(at + 1);
        let (b, i) = all[at];
        let c = &b.rec.challenges()[i];
        let mut head = c.heading(b.rec.challenges().len());
        if self.bound.len() > 1 {
            head = format!("{}, {head}", b.what);
        }
        let text = c.code.code().rows(BESIDE_QR_GROUPS);
        let qr = qr_rows(c.code.code());
        let first = (qr.len().saturating_sub(text.len())) / 2;
        let mut out = vec![head, format!("key id {}", c.kid)];
        for (n, row) in qr.iter().enumerate() {
            match n.checked_sub(first).and_then(|k| text.get(k)) {
                Some(t) => out.push(format!("{row}   {t}")),
                None => out.push(row.clone()),
            }
        }
        out
    }

    /// Takes a line that [`Offline::takes`]: an answer code for one of the codes.
    pub fn answer(&mut self, line: &Secret) -> Typed {
        let text = String::from_utf8_lossy(line.expose());
        let ans = match AnswerCode::parse(&text) {
            Ok(a) => a,
            Err(e) => return Typed::Again(typo_lines(&e, &text)),
        };
        let mut refused = None;
        for b in &mut self.bound {
            let n = match b.rec.answer(&ans) {
                Ok(n) => n,
                Err(RecoveryError::NotForThisCode { code: None }) => continue,
                Err(e) => {
                    refused.get_or_insert(e);
                    continue;
                }
            };
            let of = b.rec.challenges().len();
            return match b.rec.status() {
                Status::Done(passphrase) => Typed::Recovered {
                    keyslot: b.keyslot,
                    what: b.what.clone(),
                    passphrase,
                },
                Status::Pending => Typed::Again(vec![format!(
                    "Code {n} of {of} answered. {}",
                    b.rec.progress()
                )]),
                Status::Failed(e) => Typed::Again(vec![format!("{}: {e}", b.what)]),
            };
        }
        let e = refused.unwrap_or(RecoveryError::NotForThisCode { code: None });
        Typed::Again(vec![format!("{e}; type it again or another answer")])
    }
}

/// The error, and for a typo the groups as they were read, the failing ones marked.
fn typo_lines(e: &RecoveryError, text: &str) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let bad: Vec<usize> = match e {
        RecoveryError::Checksum { groups } => groups.clone(),
        RecoveryError::Length {
            first_bad_group, ..
        } => first_bad_group.iter().copied().collect(),
        RecoveryError::BadCharacter { group, .. } => vec![*group],
        _ => return out,
    };
    out.push("Read as:".into());
    let groups = recovery::typed_groups(text);
    let shown: Vec<String> = groups
        .iter()
        .take(GROUPS + 2)
        .enumerate()
        .map(|(i, g)| {
            let mark = if bad.contains(&(i + 1)) { '!' } else { ' ' };
            format!("{:>2}{mark}{g:<11}", i + 1)
        })
        .collect();
    out.extend(
        shown
            .chunks(LIST_GROUPS)
            .map(|r| r.join(" ").trim_end().to_owned()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::curve::{Curve, EcBackend, RustCrypto, random_scalar};
    use latchkey_proto::jwk::Jwk;
    use latchkey_proto::recovery::{RequestCode, answer_from_keys};
    use latchkey_testkit::sample;

    use latchkey_sys::rng::os as rng;

    /// Bindings from sample JWE files, as LUKS2 tokens 0, 1, ... on keyslots 1, 2, ...
    fn offline(files: &[&str]) -> Offline {
        let jwes: Vec<Jwe> = files
            .iter()
            .map(|f| Jwe::parse(&std::fs::read_to_string(sample(f)).unwrap()).unwrap())
            .collect();
        let bindings = jwes.iter().enumerate().map(|(i, jwe)| {
            let what = format!("clevis token {i} (keyslot {})", i + 1);
            (what, i as u32 + 1, jwe)
        });
        Offline::of(bindings, &mut rng())
    }

    /// What `tangd recover` answers, from whichever sample key directory holds the key.
    fn tang_answer(code: &str) -> String {
        let code = RequestCode::parse(code).unwrap();
        for db in ["tang-db", "tang-db2", "tang-db3", "tang-db-rot"] {
            let dir = sample(&format!("tang-db/{db}"));
            let keys: Vec<Jwk> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| Jwk::parse(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
                .collect();
            if let Ok(a) = answer_from_keys(&code, &keys, None, db, &RustCrypto) {
                return a.code().rows(4).join("\n");
            }
        }
        panic!("no sample server holds the key of {code}");
    }

    /// The codes as listed: the three rows under each heading.
    fn listed_codes(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("code "))
            .map(|(i, _)| lines[i + 1..i + 4].join(" "))
            .collect()
    }

    fn again(t: Typed) -> Vec<String> {
        match t {
            Typed::Again(lines) => lines,
            Typed::Recovered { what, .. } => panic!("recovered {what} early"),
        }
    }

    fn line(text: &str) -> Secret {
        Secret::from_slice(text.as_bytes())
    }

    #[test]
    fn an_sss_quorum_opens_through_typed_answers_and_typos_cost_nothing() {
        let mut off = offline(&["jwe/sss-2of3-tang.jwe"]);
        let list = off.list("luks-root");
        for l in &list {
            println!("{l}");
            // Only the progress line, which names every server, may wrap.
            assert!(l.chars().count() <= 80 || l.contains("needed"), "{l}");
        }
        assert!(list.iter().any(|l| l == "2 of 3 answers needed; have 0; still needed: 2 of [code 1 (http://127.0.0.1:18081), code 2 (http://127.0.0.1:18082), code 3 (http://127.0.0.1:18083)]"), "{list:?}");
        let codes = listed_codes(&list);
        assert_eq!(codes.len(), 3);
        let answers: Vec<String> = codes.iter().map(|c| tang_answer(c)).collect();
        assert!(off.takes(&line(&answers[0])));
        assert!(!off.takes(&line("correct horse battery staple")));

        // A typo in group 4: named, shown back, marked; nothing is lost.
        let mut typo: Vec<char> = answers[0].chars().collect();
        let at = 3 * 12 + 2; // row 1, group 4 (each group is 11 columns and a space)
        typo[at] = if typo[at] == 'Z' { 'Y' } else { 'Z' };
        let typo: String = typo.into_iter().collect();
        let said = again(off.answer(&line(&typo)));
        assert_eq!(
            said[0],
            "group 4 does not check: a typo there? Read it again"
        );
        assert!(said.iter().any(|l| l.contains(" 4!")), "{said:?}");

        // An answer to another request: said so.
        let p = || {
            RustCrypto
                .mul_base(Curve::P521, &random_scalar(Curve::P521, &mut rng()))
                .unwrap()
        };
        let stranger = RequestCode::new(&p(), &p());
        let other = latchkey_proto::recovery::AnswerCode::new(&p(), &stranger);
        let said = again(off.answer(&line(&other.to_string())));
        assert!(
            said[0].starts_with("this answer is not for this code"),
            "{said:?}"
        );
        // A request code typed where the answer goes.
        let said = again(off.answer(&line(&codes[1])));
        assert!(said[0].contains("this is a request code"), "{said:?}");

        let said = again(off.answer(&line(&answers[2])));
        assert_eq!(
            said,
            [
                "Code 3 of 3 answered. 2 of 3 answers needed; have 1; still needed: 1 of [code 1 (http://127.0.0.1:18081), code 2 (http://127.0.0.1:18082)]"
            ]
        );
        match off.answer(&line(&answers[0].to_lowercase())) {
            Typed::Recovered {
                keyslot,
                what,
                passphrase,
            } => {
                assert_eq!(keyslot, 1);
                assert_eq!(what, "clevis token 0 (keyslot 1)");
                assert_eq!(passphrase.expose(), b"sss-2of3-tang-passphrase");
            }
            Typed::Again(l) => panic!("{l:?}"),
        }
    }

    #[test]
    fn each_qr_code_fits_an_80_by_25_console_with_its_prompt() {
        let mut off = offline(&["jwe/tang.jwe", "jwe/null.jwe", "jwe/sss-nested.jwe"]);
        // The null binding needs no code.
        assert_eq!(off.bound.len(), 2);
        let list = off.list("luks-root");
        assert!(
            list.iter()
                .any(|l| l.starts_with("clevis token 2 (keyslot 3) (sss"))
        );
        let first = off.next_qr();
        let mut seen = vec![first[0].clone()];
        assert_eq!(first.len(), 23, "{first:?}");
        assert!(first.iter().all(|l| l.chars().count() <= 80));
        // The code's text sits beside the QR code, in six rows of two groups.
        let text = off.bound[0].rec.challenges()[0].code.code().rows(2);
        assert_eq!(text.len(), 6);
        for t in &text {
            assert!(
                first.iter().any(|l| l.ends_with(&format!("█   {t}"))),
                "{t}"
            );
        }
        let n = 1 + off.bound[1].rec.challenges().len();
        for _ in 1..n {
            seen.push(off.next_qr()[0].clone());
        }
        assert_eq!(off.next_qr()[0], seen[0], "the QR codes come round again");
        assert!(seen[0].starts_with("clevis token 0 (keyslot 1), code 1 of 1"));
        assert!(seen[1].starts_with("clevis token 2 (keyslot 3), code 1 of"));
        let none = offline(&["jwe/null.jwe"]);
        assert!(none.is_empty());
        assert!(!none.takes(&line(&listed_codes(&list)[0])));
    }
}
