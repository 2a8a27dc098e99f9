//! JSON as jose writes it: sorted keys, compact, `/` unescaped, UTF-8 raw.
//!
//! serde_json's default map is a `BTreeMap`, so `Value` serializes with sorted keys; the
//! workspace must never enable `preserve_order`.

use serde_json::{Map, Value};

use crate::error::{Error, Result, invalid, missing};

/// Sorted compact serialization.
pub(crate) fn to_sorted(value: &Value) -> String {
    // A Value always serializes; the only failure mode (non-string keys) cannot occur.
    serde_json::to_string(value).unwrap_or_default()
}

pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json {
        what: what.into(),
        reason: e.to_string(),
    })
}

pub(crate) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| expected(what, "document", "a JSON object", v))
}

/// What kind of JSON value `v` is, for "expected …, found …" messages (the
/// value itself is not quoted: it may be long, or secret).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{what} has an invalid {field}: expected {want}, found {kind of v}`.
pub(crate) fn expected(what: &str, field: &str, want: &str, v: &Value) -> Error {
    invalid(what, field, format!("expected {want}, found {}", kind(v)))
}

/// Follows a dotted path; `None` if any step is absent.
pub(crate) fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

pub(crate) fn req<'a>(v: &'a Value, what: &str, path: &str) -> Result<&'a Value> {
    get(v, path).ok_or_else(|| missing(what, path))
}

pub(crate) fn req_str<'a>(v: &'a Value, what: &str, path: &str) -> Result<&'a str> {
    let v = req(v, what, path)?;
    v.as_str()
        .ok_or_else(|| expected(what, path, "a string", v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorted_compact_unescaped() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":"h/é","y":[]}}"#).unwrap();
        assert_eq!(super::to_sorted(&v), r#"{"a":{"y":[],"z":"h/é"},"b":1}"#);
    }
}
