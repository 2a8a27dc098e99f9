//! Tang's dispatch table, as hand-written matchers equivalent to its regexes.
//!
//! tangd applies POSIX EREs to the whole request target, query string included:
//!
//! ```text
//! ^/+adv/*$                    GET   default advertisement
//! ^/+adv/+([0-9A-Za-z_-]+)$    GET   advertisement signed also by key {thp}
//! ^/+rec/+([0-9A-Za-z_-]+)$    POST  recovery with exchange key {kid}
//! ```
//!
//! With an endpoint (tang 15's `-e`), each pattern becomes `^/ENDPOINT/+adv…`:
//! exactly one slash, the endpoint (leading slashes dropped) taken literally,
//! then the usual tail.

/// What a request target names, before the method is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/adv` or `/adv/`.
    Adv,
    /// `/adv/{thp}`.
    AdvThp(&'a str),
    /// `/rec/{kid}`.
    Rec(&'a str),
}

impl Target<'_> {
    /// The only method each route answers; any other gets 405.
    pub fn method(&self) -> &'static str {
        match self {
            Target::Adv | Target::AdvThp(_) => "GET",
            Target::Rec(_) => "POST",
        }
    }
}

/// Matches request targets against tang's patterns under an optional prefix.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// `"/" + endpoint` with the endpoint's leading slashes removed, or empty.
    prefix: String,
}

impl Router {
    pub fn new(endpoint: Option<&str>) -> Router {
        let prefix = match endpoint {
            Some(e) => format!("/{}", e.trim_start_matches('/')),
            None => String::new(),
        };
        Router { prefix }
    }

    /// `None` means no pattern matched (404).
    pub fn route<'a>(&self, url: &'a str) -> Option<Target<'a>> {
        let rest = url.strip_prefix(self.prefix.as_str())?;
        let rest = strip_slashes(rest, 1)?;
        if let Some(tail) = rest.strip_prefix("adv") {
            if tail.bytes().all(|b| b == b'/') {
                return Some(Target::Adv);
            }
            return name_after_slashes(tail).map(Target::AdvThp);
        }
        if let Some(tail) = rest.strip_prefix("rec") {
            return name_after_slashes(tail).map(Target::Rec);
        }
        None
    }
}

/// Drops at least `min` leading slashes, or fails.
fn strip_slashes(s: &str, min: usize) -> Option<&str> {
    let rest = s.trim_start_matches('/');
    (s.len() - rest.len() >= min).then_some(rest)
}

/// `/+([0-9A-Za-z_-]+)$`
fn name_after_slashes(tail: &str) -> Option<&str> {
    let name = strip_slashes(tail, 1)?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tang_patterns() {
        let r = Router::new(None);
        assert_eq!(r.route("/adv"), Some(Target::Adv));
        assert_eq!(r.route("/adv/"), Some(Target::Adv));
        assert_eq!(r.route("//adv//"), Some(Target::Adv));
        assert_eq!(r.route("/adv/abc_-9"), Some(Target::AdvThp("abc_-9")));
        assert_eq!(r.route("///adv///abc"), Some(Target::AdvThp("abc")));
        assert_eq!(r.route("/rec/Hk_g"), Some(Target::Rec("Hk_g")));
        assert_eq!(r.route("//rec//x"), Some(Target::Rec("x")));
        for miss in [
            "",
            "/",
            "adv",
            "/adv?x=1",
            "/adv/a?x=1",
            "/adv/a/",
            "/adv/a.b",
            "/advx",
            "/rec",
            "/rec/",
            "/rec/a/",
            "/rec/a b",
            "/foo",
            "/adv/a/b",
            "http://h/adv",
        ] {
            assert_eq!(r.route(miss), None, "{miss:?}");
        }
    }

    #[test]
    fn endpoint_prefix() {
        for ep in ["tang", "/tang", "//tang"] {
            let r = Router::new(Some(ep));
            assert_eq!(r.route("/tang/adv"), Some(Target::Adv));
            assert_eq!(r.route("/tang//adv/"), Some(Target::Adv));
            assert_eq!(r.route("/tang/rec/k"), Some(Target::Rec("k")));
            assert_eq!(r.route("/tang/adv/t"), Some(Target::AdvThp("t")));
            assert_eq!(r.route("/adv"), None);
            assert_eq!(r.route("//tang/adv"), None);
            assert_eq!(r.route("/tangadv"), None);
        }
        let r = Router::new(Some("a/b"));
        assert_eq!(r.route("/a/b/adv"), Some(Target::Adv));
    }
}
