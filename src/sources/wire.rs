//! Wire-format helpers every connector may need.

use rust_decimal::Decimal;
use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Deserializes an optional JSON number (or numeric string) into a `Decimal`
/// from its exact text: reading it as `f64` first would round long
/// fractions. Use with `#[serde(default, deserialize_with = "...")]`.
pub fn exact_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let raw: Option<Box<RawValue>> = Option::deserialize(deserializer)?;
    raw.map(|raw| parse_decimal(raw.get()).ok_or_else(|| D::Error::custom("expected an exact decimal number")))
        .transpose()
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    Decimal::from_str_exact(text).or_else(|_| Decimal::from_scientific(text)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Priced {
        #[serde(default, deserialize_with = "exact_decimal")]
        price: Option<Decimal>,
    }

    fn price(json: &str) -> Option<Decimal> {
        serde_json::from_str::<Priced>(json).unwrap().price
    }

    #[test]
    fn numbers_keep_every_digit() {
        assert_eq!(
            price(r#"{"price": 0.1234567890123456789012345}"#).unwrap().to_string(),
            "0.1234567890123456789012345"
        );
        assert_eq!(price(r#"{"price": 12.30}"#).unwrap().to_string(), "12.30");
        assert_eq!(price(r#"{"price": -3}"#).unwrap().to_string(), "-3");
        assert_eq!(price(r#"{"price": 1.5e3}"#).unwrap().to_string(), "1500");
    }

    #[test]
    fn strings_null_and_missing_are_accepted() {
        assert_eq!(price(r#"{"price": "100.00"}"#).unwrap().to_string(), "100.00");
        assert_eq!(price(r#"{"price": null}"#), None);
        assert_eq!(price("{}"), None);
    }

    #[test]
    fn anything_else_is_a_decode_error() {
        assert!(serde_json::from_str::<Priced>(r#"{"price": "cheap"}"#).is_err());
        assert!(serde_json::from_str::<Priced>(r#"{"price": [1]}"#).is_err());
    }
}
