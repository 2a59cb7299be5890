//! A JSON object's known columns read straight into [`RawValue`]s, without building a
//! `serde_json::Value` (an ordered map of every field) first. The result is exactly what the
//! `Value` route yields for an object: numbers as `Int` when they fit i64, else `UInt`, else
//! `Float`; a repeated key keeps its first position and its last value; arrays and objects are
//! `Unsupported`. Anything else (not an object, invalid JSON) is left to that route, which
//! words the error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::decode::{column_index, RawValue, KNOWN_COLUMNS};

/// The known columns of one JSON object, in first-seen order.
pub(crate) struct Fields(pub Vec<(&'static str, RawValue)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields: Vec<(&'static str, RawValue)> = Vec::with_capacity(8);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match column_index(&key).map(|i| KNOWN_COLUMNS[i]) {
                Some(name) => {
                    let Raw(value) = map.next_value()?;
                    match fields.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => fields.push((name, value)),
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Fields(fields))
    }
}

/// One field's value.
struct Raw(RawValue);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(RawValue::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(RawValue::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw(match i64::try_from(v) {
            Ok(i) => RawValue::Int(i),
            Err(_) => RawValue::UInt(v),
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(RawValue::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(RawValue::Str(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(RawValue::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(RawValue::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw(RawValue::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw(RawValue::Unsupported("array".into())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw(RawValue::Unsupported("object".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::Fields;
    use crate::decode::{RawValue, KNOWN_COLUMNS};
    use crate::read::json_raw;

    /// The `Value` route's known columns, for comparison.
    fn via_value(text: &str) -> Vec<(String, RawValue)> {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| KNOWN_COLUMNS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json_raw(v)))
            .collect()
    }

    #[test]
    fn direct_fields_equal_the_value_route() {
        for text in [
            r#"{"match_id":"m1","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":-2.5}"#,
            r#"{"payoff_i":18446744073709551615,"payoff_j":-9223372036854775808,"ts":9223372036854775807}"#,
            r#"{"game":"g","game":"h","extra":{"x":[1,2,{"y":null}]},"policy_i":"a\u00e9\n"}"#,
            r#"{"ef1":true,"agreement":null,"context":[1,2],"source":{"a":1},"seed":0}"#,
            r#"{"payoff_i":1e-300,"payoff_j":1.0,"retract":1,"diff":-1,"propensity":"0.5"}"#,
            r#"{}"#,
            r#"  {"policy_i" : "x" , "unknown":"\"q\"" }  "#,
        ] {
            let direct: Vec<(String, RawValue)> = serde_json::from_str::<Fields>(text)
                .unwrap()
                .0
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(direct, via_value(text), "{text}");
        }
        for text in ["[1,2]", "5", "\"s\"", "{\"a\":1", "{\"a\":1} x"] {
            assert!(serde_json::from_str::<Fields>(text).is_err(), "{text}");
        }
    }
}
