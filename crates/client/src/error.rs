//! The one error type of this crate. Every variant names the URL, or the input or output, it is about.

use std::fmt;
use std::time::Duration;

/// What went wrong talking to a Tang server or driving a decryption.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be used.
    BadUrl {
        /// The URL as given.
        url: String,
        /// Which part is wrong.
        reason: String,
    },
    /// An `https://` URL, but this build has no TLS (the `tls` feature).
    TlsUnsupported {
        /// The URL as given.
        url: String,
    },
    /// The host name did not resolve to any address.
    Resolve {
        /// The URL as given.
        url: String,
        /// The resolver's answer.
        source: std::io::Error,
    },
    /// The server actively refused the connection (nothing listens there).
    Refused {
        /// The URL as given.
        url: String,
    },
    /// Connecting failed for another reason (unreachable network, reset, ...).
    Connect {
        /// The URL as given.
        url: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No complete reply within the per-request timeout.
    Timeout {
        /// The URL as given.
        url: String,
        /// The timeout that expired.
        after: Duration,
        /// What was under way: "connecting", "sending the request", "waiting for the reply".
        during: &'static str,
    },
    /// The connection broke while sending or receiving.
    Io {
        /// The URL as given.
        url: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS handshake or certificate failure, or trust that cannot be loaded
    /// (an unreadable CA file): `reason` says which.
    Tls {
        /// The URL as given.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server replied with a status other than 200.
    Status {
        /// The URL as given.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The reply is not well-formed HTTP, or exceeds a limit of [`crate::http`].
    BadReply {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: crate::http::Invalid,
    },
    /// The network this request needs could not be brought up (the caller's gate, see
    /// [`crate::decrypt_until`]).
    Network {
        /// The URL as given.
        url: String,
        /// Why not, as the gate's owner tells it.
        cause: crate::NetworkDown,
    },
    /// The request was abandoned because the answer was no longer needed.
    Cancelled {
        /// The URL as given.
        url: String,
    },
    /// The JWE could not be read (an I/O error, too long, not text, nothing there).
    Input {
        /// What went wrong.
        reason: String,
    },
    /// The plaintext could not be written.
    Output(std::io::Error),
    /// The JWE or its clevis pin tree is unusable (bad field, unknown pin, failed tag).
    Jwe(latchkey_proto::error::Error),
    /// The pin tree could not be satisfied: `reason` from the plan, then one line per URL.
    Failed {
        /// The plan's explanation.
        reason: String,
        /// Each Tang URL and what happened to its request.
        outcomes: Vec<(String, String)>,
    },
    /// The overall deadline passed with requests still outstanding.
    Deadline {
        /// How far away the deadline was when the call started.
        after: Duration,
        /// Each Tang URL and what happened to its request.
        outcomes: Vec<(String, String)>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Error::TlsUnsupported { url } => {
                write!(
                    f,
                    "{url}: https:// needs TLS, and this program was built without it \
                     (the agent with TLS is latchkey-agent-tls)"
                )
            }
            Error::Resolve { url, source } => write!(f, "{url}: cannot resolve host: {source}"),
            Error::Refused { url } => write!(f, "{url}: connection refused"),
            Error::Connect { url, source } => write!(f, "{url}: cannot connect: {source}"),
            Error::Timeout { url, after, during } => {
                write!(f, "{url}: timeout after {} {during}", secs(*after))
            }
            Error::Io { url, source } => write!(f, "{url}: connection failed: {source}"),
            Error::Tls { url, reason } => write!(f, "{url}: TLS: {reason}"),
            Error::Status { url, status } => write!(f, "{url}: HTTP status {status}"),
            Error::BadReply { url, reason } => write!(f, "{url}: bad reply: {reason}"),
            Error::Cancelled { url } => write!(f, "{url}: cancelled"),
            Error::Network { url, cause } => write!(f, "{url}: network: {cause}"),
            Error::Input { reason } => write!(f, "{reason}"),
            Error::Output(e) => write!(f, "writing the plaintext: {e}"),
            Error::Jwe(e) => write!(f, "{e}"),
            Error::Failed { reason, outcomes } => {
                write!(f, "{reason}")?;
                // The plan's reason already says what went wrong with the servers it names.
                let rest: Vec<_> = outcomes
                    .iter()
                    .filter(|(url, _)| {
                        !reason.contains(&format!("{url}: "))
                            && !reason.contains(&format!("{url}, "))
                    })
                    .cloned()
                    .collect();
                list(f, &rest)
            }
            Error::Deadline { after, outcomes } => {
                write!(f, "no result within the deadline of {}", secs(*after))?;
                list(f, outcomes)
            }
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, outcomes: &[(String, String)]) -> fmt::Result {
    for (url, what) in outcomes {
        write!(f, "\n  {url}: {what}")?;
    }
    Ok(())
}

/// "1.5s", "2s": short and exact enough for a person.
/// Seconds, to the nearest millisecond: a deadline measured a few microseconds
/// after it was set still reads as the whole number it was given as.
fn secs(d: Duration) -> String {
    let ms = (d.as_micros() + 500) / 1000;
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Each message already carries its cause's text, so no `source` chain repeats it.
impl std::error::Error for Error {}

impl From<latchkey_proto::error::Error> for Error {
    fn from(e: latchkey_proto::error::Error) -> Self {
        Error::Jwe(e)
    }
}

impl Error {
    /// The message without its leading URL when that URL starts with `base` (for reports
    /// that already name the server), otherwise the whole message.
    pub fn detail(&self, base: &str) -> String {
        let full = self.to_string();
        match full.split_once(": ") {
            Some((url, rest)) if url.starts_with(base) && url != base => {
                format!("{}: {rest}", &url[base.len()..])
            }
            Some((url, rest)) if url == base => rest.to_owned(),
            _ => full,
        }
    }

    /// Whether another attempt may succeed: the server was not reached or dropped the
    /// connection. A timeout is not retried: it already used up the request's time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Refused { .. } | Error::Connect { .. } | Error::Io { .. }
        ) || matches!(self, Error::Status { status, .. } if *status == 502 || *status == 503 || *status == 504)
    }
}
