//! The TPM 2.0 commands clevis's tpm2 pin needs, as bytes (TPM 2.0 Part 3), and their
//! responses read back with every size checked. No I/O here.

use zeroize::Zeroize;

use crate::alg::{Hash, PcrSelection};
use crate::error::{Error, Result};
use crate::marshal::{Reader, Writer};
use crate::rc::ResponseCode;
use crate::template::{PrimaryKey, sealed};

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;

/// TPM_RH_OWNER: the storage hierarchy clevis uses (`-C o`).
const RH_OWNER: u32 = 0x4000_0001;
const RH_NULL: u32 = 0x4000_0007;
/// TPM_RS_PW: the password session (here always with the empty password).
const RS_PW: u32 = 0x4000_0009;
/// TPMA_SESSION continueSession.
const CONTINUE_SESSION: u8 = 0x01;
const SE_POLICY: u8 = 0x01;
const ALG_NULL: u16 = 0x0010;
const SU_CLEAR: u16 = 0x0000;
const CAP_PCRS: u32 = 0x0000_0005;

/// TPM2B maxima (the reference implementation's sizes, generous where TPMs differ).
const MAX_DIGEST: usize = 64;
const MAX_NAME: usize = 2 + MAX_DIGEST;
const MAX_PUBLIC: usize = 1024;
const MAX_PRIVATE: usize = 1024;
/// MAX_SYM_DATA: the most a sealed data object holds.
pub(crate) const MAX_SEALED: usize = 128;

/// Command codes, with the names used in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cc {
    Startup,
    CreatePrimary,
    Create,
    Load,
    Unseal,
    StartAuthSession,
    PolicyPcr,
    PcrRead,
    GetCapability,
    FlushContext,
}

impl Cc {
    fn code(self) -> u32 {
        match self {
            Cc::Startup => 0x144,
            Cc::CreatePrimary => 0x131,
            Cc::Create => 0x153,
            Cc::Load => 0x157,
            Cc::Unseal => 0x15E,
            Cc::StartAuthSession => 0x176,
            Cc::PolicyPcr => 0x17F,
            Cc::PcrRead => 0x17E,
            Cc::GetCapability => 0x17A,
            Cc::FlushContext => 0x165,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cc::Startup => "TPM2_Startup",
            Cc::CreatePrimary => "TPM2_CreatePrimary",
            Cc::Create => "TPM2_Create",
            Cc::Load => "TPM2_Load",
            Cc::Unseal => "TPM2_Unseal",
            Cc::StartAuthSession => "TPM2_StartAuthSession",
            Cc::PolicyPcr => "TPM2_PolicyPCR",
            Cc::PcrRead => "TPM2_PCR_Read",
            Cc::GetCapability => "TPM2_GetCapability",
            Cc::FlushContext => "TPM2_FlushContext",
        }
    }
}

/// How a command's one handle that needs authorization is authorized.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    /// The empty password (the owner hierarchy, the primary, an object without policy).
    Password,
    /// A policy session.
    Policy(u32),
}

/// A command being built: header, handles, authorization, parameters.
struct Command {
    cc: Cc,
    handles: Vec<u32>,
    auth: Option<Auth>,
    params: Writer,
}

impl Command {
    fn new(cc: Cc) -> Command {
        Command {
            cc,
            handles: Vec::new(),
            auth: None,
            params: Writer::with_capacity(),
        }
    }

    fn handle(mut self, h: u32) -> Command {
        self.handles.push(h);
        self
    }

    fn auth(mut self, a: Auth) -> Command {
        self.auth = Some(a);
        self
    }

    fn params(mut self, f: impl FnOnce(&mut Writer)) -> Command {
        f(&mut self.params);
        self
    }

    fn bytes(mut self) -> Vec<u8> {
        let mut w = Writer::with_capacity();
        let tag = if self.auth.is_some() {
            ST_SESSIONS
        } else {
            ST_NO_SESSIONS
        };
        w.u16(tag).u32(0).u32(self.cc.code());
        for h in &self.handles {
            w.u32(*h);
        }
        if let Some(a) = self.auth {
            let session = match a {
                Auth::Password => RS_PW,
                Auth::Policy(h) => h,
            };
            // TPMS_AUTH_COMMAND: handle, empty nonce, attributes, empty hmac/password.
            w.u32(9)
                .u32(session)
                .tpm2b(&[])
                .u8(CONTINUE_SESSION)
                .tpm2b(&[]);
        }
        w.bytes(&self.params.0);
        // The parameters may hold the data being sealed.
        self.params.0.zeroize();
        let size = (w.0.len() as u32).to_be_bytes();
        w.0[2..6].copy_from_slice(&size);
        w.0
    }
}

/// A response's outcome: the TPM's refusal is kept apart from a malformed response.
pub(crate) enum Reply<'a> {
    Ok {
        handles: Vec<u32>,
        params: Reader<'a>,
    },
    Refused(ResponseCode),
}

/// Splits a response (already size-checked by the transport) into handles and
/// parameters; the response sessions after the parameters are not needed.
pub(crate) fn reply(resp: &[u8], cc: Cc, handles: usize) -> Result<Reply<'_>> {
    let what = cc.name();
    let mut r = Reader::new(resp, what);
    let tag = r.u16()?;
    let _size = r.u32()?;
    let rc = r.u32()?;
    if rc != 0 {
        return Ok(Reply::Refused(ResponseCode(rc)));
    }
    let hs = (0..handles).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
    let params = match tag {
        ST_NO_SESSIONS => r.take(r.remaining())?,
        ST_SESSIONS => {
            let n = r.u32()? as usize;
            r.take(n)?
        }
        other => {
            return Err(Error::Malformed {
                what,
                reason: format!("tag {other:#06x}"),
            });
        }
    };
    Ok(Reply::Ok {
        handles: hs,
        params: Reader::new(params, what),
    })
}

pub(crate) fn startup() -> Vec<u8> {
    Command::new(Cc::Startup)
        .params(|w| {
            w.u16(SU_CLEAR);
        })
        .bytes()
}

/// `tpm2_createprimary -C o -g HASH -G KEY`.
pub(crate) fn create_primary(key: PrimaryKey, hash: Hash) -> Vec<u8> {
    Command::new(Cc::CreatePrimary)
        .handle(RH_OWNER)
        .auth(Auth::Password)
        .params(|w| {
            // inSensitive: empty userAuth, empty data.
            w.sized(|w| {
                w.tpm2b(&[]).tpm2b(&[]);
            });
            w.sized(|w| key.template(hash, w));
            // outsideInfo, creationPCR.
            w.tpm2b(&[]).u32(0);
        })
        .bytes()
}

/// The primary's handle, its public area (TPM2B_PUBLIC) and its name.
pub(crate) struct Primary {
    pub handle: u32,
    pub public: Vec<u8>,
    pub name: Vec<u8>,
}

pub(crate) fn create_primary_reply(handles: &[u32], mut p: Reader<'_>) -> Result<Primary> {
    let public = p.tpm2b_raw(MAX_PUBLIC, "outPublic")?.to_vec();
    p.tpm2b(MAX_PUBLIC, "creationData")?;
    p.tpm2b(MAX_DIGEST, "creationHash")?;
    // creationTicket: tag, hierarchy, digest.
    p.u16()?;
    p.u32()?;
    p.tpm2b(MAX_DIGEST, "creationTicket")?;
    let name = p.tpm2b(MAX_NAME, "name")?.to_vec();
    p.finish()?;
    Ok(Primary {
        handle: handles[0],
        public,
        name,
    })
}

/// `tpm2_create -C parent` of a sealed data object holding `data`.
pub(crate) fn create_sealed(
    parent: u32,
    hash: Hash,
    policy: Option<&[u8]>,
    data: &[u8],
) -> Vec<u8> {
    Command::new(Cc::Create)
        .handle(parent)
        .auth(Auth::Password)
        .params(|w| {
            w.sized(|w| {
                w.tpm2b(&[]).tpm2b(data);
            });
            w.sized(|w| sealed(hash, policy, w));
            w.tpm2b(&[]).u32(0);
        })
        .bytes()
}

/// TPM2B_PRIVATE and TPM2B_PUBLIC of the new object, size prefixes included: clevis's
/// `jwk_priv` and `jwk_pub`.
pub(crate) fn create_sealed_reply(mut p: Reader<'_>) -> Result<(Vec<u8>, Vec<u8>)> {
    let private = p.tpm2b_raw(MAX_PRIVATE, "outPrivate")?.to_vec();
    let public = p.tpm2b_raw(MAX_PUBLIC, "outPublic")?.to_vec();
    Ok((private, public))
}

/// Checks that `blob` is exactly one TPM2B of at most `max` bytes (clevis's `jwk_pub`,
/// `jwk_priv`), so it can go into a command as is.
pub(crate) fn check_tpm2b(blob: &[u8], max: usize, field: &'static str) -> Result<()> {
    let mut r = Reader::new(blob, field);
    r.tpm2b(max, field)
        .and_then(|_| r.finish())
        .map_err(|e| match e {
            Error::Malformed { reason, .. } => Error::Config(format!("{field}: {reason}")),
            other => other,
        })
}

/// `tpm2_load -C parent -u jwk.pub -r jwk.priv`.
pub(crate) fn load(parent: u32, private: &[u8], public: &[u8]) -> Result<Vec<u8>> {
    check_tpm2b(private, MAX_PRIVATE, "jwk_priv")?;
    check_tpm2b(public, MAX_PUBLIC, "jwk_pub")?;
    Ok(Command::new(Cc::Load)
        .handle(parent)
        .auth(Auth::Password)
        .params(|w| {
            w.bytes(private).bytes(public);
        })
        .bytes())
}

/// An unsalted, unbound policy session whose digest uses `hash`.
pub(crate) fn start_policy_session(hash: Hash, nonce: &[u8]) -> Vec<u8> {
    Command::new(Cc::StartAuthSession)
        .handle(RH_NULL)
        .handle(RH_NULL)
        .params(|w| {
            // nonceCaller, encryptedSalt, sessionType, symmetric (none), authHash.
            w.tpm2b(nonce)
                .tpm2b(&[])
                .u8(SE_POLICY)
                .u16(ALG_NULL)
                .u16(hash.id());
        })
        .bytes()
}

/// TPM2_PolicyPCR with an empty pcrDigest: the TPM extends the session with the PCRs'
/// current values; whether they are right shows at unseal.
pub(crate) fn policy_pcr(session: u32, pcrs: &PcrSelection) -> Vec<u8> {
    Command::new(Cc::PolicyPcr)
        .handle(session)
        .params(|w| {
            w.tpm2b(&[]);
            pcrs.marshal(w);
        })
        .bytes()
}

pub(crate) fn unseal(item: u32, auth: Auth) -> Vec<u8> {
    Command::new(Cc::Unseal).handle(item).auth(auth).bytes()
}

pub(crate) fn unseal_reply(mut p: Reader<'_>) -> Result<&[u8]> {
    let data = p.tpm2b(MAX_SEALED, "outData")?;
    p.finish()?;
    Ok(data)
}

pub(crate) fn pcr_read(pcrs: &PcrSelection) -> Vec<u8> {
    Command::new(Cc::PcrRead)
        .params(|w| pcrs.marshal(w))
        .bytes()
}

/// The PCRs the TPM returned (a TPM returns at most eight per call) and their values in
/// ascending order, each `bank.size()` bytes.
pub(crate) fn pcr_read_reply(mut p: Reader<'_>, bank: Hash) -> Result<(u32, Vec<u8>)> {
    p.u32()?; // pcrUpdateCounter
    let mut bits = 0u32;
    for _ in 0..p.u32()?.min(16) {
        let alg = p.u16()?;
        let n = p.u8()? as usize;
        let sel = p.take(n)?;
        if alg == bank.id() {
            for (i, b) in sel.iter().take(4).enumerate() {
                bits |= (*b as u32) << (8 * i);
            }
        }
    }
    let count = p.u32()? as usize;
    if count != bits.count_ones() as usize {
        return Err(Error::Malformed {
            what: Cc::PcrRead.name(),
            reason: format!("{count} values for {} PCRs", bits.count_ones()),
        });
    }
    let mut values = Vec::with_capacity(count * bank.size());
    for _ in 0..count {
        let v = p.tpm2b(MAX_DIGEST, "pcrValues")?;
        if v.len() != bank.size() {
            return Err(Error::Malformed {
                what: Cc::PcrRead.name(),
                reason: format!("a {}-byte {} value", v.len(), bank.name()),
            });
        }
        values.extend_from_slice(v);
    }
    Ok((bits, values))
}

/// TPM2_GetCapability(TPM_CAP_PCRS): the banks and which PCRs each has.
pub(crate) fn get_pcr_banks() -> Vec<u8> {
    Command::new(Cc::GetCapability)
        .params(|w| {
            w.u32(CAP_PCRS).u32(0).u32(1);
        })
        .bytes()
}

/// Each bank's algorithm id and how many PCRs it has allocated, in the TPM's order.
pub(crate) fn get_pcr_banks_reply(mut p: Reader<'_>) -> Result<Vec<(u16, u32)>> {
    p.u8()?; // moreData
    if p.u32()? != CAP_PCRS {
        return Err(Error::Malformed {
            what: Cc::GetCapability.name(),
            reason: "not the PCR capability".into(),
        });
    }
    let mut banks = Vec::new();
    for _ in 0..p.u32()?.min(16) {
        let alg = p.u16()?;
        let n = p.u8()? as usize;
        let allocated = p.take(n)?.iter().map(|b| b.count_ones()).sum();
        banks.push((alg, allocated));
    }
    Ok(banks)
}

pub(crate) fn flush(handle: u32) -> Vec<u8> {
    Command::new(Cc::FlushContext)
        .params(|w| {
            w.u32(handle);
        })
        .bytes()
}

/// Reads `data` as the response of every command (the fuzz target's entry): whatever the
/// bytes, an error or a value, never a panic or an outsized allocation.
pub fn parse_any_response(data: &[u8]) {
    let all = [
        (Cc::Startup, 0),
        (Cc::CreatePrimary, 1),
        (Cc::Create, 0),
        (Cc::Load, 1),
        (Cc::Unseal, 0),
        (Cc::StartAuthSession, 1),
        (Cc::PolicyPcr, 0),
        (Cc::PcrRead, 0),
        (Cc::GetCapability, 0),
        (Cc::FlushContext, 0),
    ];
    for (cc, handles) in all {
        let Ok(Reply::Ok { handles: h, params }) = reply(data, cc, handles) else {
            continue;
        };
        let _ = match cc {
            Cc::CreatePrimary => create_primary_reply(&h, params).map(|_| ()),
            Cc::Create => create_sealed_reply(params).map(|_| ()),
            Cc::Unseal => unseal_reply(params).map(|_| ()),
            Cc::PcrRead => pcr_read_reply(params, Hash::Sha256).map(|_| ()),
            Cc::GetCapability => get_pcr_banks_reply(params).map(|_| ()),
            _ => Ok(()),
        };
    }
    let _ = check_tpm2b(data, MAX_PUBLIC, "jwk_pub");
}

#[cfg(test)]
mod tests {
    use super::*;

    use latchkey_testkit::hex;

    /// The command tpm2-tools sends for `tpm2_createprimary -C o -g sha256 -G ecc`.
    #[test]
    fn create_primary_bytes() {
        let c = create_primary(PrimaryKey::Ecc(3), Hash::Sha256);
        assert_eq!(
            hex(&c),
            concat!(
                "80020000004300000131", // header
                "40000001",             // TPM_RH_OWNER
                "00000009",
                "40000009",
                "0000",
                "01",
                "0000", // password session
                "0004",
                "0000",
                "0000", // inSensitive
                "001a",
                "0023",
                "000b",
                "00030072",
                "0000", // ECC, SHA256, attributes, policy
                "0006",
                "0080",
                "0043",
                "0010",
                "0003",
                "0010",
                "0000",
                "0000",
                "0000",
                "00000000", // outsideInfo, creationPCR
            )
        );
    }

    #[test]
    fn replies_are_bounded() {
        // A refusal.
        let refused = hex_bytes("80010000000a0000099d");
        let r = reply(&refused, Cc::Unseal, 0).unwrap();
        assert!(matches!(r, Reply::Refused(ResponseCode(0x99d))));
        // Unseal: a parameter size past the end.
        let bad = hex_bytes("80020000001000000000000000ff0001");
        assert!(reply(&bad, Cc::Unseal, 0).is_err());
        // An unsealed blob larger than a sealed object can hold.
        let mut big = hex_bytes("8001000000000000000000ff");
        big.extend(std::iter::repeat_n(0u8, 255));
        let Reply::Ok { params, .. } = reply(&big, Cc::Unseal, 0).unwrap() else {
            panic!()
        };
        assert!(unseal_reply(params).is_err());
        assert!(check_tpm2b(&hex_bytes("000301"), 10, "jwk_pub").is_err());
        assert!(check_tpm2b(&hex_bytes("0001010a"), 10, "jwk_pub").is_err());
        check_tpm2b(&hex_bytes("000101"), 10, "jwk_pub").unwrap();
    }

    /// Every prefix and byte flip of real responses parses to an error or a value.
    #[test]
    fn mangled_responses_do_not_panic() {
        let seeds = [
            hex_bytes("80020000001b000000000000000c000a0123456789abcdef0123000001000000"),
            hex_bytes("8001000000220000000000000000000000010004030080000000000001001400"),
            hex_bytes("80010000001b0000000000000000000000010004030000000000000001000b03"),
        ];
        for seed in seeds {
            for n in 0..=seed.len() {
                parse_any_response(&seed[..n]);
            }
            for i in 0..seed.len() {
                for bit in 0..8 {
                    let mut m = seed.clone();
                    m[i] ^= 1 << bit;
                    parse_any_response(&m);
                }
            }
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
