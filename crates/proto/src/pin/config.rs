//! A pin's JSON configuration with its objects' key order kept: `clevis encrypt sss` makes
//! one share per entry of `pins` in the order the operator wrote them, and so do we.
//! (serde_json's `Value` sorts keys, which the rest of this crate relies on for output.)

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A JSON value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Config {
    Object(Vec<(String, Config)>),
    Array(Vec<Config>),
    Scalar(Value),
}

impl Config {
    /// Parses CONFIG as given on the command line.
    pub(crate) fn parse(text: &str) -> Result<Config> {
        serde_json::from_str(text).map_err(|e| Error::Json {
            what: "CONFIG".into(),
            reason: e.to_string(),
        })
    }

    /// From an already parsed value (objects then come in sorted order).
    pub(crate) fn from_value(v: &Value) -> Config {
        match v {
            Value::Object(m) => Config::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Config::from_value(v)))
                    .collect(),
            ),
            Value::Array(a) => Config::Array(a.iter().map(Config::from_value).collect()),
            other => Config::Scalar(other.clone()),
        }
    }

    /// The plain value (sorted objects), for pins that do not care about order.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Config::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
            Config::Array(items) => Value::Array(items.iter().map(Config::to_value).collect()),
            Config::Scalar(v) => v.clone(),
        }
    }

    /// The entries of an object, in the order written; `None` for other values.
    pub(crate) fn entries(&self) -> Option<&[(String, Config)]> {
        match self {
            Config::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// The last value given for `key` (as serde_json keeps the last of duplicate keys).
    pub(crate) fn get(&self, key: &str) -> Option<&Config> {
        self.entries()?
            .iter()
            .rev()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Config, D::Error> {
        d.deserialize_any(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = Config;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Config, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Config>()? {
            entries.push((k, v));
        }
        Ok(Config::Object(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Config, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Config>()? {
            items.push(v);
        }
        Ok(Config::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(Value::String(v.into())))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(Value::String(v)))
    }

    fn visit_unit<E>(self) -> std::result::Result<Config, E> {
        Ok(Config::Scalar(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_round_trips() {
        let text = r#"{"t":2,"pins":{"tang":[{"url":"b"},{"url":"a"}],"null":{},"sss":{"t":1,"pins":{"null":[{}]}}},"x":[1,-2,1.5,null,true,"s"]}"#;
        let c = Config::parse(text).unwrap();
        let pins = c.get("pins").unwrap().entries().unwrap();
        let names: Vec<&str> = pins.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["tang", "null", "sss"]);
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(c.to_value(), v);
        assert_eq!(Config::from_value(&v).to_value(), v);
        assert!(matches!(Config::parse("{"), Err(Error::Json { .. })));
    }
}
