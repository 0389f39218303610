//! Whole numbers as JSON spells them. JSON has one number type, and JSON Schema's `integer`
//! is any number without a fractional part, so `10.0` is as much an integer as `10`. Clients
//! that only have floats (JavaScript, jq, many generators) send such values; serde alone
//! would refuse them.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// For `#[serde(deserialize_with = "whole::option")]` on an `Option<u32>` or `Option<u64>`:
/// `null` or absent is `None`; an integer, or a float with no fractional part, in the type's
/// range, is the value; anything else is an error naming what was expected.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    d.deserialize_option(OptionVisitor(PhantomData))
}

struct OptionVisitor<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for OptionVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(WholeVisitor(PhantomData)).map(Some)
    }
}

struct WholeVisitor<T>(PhantomData<T>);

impl<T: TryFrom<u64>> WholeVisitor<T> {
    fn fit<E: de::Error>(n: u64) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
    }
}

impl<'de, T: TryFrom<u64>> Visitor<'de> for WholeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        u64::try_from(n)
            .map_err(|_| E::custom(format!("{n} is out of range")))
            .and_then(Self::fit)
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<T, E> {
        // 2^64 is the first float past u64::MAX; every whole float below it converts exactly.
        if x.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&x) {
            Self::fit(x as u64)
        } else {
            Err(E::invalid_type(de::Unexpected::Float(x), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::option")]
        a: Option<u32>,
        #[serde(default, deserialize_with = "super::option")]
        b: Option<u64>,
    }

    fn parse(json: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_floats_are_integers() {
        let t = parse(r#"{"a": 359268.0, "b": 1e3}"#).unwrap();
        assert_eq!((t.a, t.b), (Some(359_268), Some(1000)));
        let t = parse(r#"{"a": 7, "b": null}"#).unwrap();
        assert_eq!((t.a, t.b), (Some(7), None));
        assert!(parse("{}").unwrap().a.is_none());
        assert_eq!(parse(r#"{"a": -0.0}"#).unwrap().a, Some(0));
    }

    #[test]
    fn fractions_negatives_strings_and_overflow_are_refused() {
        for bad in [
            r#"{"a": 1.5}"#,
            r#"{"a": -1}"#,
            r#"{"a": -1.0}"#,
            r#"{"a": "3"}"#,
            r#"{"a": 4294967296}"#,
            r#"{"a": 4294967296.0}"#,
            r#"{"b": 1e20}"#,
            r#"{"a": true}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse(r#"{"a": 1.5}"#).unwrap_err().to_string();
        assert!(e.contains("whole number"), "{e}");
    }
}
