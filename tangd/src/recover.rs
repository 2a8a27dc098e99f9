//! `tangd recover`: answers offline recovery codes straight from the key directory, with
//! no network: the same key reading as `serve` (hidden keys included) and the same
//! exchange as `POST /rec/{kid}`.
//!
//! ```text
//!  request code(s) on stdin ─▶ key tag ─▶ keydir (active + hidden) ─▶ tang::rec ─▶ answer code(s)
//! ```

use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;

use latchkey_proto::curve::EcBackend;
use latchkey_proto::jwk::Jwk;
use latchkey_proto::recovery::{RequestCode, answer_from_keys, split_codes};

use crate::keydir;

/// What a run produced: answers for stdout, and one message per code that failed.
pub struct Outcome {
    pub answers: String,
    pub errors: Vec<String>,
    /// Key files that could not be read, for stderr.
    pub skipped: Vec<String>,
}

/// Answers every request code in `input` (see `latchkey_proto::recovery::split_codes`)
/// with the keys of `dir`, or with `kid` when given (then `input` must hold one code).
pub fn answer(
    dir: &Path,
    kid: Option<&str>,
    input: &str,
    backend: &dyn EcBackend,
) -> anyhow::Result<Outcome> {
    let scan = keydir::load(dir).with_context(|| format!("reading {}", dir.display()))?;
    let keys: Vec<Jwk> = scan.keys.into_iter().map(|k| k.jwk).collect();
    let codes = split_codes(input);
    anyhow::ensure!(!codes.is_empty(), "no request code on stdin");
    anyhow::ensure!(
        kid.is_none() || codes.len() == 1,
        "--kid names the key of one code; stdin holds {}",
        codes.len()
    );
    let server = dir.display().to_string();
    let mut out = Outcome {
        answers: String::new(),
        errors: Vec::new(),
        skipped: scan.skipped,
    };
    for (line, text) in codes {
        let answered = RequestCode::parse(&text)
            .and_then(|code| answer_from_keys(&code, &keys, kid, &server, backend));
        match answered {
            Ok(a) => {
                let _ = writeln!(out.answers, "# answer to the code on line {line}");
                for row in a.code().rows(4) {
                    let _ = writeln!(out.answers, "{row}");
                }
            }
            Err(e) => out.errors.push(format!("the code on line {line}: {e}")),
        }
    }
    Ok(out)
}
