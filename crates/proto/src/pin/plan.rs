//! Decryption as a plan the caller drives: every tang leaf is one request and every tpm2
//! leaf one unseal, all handed out at once; replies come back in any order; sss nodes
//! resolve at their threshold or as soon as it can no longer be met, as
//! `clevis-decrypt-sss` does.

use std::sync::Arc;

use rand_core::CryptoRng;

use super::tpm2::Tpm2Binding;
use super::{null, sss, tang, tpm2};
use crate::curve::{Curve, EcPoint, RustCrypto, random_scalar};
use crate::error::{Error, Result, unsupported};
use crate::jwe::Jwe;
use crate::secret::Secret;
use crate::sss::combine;
use crate::tang::Blinding;

/// Names one request of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u32);

/// Where each tang leaf's ephemeral e comes from, in leaf order: fresh from an RNG, or
/// replayed from a recovery state.
pub(crate) type Ephemerals<'a> = dyn FnMut(Curve) -> Result<Secret> + 'a;

/// One `/rec` POST to make.
///
/// The body costs a scalar multiplication and the reply another; both run on the thread that
/// first asks. A driver with spare cores builds bodies concurrently and calls
/// [`RecRequest::prepare`] while the request is in flight, so that [`Decryption::supply`]
/// finds the unblinding ready.
#[derive(Clone)]
pub struct RecRequest {
    /// Pass back to [`Decryption::supply`].
    pub id: RequestId,
    /// The JWE's `clevis.tang.url` (for messages).
    pub url: String,
    /// The JWE's `kid`: the thumbprint of the server's exchange key.
    pub kid: String,
    /// `url + "/rec/" + kid`: where to POST.
    pub rec_url: String,
    pub(crate) blinding: Arc<Blinding>,
}

impl RecRequest {
    /// The body (a JWK, Content-Type `application/jwk+json`): `X = C + e·G`.
    pub fn body(&self) -> Result<Vec<u8>> {
        self.blinding.body(&RustCrypto)
    }

    /// Computes the unblinding term `e·S` now (it does not depend on the reply).
    pub fn prepare(&self) {
        self.blinding.prepare(&RustCrypto);
    }
}

impl core::fmt::Debug for RecRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecRequest")
            .field("id", &self.id)
            .field("rec_url", &self.rec_url)
            .finish_non_exhaustive()
    }
}

/// One TPM unseal to perform: the tpm2 pin's step, which needs the TPM, not the network.
#[derive(Clone)]
pub struct UnsealRequest {
    /// Pass back to [`Decryption::supply_unseal`].
    pub id: RequestId,
    /// What the JWE header says about the sealed key.
    pub binding: Arc<Tpm2Binding>,
}

impl core::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("id", &self.id)
            .field("binding", &self.binding.describe())
            .finish_non_exhaustive()
    }
}

/// A node of the plan's tree as it stands: `resolved` is `None` while pending, else
/// whether it succeeded.
pub(crate) enum Outline {
    Fixed,
    Leaf {
        id: RequestId,
        resolved: Option<bool>,
    },
    /// A tpm2 leaf: resolved by the TPM, never by a recovery code.
    Unseal {
        resolved: Option<bool>,
    },
    Sss {
        t: usize,
        have: usize,
        resolved: Option<bool>,
        children: Vec<Outline>,
    },
}

/// Where a plan stands.
pub enum Status {
    /// Waiting for more replies.
    Pending,
    /// The plaintext.
    Done(Secret),
    /// It can no longer succeed; the error says why, per URL.
    Failed(Error),
}

enum State {
    Pending,
    Done(Secret),
    Failed(Error),
}

enum Kind {
    /// Resolved when built (null pins, nodes that failed to parse).
    Fixed,
    Tang(Box<tang::Leaf>),
    Tpm2(Box<tpm2::Leaf>),
    Sss(Box<SssNode>),
}

struct SssNode {
    jwe: Jwe,
    p: Vec<u8>,
    t: usize,
    children: usize,
    shares: Vec<Secret>,
    failed: usize,
    reasons: Vec<String>,
}

struct Node {
    parent: Option<usize>,
    kind: Kind,
    state: State,
    /// Already handed to the parent (a node resolves once, however it is reached).
    reported: bool,
}

/// The decryption of one clevis JWE.
pub struct Decryption {
    nodes: Vec<Node>,
    /// Node index of each request.
    leaves: Vec<usize>,
    handed_out: bool,
    unseals_handed_out: bool,
}

/// Adds a failed child's reason to its sss node's list. TPM bindings that failed for the
/// same reason (no TPM, typically) share one entry, so the reason is said once:
/// `tpm2 (no PCR policy), tpm2 (sha256:7): no TPM device: ...`.
fn add_reason(reasons: &mut Vec<String>, e: &Error) {
    if let Error::Tpm { binding, reason } = e {
        let tail = format!(": {reason}");
        if let Some(r) = reasons
            .iter_mut()
            .find(|r| r.starts_with("tpm2 (") && r.ends_with(&tail))
        {
            r.insert_str(r.len() - tail.len(), &format!(", {binding}"));
            return;
        }
    }
    reasons.push(e.to_string());
}

impl Decryption {
    /// Validates the tree and draws the blinding of every tang leaf. Errors in the top-level JWE, and trees
    /// that cannot succeed from the start (e.g. an unknown pin without enough siblings),
    /// are returned here.
    pub fn new<R: CryptoRng + ?Sized>(jwe: &Jwe, rng: &mut R) -> Result<Decryption> {
        Decryption::with_ephemerals(jwe, &mut |crv| Ok(random_scalar(crv, rng)))
    }

    /// [`Decryption::new`] with each tang leaf's e taken from `ephemeral`, in leaf order
    /// (tree order, depth first), which is the same for the same JWE.
    pub(crate) fn with_ephemerals(jwe: &Jwe, ephemeral: &mut Ephemerals<'_>) -> Result<Decryption> {
        let mut plan = Decryption {
            nodes: Vec::new(),
            leaves: Vec::new(),
            handed_out: false,
            unseals_handed_out: false,
        };
        plan.build(jwe, None, ephemeral)?;
        if let State::Failed(e) = &plan.nodes[0].state {
            return Err(e.clone());
        }
        Ok(plan)
    }

    fn push(&mut self, parent: Option<usize>, kind: Kind, state: State) -> usize {
        self.nodes.push(Node {
            parent,
            kind,
            state,
            reported: false,
        });
        self.nodes.len() - 1
    }

    /// Adds the node for `jwe`; errors only for the root.
    fn build(
        &mut self,
        jwe: &Jwe,
        parent: Option<usize>,
        ephemeral: &mut Ephemerals<'_>,
    ) -> Result<usize> {
        let built = self.build_node(jwe, parent, ephemeral);
        match (built, parent) {
            (Ok(idx), _) => Ok(idx),
            (Err(e), None) => Err(e),
            (Err(e), Some(_)) => Ok(self.push(parent, Kind::Fixed, State::Failed(e))),
        }
    }

    fn build_node(
        &mut self,
        jwe: &Jwe,
        parent: Option<usize>,
        ephemeral: &mut Ephemerals<'_>,
    ) -> Result<usize> {
        match jwe.pin()? {
            "null" => {
                let state = match null::decrypt(jwe) {
                    Ok(s) => State::Done(s),
                    Err(e) => State::Failed(e),
                };
                Ok(self.push(parent, Kind::Fixed, state))
            }
            "tang" => {
                let leaf = tang::leaf(jwe, ephemeral)?;
                let idx = self.push(parent, Kind::Tang(Box::new(leaf)), State::Pending);
                self.leaves.push(idx);
                Ok(idx)
            }
            "tpm2" => {
                let leaf = tpm2::leaf(jwe)?;
                let idx = self.push(parent, Kind::Tpm2(Box::new(leaf)), State::Pending);
                self.leaves.push(idx);
                Ok(idx)
            }
            "tpm2plus" => Err(unsupported(
                "JWE",
                "clevis.pin",
                "tpm2plus (an authorized policy of clevis-pin-tpm2)",
            )),
            "sss" => {
                let node = sss::parse(jwe)?;
                if node.children.len() < node.t {
                    return Err(Error::Threshold {
                        t: node.t,
                        got: 0,
                        total: node.children.len(),
                        reasons: vec!["fewer shares than the threshold".into()],
                    });
                }
                let idx = self.push(
                    parent,
                    Kind::Sss(Box::new(SssNode {
                        jwe: jwe.clone(),
                        p: node.p,
                        t: node.t,
                        children: node.children.len(),
                        shares: Vec::new(),
                        failed: 0,
                        reasons: Vec::new(),
                    })),
                    State::Pending,
                );
                for text in &node.children {
                    let child = match Jwe::parse(text) {
                        Ok(child) => self.build(&child, Some(idx), ephemeral)?,
                        Err(e) => self.push(Some(idx), Kind::Fixed, State::Failed(e)),
                    };
                    if !matches!(self.nodes[child].state, State::Pending) {
                        self.child_resolved(child);
                    }
                }
                Ok(idx)
            }
            other => Err(Error::UnknownPin(other.into())),
        }
    }

    /// The requests to make, each returned once (later calls return nothing). Leaves under
    /// an already resolved node are left out.
    pub fn requests(&mut self) -> Vec<RecRequest> {
        if std::mem::replace(&mut self.handed_out, true) {
            return Vec::new();
        }
        self.live_leaves()
            .filter_map(|(id, kind)| match kind {
                Kind::Tang(leaf) => Some(RecRequest {
                    id,
                    url: leaf.url.clone(),
                    kid: leaf.kid.clone(),
                    rec_url: leaf.rec_url.clone(),
                    blinding: Arc::clone(&leaf.blinding),
                }),
                _ => None,
            })
            .collect()
    }

    /// The TPM unseals to perform, each returned once, like [`Decryption::requests`].
    pub fn unseal_requests(&mut self) -> Vec<UnsealRequest> {
        if std::mem::replace(&mut self.unseals_handed_out, true) {
            return Vec::new();
        }
        self.live_leaves()
            .filter_map(|(id, kind)| match kind {
                Kind::Tpm2(leaf) => Some(UnsealRequest {
                    id,
                    binding: Arc::clone(&leaf.binding),
                }),
                _ => None,
            })
            .collect()
    }

    /// The leaves under no resolved node, each with the id its request carries.
    fn live_leaves(&self) -> impl Iterator<Item = (RequestId, &Kind)> {
        self.leaves
            .iter()
            .enumerate()
            .filter(|&(_, &idx)| self.live(idx))
            .map(|(i, &idx)| (RequestId(i as u32), &self.nodes[idx].kind))
    }

    /// Hands in what the TPM unsealed for an unseal request, or why it could not. Like
    /// [`Decryption::supply`], late, unknown or repeated answers are ignored.
    pub fn supply_unseal(&mut self, id: RequestId, unsealed: Result<Secret, String>) {
        let Some(&idx) = self.leaves.get(id.0 as usize) else {
            return;
        };
        if !self.live(idx) {
            return;
        }
        let Kind::Tpm2(leaf) = &self.nodes[idx].kind else {
            return;
        };
        let binding = leaf.binding.describe();
        self.nodes[idx].state =
            match unsealed.and_then(|s| leaf.finish(&s).map_err(|e| e.to_string())) {
                Ok(plaintext) => State::Done(plaintext),
                Err(reason) => State::Failed(Error::Tpm { binding, reason }),
            };
        self.child_resolved(idx);
    }

    /// Whether the node and all its ancestors are still pending.
    fn live(&self, mut idx: usize) -> bool {
        loop {
            if !matches!(self.nodes[idx].state, State::Pending) {
                return false;
            }
            match self.nodes[idx].parent {
                Some(p) => idx = p,
                None => return true,
            }
        }
    }

    /// Hands in the reply body for a request, or the transport error. Replies for unknown
    /// or already answered requests, or after the plan resolved, are ignored.
    pub fn supply(&mut self, id: RequestId, reply: Result<Vec<u8>, String>) {
        let Some(&idx) = self.leaves.get(id.0 as usize) else {
            return;
        };
        if !self.live(idx) {
            return;
        }
        let Kind::Tang(leaf) = &self.nodes[idx].kind else {
            return;
        };
        let url = leaf.url.clone();
        let result = match reply {
            Err(reason) => Err(reason),
            Ok(body) => leaf.finish(&body).map_err(|e| e.to_string()),
        };
        self.nodes[idx].state = match result {
            Ok(plaintext) => State::Done(plaintext),
            Err(reason) => State::Failed(Error::Server { url, reason }),
        };
        self.child_resolved(idx);
    }

    /// Tries Y as the reply to a request: on success the leaf resolves as with
    /// [`Decryption::supply`]; on failure (Y is not for this request: the JWE's tag check
    /// fails) the error comes back and nothing changes, so another answer can follow.
    pub(crate) fn try_point(&mut self, id: RequestId, y: &EcPoint) -> Result<()> {
        let Some(&idx) = self.leaves.get(id.0 as usize) else {
            return Err(Error::DecryptFailed);
        };
        if !self.live(idx) {
            return Err(Error::DecryptFailed);
        }
        let Kind::Tang(leaf) = &self.nodes[idx].kind else {
            return Err(Error::DecryptFailed);
        };
        let plaintext = leaf.finish_point(y)?;
        self.nodes[idx].state = State::Done(plaintext);
        self.child_resolved(idx);
        Ok(())
    }

    /// Every tang leaf's request, in leaf order, resolved or not (for a recovery state).
    pub(crate) fn all_requests(&self) -> Vec<RecRequest> {
        let mut out = Vec::new();
        for (i, &idx) in self.leaves.iter().enumerate() {
            if let Kind::Tang(leaf) = &self.nodes[idx].kind {
                out.push(RecRequest {
                    id: RequestId(i as u32),
                    url: leaf.url.clone(),
                    kid: leaf.kid.clone(),
                    rec_url: leaf.rec_url.clone(),
                    blinding: Arc::clone(&leaf.blinding),
                });
            }
        }
        out
    }

    /// Whether the request is still wanted (its leaf and every ancestor pending).
    pub(crate) fn wants(&self, id: RequestId) -> bool {
        self.leaves
            .get(id.0 as usize)
            .is_some_and(|&idx| self.live(idx))
    }

    /// The tree as it stands, for progress messages.
    pub(crate) fn outline(&self) -> Outline {
        self.outline_of(0)
    }

    fn outline_of(&self, idx: usize) -> Outline {
        let node = &self.nodes[idx];
        let resolved = match node.state {
            State::Pending => None,
            State::Done(_) => Some(true),
            State::Failed(_) => Some(false),
        };
        match &node.kind {
            Kind::Fixed => Outline::Fixed,
            Kind::Tang(_) => Outline::Leaf {
                id: RequestId(self.leaves.iter().position(|&l| l == idx).unwrap_or(0) as u32),
                resolved,
            },
            Kind::Tpm2(_) => Outline::Unseal { resolved },
            Kind::Sss(sss) => Outline::Sss {
                t: sss.t,
                have: sss.shares.len(),
                resolved,
                children: (0..self.nodes.len())
                    .filter(|&c| self.nodes[c].parent == Some(idx))
                    .map(|c| self.outline_of(c))
                    .collect(),
            },
        }
    }

    /// Propagates a resolved node into its sss parent, and further up as parents resolve.
    fn child_resolved(&mut self, mut child: usize) {
        while let Some(parent) = self.nodes[child].parent {
            if self.nodes[child].reported || !matches!(self.nodes[parent].state, State::Pending) {
                return;
            }
            self.nodes[child].reported = true;
            let outcome = match std::mem::replace(&mut self.nodes[child].state, State::Pending) {
                State::Done(share) => {
                    // The share moves up; the child stays marked as resolved.
                    self.nodes[child].state = State::Done(Secret::new(Vec::new()));
                    Ok(share)
                }
                State::Failed(e) => {
                    self.nodes[child].state = State::Failed(e.clone());
                    Err(e)
                }
                State::Pending => return,
            };
            let Kind::Sss(node) = &mut self.nodes[parent].kind else {
                return;
            };
            let SssNode {
                jwe,
                p,
                t,
                children,
                shares,
                failed,
                reasons,
            } = &mut **node;
            let new_state = match outcome {
                Ok(share) if share.len() != 2 * p.len() => {
                    // clevis aborts the whole sss decryption on a share of the wrong size.
                    Some(State::Failed(Error::ShareLength {
                        got: share.len(),
                        expected: 2 * p.len(),
                    }))
                }
                Ok(share) => {
                    shares.push(share);
                    (shares.len() == *t).then(|| {
                        match combine(p, shares).and_then(|cek| jwe.decrypt(&cek)) {
                            Ok(plaintext) => State::Done(plaintext),
                            Err(e) => State::Failed(e),
                        }
                    })
                }
                Err(e) => {
                    *failed += 1;
                    add_reason(reasons, &e);
                    (*children - *failed < *t).then(|| {
                        State::Failed(Error::Threshold {
                            t: *t,
                            got: shares.len(),
                            total: *children,
                            reasons: reasons.clone(),
                        })
                    })
                }
            };
            match new_state {
                Some(state) => {
                    if let Kind::Sss(node) = &mut self.nodes[parent].kind {
                        node.shares.clear();
                    }
                    self.nodes[parent].state = state;
                    child = parent;
                }
                None => return,
            }
        }
    }

    /// Where the plan stands.
    pub fn status(&self) -> Status {
        match &self.nodes[0].state {
            State::Pending => Status::Pending,
            State::Done(s) => Status::Done(s.clone()),
            State::Failed(e) => Status::Failed(e.clone()),
        }
    }

    /// Requests whose replies are still awaited (for progress messages).
    pub fn outstanding(&self) -> usize {
        self.leaves.iter().filter(|&&idx| self.live(idx)).count()
    }
}
