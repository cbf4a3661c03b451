//! Exact decimals from upstream JSON. serde_json reads a JSON number into
//! an `f64` before a `Decimal` ever sees it, which rounds long numbers and
//! drops trailing zeros (`18.50` becomes `18.5`). These read the number's
//! text instead, for `#[serde(deserialize_with = ...)]` on upstream types.
//! Numbers sent as strings (`"18.50"`) are accepted too.

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A required decimal.
pub fn exact<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    parse(raw.get()).map_err(D::Error::custom)
}

/// An optional decimal: absent or `null` is `None`. Use with `#[serde(default)]`.
pub fn exact_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
    raw.map(|raw| parse(raw.get()).map_err(D::Error::custom)).transpose()
}

fn parse(text: &str) -> Result<Decimal, String> {
    let number = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(|e| e.to_string())?
    } else {
        text.to_owned()
    };
    // JSON number syntax only: `Decimal`'s parsers also take `1_000`.
    let plain = number.strip_prefix('-').unwrap_or(&number);
    if !plain.starts_with(|c: char| c.is_ascii_digit()) || !plain.chars().all(|c| "0123456789.eE+-".contains(c)) {
        return Err(format!("{number:?} is not a decimal number"));
    }
    let parsed =
        if plain.contains(['e', 'E']) { Decimal::from_scientific(&number) } else { Decimal::from_str_exact(&number) };
    parsed.map_err(|_| format!("{number:?} does not fit an exact decimal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "exact")]
        amount: Decimal,
        #[serde(default, deserialize_with = "exact_opt")]
        maybe: Option<Decimal>,
    }

    fn row(json: &str) -> Result<Row, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_keep_every_digit_and_their_scale() {
        let r = row(r#"{"amount": 12345678901234567.89, "maybe": -37.00}"#).unwrap();
        assert_eq!(r.amount.to_string(), "12345678901234567.89");
        assert_eq!(r.maybe.unwrap().to_string(), "-37.00");
        assert_eq!(row(r#"{"amount": 0.1}"#).unwrap().amount.to_string(), "0.1");
        assert_eq!(row(r#"{"amount": 1.5e2}"#).unwrap().amount, Decimal::from(150));
    }

    #[test]
    fn strings_holding_numbers_are_accepted() {
        assert_eq!(row(r#"{"amount": "18.50"}"#).unwrap().amount.to_string(), "18.50");
    }

    #[test]
    fn absent_and_null_optionals_are_none() {
        assert_eq!(row(r#"{"amount": 1}"#).unwrap().maybe, None);
        assert_eq!(row(r#"{"amount": 1, "maybe": null}"#).unwrap().maybe, None);
    }

    #[test]
    fn non_numbers_and_unrepresentable_numbers_are_errors() {
        for bad in [r#""abc""#, "true", r#""1_000""#, "null", "123456789012345678901234567890.5"] {
            assert!(row(&format!(r#"{{"amount": {bad}}}"#)).is_err(), "{bad}");
        }
    }
}
