//! Exact decimals from upstream JSON. Several upstreams send quantities and
//! money as JSON numbers (`25934.2`, `-3.0`); going through `f64` would round
//! anything past ~16 significant digits. These deserializers read the
//! number's own text instead (serde_json's `raw_value`), so what arrives is
//! what the client sees. They need a `serde_json` deserializer (every
//! upstream body is decoded with `serde_json::from_slice`).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Parses JSON number text (`-12.50`, `1E-5`, `2e+3`) without rounding:
/// `None` when it is not a number or does not fit a `Decimal` exactly.
/// A JSON string holding such a number is accepted too, as OData services
/// send decimals under `IEEE754Compatible=true`.
pub fn parse_exact(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    if mantissa.is_empty() || mantissa.starts_with('+') || mantissa.ends_with('.') {
        return None;
    }
    let mut value = Decimal::from_str_exact(mantissa).ok()?;
    let Some(exponent) = exponent else { return Some(value) };
    let exponent = i64::from_str(exponent).ok()?;
    let scale = i64::from(value.scale()) - exponent;
    if scale >= 0 {
        value.set_scale(u32::try_from(scale).ok()?).ok()?;
        Some(value)
    } else {
        // A positive exponent beyond the digits after the point: scale up.
        value.set_scale(0).ok()?;
        let factor = Decimal::from_i128_with_scale(10i128.checked_pow(u32::try_from(-scale).ok()?)?, 0);
        value.checked_mul(factor)
    }
}

fn from_raw<E: serde::de::Error>(raw: &RawValue) -> Result<Decimal, E> {
    parse_exact(raw.get()).ok_or_else(|| E::custom("expected an exact decimal number"))
}

/// `#[serde(deserialize_with = "exact")]` for a required decimal.
pub fn exact<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    from_raw(&raw)
}

/// `#[serde(default, deserialize_with = "exact_opt")]` for an optional
/// decimal: `null` or a missing key is `None`.
pub fn exact_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Box<RawValue>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(raw) => from_raw(&raw).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "exact")]
        amount: Decimal,
        #[serde(default, deserialize_with = "exact_opt")]
        other: Option<Decimal>,
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).unwrap()
    }

    #[test]
    fn json_numbers_keep_every_digit() {
        // f64 keeps ~16 significant digits: each of these would be rounded.
        for text in ["12345678901234.123456789", "0.1000000000000000055511151231", "-9007199254740993", "-3.0", "0"] {
            let row: Row = serde_json::from_str(&format!(r#"{{"amount": {text}}}"#)).unwrap();
            assert_eq!(row.amount, dec(text), "{text}");
            assert_eq!(row.amount.to_string(), text, "{text}: the scale is kept too");
        }
    }

    #[test]
    fn exponents_scale_exactly() {
        assert_eq!(parse_exact("1E-5"), Some(dec("0.00001")));
        assert_eq!(parse_exact("2.5e+3"), Some(dec("2500")));
        assert_eq!(parse_exact("-1.25E1"), Some(dec("-12.5")));
        assert_eq!(parse_exact("7e0"), Some(dec("7")));
    }

    #[test]
    fn decimal_strings_are_accepted_and_garbage_is_not() {
        assert_eq!(parse_exact(r#""25934.20""#), Some(dec("25934.20")));
        for bad in ["", "abc", "1.", "+1", "true", "{}", "1e", "1e999", "123456789012345678901234567890123"] {
            assert_eq!(parse_exact(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn null_and_missing_optional_decimals_are_none() {
        let row: Row = serde_json::from_str(r#"{"amount": 1, "other": null}"#).unwrap();
        assert_eq!(row.other, None);
        let row: Row = serde_json::from_str(r#"{"amount": 1}"#).unwrap();
        assert_eq!(row.other, None);
        let row: Row = serde_json::from_str(r#"{"amount": 1, "other": 0.30000000000000001}"#).unwrap();
        assert_eq!(row.other, Some(dec("0.30000000000000001")));
    }

    #[test]
    fn a_non_number_fails_the_record() {
        assert!(serde_json::from_str::<Row>(r#"{"amount": "lots"}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"amount": null}"#).is_err());
    }
}
