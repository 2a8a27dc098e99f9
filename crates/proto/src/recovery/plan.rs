//! The node's side: a decryption plan whose requests leave as codes and whose replies come
//! back as answer codes, typed in any order.
//!
//! It is the network's [`Decryption`] plan with the transport swapped: the same tree, the
//! same blinding of every tang leaf, the same sss resolution. Only two things differ: the
//! ephemeral scalars can be kept in a [`State`] and replayed in another process, and an
//! answer that does not open its JWE leaves the request open (a typo costs nothing).

use rand_core::CryptoRng;

use super::code::{RequestCode, answer_tag};
use super::state::{self, State};
use super::{AnswerCode, RecoveryError};
use crate::curve::{Curve, RustCrypto, random_scalar};
use crate::error::Error;
use crate::jwe::Jwe;
use crate::pin::plan::Outline;
use crate::pin::{Decryption, RequestId, Status};
use crate::secret::Secret;

const FEWER: &str = "it has fewer e lines than the binding has Tang pins";

/// One code to carry to a Tang server.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// 1-based, as shown to the person ("code 2 of 3").
    pub number: usize,
    /// The JWE's `clevis.tang.url`: which server can answer.
    pub url: String,
    /// The full kid (for `--kid` when the code's key tag cannot be resolved).
    pub kid: String,
    /// The request code.
    pub code: RequestCode,
    id: RequestId,
    answer_tag: u16,
}

impl Challenge {
    /// How a code is introduced to the person: `code 1 of 3: http://tang`.
    pub fn heading(&self, of: usize) -> String {
        format!("code {} of {of}: {}", self.number, self.url)
    }
}

/// The recovery of one clevis JWE through codes.
///
/// ```no_run
/// # use latchkey_proto::{jwe::Jwe, pin::Status, recovery::{AnswerCode, Recovery}};
/// # fn run(jwe: &Jwe, rng: &mut impl latchkey_proto::rand_core::CryptoRng,
/// #        typed: impl Iterator<Item = String>) -> Result<(), latchkey_proto::recovery::RecoveryError> {
/// let mut rec = Recovery::new(jwe, rng)?;
/// for c in rec.challenges() {
///     println!("code {} for {}: {}", c.number, c.url, c.code);
/// }
/// for line in typed {
///     match AnswerCode::parse(&line).and_then(|a| rec.answer(&a)) {
///         Ok(n) => println!("code {n} answered; {}", rec.progress()),
///         Err(e) => println!("{e}"), // nothing is lost: type it again
///     }
///     if let Status::Done(passphrase) = rec.status() { /* passphrase.expose() */ break; }
/// }
/// # Ok(()) }
/// ```
pub struct Recovery {
    plan: Decryption,
    digest: [u8; 32],
    challenges: Vec<Challenge>,
}

impl Recovery {
    /// Draws a fresh blinding for every tang leaf of `jwe` and makes their codes.
    pub fn new<R: CryptoRng + ?Sized>(jwe: &Jwe, rng: &mut R) -> Result<Recovery, RecoveryError> {
        let plan = Decryption::with_ephemerals(jwe, &mut |crv| Ok(random_scalar(crv, rng)))?;
        Recovery::with_plan(plan, jwe)
    }

    /// The recovery `state` was taken from ([`Recovery::state`]), in another process: same
    /// JWE, same scalars, so the same codes.
    pub fn resume(jwe: &Jwe, state: &State) -> Result<Recovery, RecoveryError> {
        if !state.is_for(jwe) {
            return Err(RecoveryError::StateMismatch(
                "its JWE digest differs".into(),
            ));
        }
        let mut next = state.ephemerals.iter();
        let mut short = false;
        let mut replay = |crv: Curve| -> crate::Result<Secret> {
            // A leaf under sss that fails to build is one failed share, not an error of
            // the whole tree, so running short is noted here as well.
            let e = next.next().ok_or_else(|| {
                short = true;
                Error::InvalidScalar(FEWER.into())
            })?;
            if e.len() != crv.width() {
                return Err(Error::InvalidScalar(format!(
                    "an e line of the state file is not a {} scalar",
                    crv.name()
                )));
            }
            Ok(e.clone())
        };
        let plan = Decryption::with_ephemerals(jwe, &mut replay)
            .map_err(|e| RecoveryError::StateMismatch(e.to_string()))?;
        if short {
            return Err(RecoveryError::StateMismatch(FEWER.into()));
        }
        if next.next().is_some() {
            return Err(RecoveryError::StateMismatch(
                "it has more e lines than the binding has Tang pins".into(),
            ));
        }
        Recovery::with_plan(plan, jwe)
    }

    fn with_plan(plan: Decryption, jwe: &Jwe) -> Result<Recovery, RecoveryError> {
        if !matches!(plan.status(), Status::Pending) {
            return Err(RecoveryError::NothingToRecover);
        }
        let mut challenges = Vec::new();
        for req in plan.all_requests() {
            if !plan.wants(req.id) {
                continue;
            }
            // A bad e (from a state file) shows here, as an invalid scalar.
            let x = req
                .blinding
                .request_point(&RustCrypto)
                .map_err(|e| RecoveryError::StateMismatch(e.to_string()))?;
            challenges.push(Challenge {
                number: challenges.len() + 1,
                url: req.url.clone(),
                kid: req.kid.clone(),
                code: RequestCode::new(&x, req.blinding.server()),
                id: req.id,
                answer_tag: answer_tag(&x),
            });
        }
        Ok(Recovery {
            plan,
            digest: state::digest(jwe),
            challenges,
        })
    }

    /// The codes, one per tang leaf that can still help.
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// What a later process needs to take over ([`Recovery::resume`]): a secret.
    pub fn state(&self) -> State {
        State {
            digest: self.digest,
            ephemerals: self
                .plan
                .all_requests()
                .iter()
                .map(|r| r.blinding.ephemeral().clone())
                .collect(),
        }
    }

    /// Takes an answer: finds the code it answers by its tag and opens that code's JWE
    /// with it. Returns the code's number. On error nothing changes: the same or another
    /// answer can follow.
    pub fn answer(&mut self, answer: &AnswerCode) -> Result<usize, RecoveryError> {
        let mut refused = None;
        let mut not_needed = None;
        for c in self
            .challenges
            .iter()
            .filter(|c| c.answer_tag == answer.tag())
        {
            if !self.plan.wants(c.id) {
                not_needed = Some(c.number);
                continue;
            }
            match self.plan.try_point(c.id, answer.point()) {
                Ok(()) => return Ok(c.number),
                Err(_) => refused = refused.or(Some(c.number)),
            }
        }
        match (refused, not_needed) {
            (None, Some(n)) => Err(RecoveryError::NotNeeded(n)),
            (code, _) => Err(RecoveryError::NotForThisCode { code }),
        }
    }

    /// Where the recovery stands; `Done` holds the plaintext.
    pub fn status(&self) -> Status {
        self.plan.status()
    }

    /// What is still needed, for the person: `2 of 3 answers needed; have 1; still
    /// needed: 1 of [code 2 (http://b), code 3 (http://c)]`.
    pub fn progress(&self) -> String {
        let root = self.plan.outline();
        match &root {
            Outline::Leaf { resolved: None, .. } => {
                format!("1 answer needed: {}", self.need(&root))
            }
            Outline::Sss {
                t,
                have,
                resolved: None,
                children,
            } => {
                let what = if children.iter().all(|c| matches!(c, Outline::Leaf { .. })) {
                    "answers"
                } else {
                    "shares"
                };
                format!(
                    "{t} of {} {what} needed; have {have}; still needed: {}",
                    children.len(),
                    self.need(&root)
                )
            }
            _ => match self.status() {
                Status::Done(_) => "done".into(),
                Status::Failed(e) => format!("cannot succeed: {e}"),
                Status::Pending => String::new(),
            },
        }
    }

    /// What a pending node still needs.
    fn need(&self, node: &Outline) -> String {
        match node {
            Outline::Leaf { id, .. } => match self.challenges.iter().find(|c| c.id == *id) {
                Some(c) => format!("code {} ({})", c.number, c.url),
                None => "a code not issued".into(),
            },
            Outline::Sss {
                t, have, children, ..
            } => {
                let open: Vec<String> = children
                    .iter()
                    .filter(|c| pending(c))
                    .map(|c| self.need(c))
                    .collect();
                let k = t.saturating_sub(*have);
                if open.len() == 1 && k == 1 {
                    open[0].clone()
                } else if k == open.len() {
                    format!("all of [{}]", open.join(", "))
                } else {
                    format!("{k} of [{}]", open.join(", "))
                }
            }
            Outline::Unseal { .. } => {
                "the TPM's share (no code: it needs this machine's TPM)".into()
            }
            Outline::Fixed => String::new(),
        }
    }
}

fn pending(o: &Outline) -> bool {
    match o {
        Outline::Fixed => false,
        Outline::Leaf { resolved, .. }
        | Outline::Unseal { resolved }
        | Outline::Sss { resolved, .. } => resolved.is_none(),
    }
}
