//! The Tang servers of a policy: each one's advertisement, fetched at once
//! (one thread per server, at most `MAX_SERVERS`) and verified.

use std::time::Duration;

use latchkey_client::Options;
use latchkey_client::time::Backoff;
use latchkey_enroll::policy::Server;
use latchkey_proto::jws;

/// One request may take 5 s, with one retry: a server that does not answer
/// that fast is not healthy enough to unlock a boot.
pub fn options() -> Options {
    let mut o = crate::decrypt::tang_options(Duration::from_secs(5), Duration::from_secs(15), 1);
    o.retry.backoff = Backoff::new(Duration::from_millis(250), 2, Duration::from_secs(1));
    o
}

/// Fetches and verifies the advertisement of `url`.
pub fn fetch(url: &str, opts: &Options) -> Result<Server, String> {
    let body = latchkey_client::fetch_adv(url, None, opts).map_err(|e| e.to_string())?;
    let adv = jws::verify_advertisement(&body)
        .map_err(|e| format!("its advertisement does not verify: {e}"))?;
    Ok(Server {
        url: url.to_owned(),
        adv,
    })
}

/// Every server's advertisement, in the order of `urls`.
pub fn fetch_all(urls: &[String], opts: &Options) -> Vec<Result<Server, String>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = urls
            .iter()
            .map(|u| scope.spawn(move || fetch(u, opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("fetching the advertisement failed".into()))
            })
            .collect()
    })
}
