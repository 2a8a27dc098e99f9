//! latchkey-client: a small blocking HTTP/1.1 client for Tang servers, and the
//! driver that runs a decryption plan of `latchkey-proto` over the network (and, for tpm2
//! pins, through a caller-supplied TPM, [`latchkey_proto::pin::Unseal`]).
//!
//! ```text
//!   cli (latchkey) ──┐                      ┌── GET  {url}/adv[/thp]
//!   agent (initrd) ──┼─▶ latchkey-client ───┼── POST {url}/rec/{kid}   (one thread per request)
//!   luks check ──────┘        │             └── Tang servers
//!                             ▼
//!                      latchkey-proto (sans-IO: pin::Decryption, EncryptIo)
//! ```
//!
//! The HTTP client is our own, a few hundred lines over `std::net::TcpStream`, rather than
//! ureq: Tang needs only two request shapes, the reply must be framed by `Content-Length`
//! because tangd never closes its side, and the initrd agent must stay small. Owning the
//! socket also gives what a general client hides: a per-attempt timeout that covers the
//! whole reply (not just each read), cancellation of an in-flight request by shutting its
//! socket down, and no proxy taken from the environment (`http_proxy` is never read).
//! Names resolve through std (getaddrinfo) or, with [`Resolver::Stub`] (the agent's
//! choice), through the bounded stub resolver of [`dns`].
//! `https://` needs the `tls` feature (rustls), with certificates checked as [`Trust`] says:
//! the system CA store, a CA file, or a pinned certificate. The plain agent is built
//! without it (it costs about 0.9 MiB); latchkey-agent-tls has it.
//!
//! ```no_run
//! use std::time::Duration;
//! use latchkey_client::{Options, Retry};
//! use latchkey_proto::jwe::Jwe;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwe = Jwe::parse(&std::fs::read_to_string("slot1.jwe")?)?;
//! let opts = Options {
//!     timeout: Duration::from_secs(5),  // each request, connect to reply
//!     budget: Duration::from_secs(60),  // everything, retries included
//!     retry: Retry { retries: 10, ..Retry::default() },
//!     ..Options::default()
//! };
//! let passphrase = latchkey_client::decrypt(&jwe, &opts)?; // a zeroizing Secret
//! # drop(passphrase); Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod decrypt;
pub mod dns;
mod error;
pub mod http;
#[cfg(feature = "keyslot")]
mod keyslot;
mod options;
pub mod time;
mod tls;
mod transport;
pub mod trust;
pub mod url;

pub use decrypt::{
    MAX_JWE_INPUT, NetworkDown, NetworkGate, decrypt, decrypt_stdin, decrypt_until, decrypt_with,
    drive,
};
pub use error::Error;
#[cfg(feature = "keyslot")]
pub use keyslot::{KeyslotError, Recover, open_keyslot};
pub use options::{Cancel, Options, Resolver, Retry, UrlRewrite};
use transport::Request;
pub use trust::{Fingerprint, Trust, TrustError};

/// `GET url`; the body of a 200 reply.
pub fn get(url: &str, opts: &Options) -> Result<Vec<u8>, Error> {
    let url = opts.url(url);
    let req = Request {
        method: "GET",
        url: &url,
        body: None,
    };
    transport::send(&req, opts, &Cancel::new(), opts.deadline(), &mut |_| {})
}

/// `POST url` with `body` of `content_type`; the body of a 200 reply.
pub fn post(
    url: &str,
    content_type: &'static str,
    body: &[u8],
    opts: &Options,
) -> Result<Vec<u8>, Error> {
    let url = opts.url(url);
    let req = Request {
        method: "POST",
        url: &url,
        body: Some((content_type, body)),
    };
    transport::send(&req, opts, &Cancel::new(), opts.deadline(), &mut |_| {})
}

/// Fetches a Tang advertisement: `GET {url}/adv/` or `GET {url}/adv/{thp}`, as clevis does.
/// The body is returned unverified (verification is `latchkey_proto::jws`'s job).
pub fn fetch_adv(url: &str, thp: Option<&str>, opts: &Options) -> Result<Vec<u8>, Error> {
    get(&adv_url(url, thp), opts)
}

/// clevis appends to the configured URL without normalising slashes; tangd accepts repeats.
fn adv_url(url: &str, thp: Option<&str>) -> String {
    format!("{url}/adv/{}", thp.unwrap_or(""))
}
