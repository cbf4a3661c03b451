//! Opaque, versioned page cursors. A cursor is a keyset position (the last
//! entry the caller saw, in the merged order) plus the positions of sources
//! that stand elsewhere because one of them failed, plus per-source hints that only make
//! the next fetch cheaper. It names the filter it was made for, so it cannot
//! silently continue a different query.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::SortKey;

/// v2: hints became typed (`Hint`); a v1 cursor's hints mean nothing now.
const VERSION: &str = "v2";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Digest of the filter this cursor belongs to.
    #[serde(rename = "f")]
    pub filter: String,
    /// Every source not named in `held` continues after this key.
    #[serde(rename = "k")]
    pub after: SortKey,
    /// Sources whose position differs from `after` (`None`: from the
    /// start). A source that failed on an earlier page keeps its older
    /// position, so none of its entries is skipped; while it catches up, the
    /// others keep theirs, so none of their entries repeats.
    #[serde(rename = "h", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Option<SortKey>>,
    /// Per-source hints (what a walk learned of the ledger's density, say); never positions.
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints: BTreeMap<String, Hint>,
}

/// What one source's scan learned that makes its next page cheaper. It
/// never decides what a page contains, only what it costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    /// The page size a paged source last asked for.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
    /// One per date-window walk of the source, in the source's own order.
    #[serde(rename = "w", default, skip_serializing_if = "Vec::is_empty")]
    pub walks: Vec<Density>,
}

/// What a date-window walk learned of a ledger: decayed sums over the
/// windows it read, so recent windows weigh most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 3]", into = "[f64; 3]")]
pub struct Density {
    /// Upstream records read (what an upstream page size counts).
    pub records: f64,
    /// Seconds of the filtered date those records were read over.
    pub seconds: f64,
    /// Entries among them that matched the whole filter.
    pub matches: f64,
}

/// How much an older window's figures still count after each newer window.
const DECAY: f64 = 0.5;
/// Beyond any real ledger: a forged hint cannot make arithmetic overflow.
const MAX_FIGURE: f64 = 1e15;

impl Density {
    /// Adds one window's figures, older ones decayed.
    pub fn learn(&mut self, records: usize, seconds: f64, matches: usize) {
        // Rounded: a cursor carries the figures, not their noise.
        let decayed = |old: f64, new: f64| ((old * DECAY + new) * 100.0).round() / 100.0;
        self.records = decayed(self.records, records as f64);
        self.seconds = decayed(self.seconds, seconds);
        self.matches = decayed(self.matches, matches as f64);
    }

    /// Records per second; `None` before any record was seen.
    pub fn rate(&self) -> Option<f64> {
        (self.records > 0.0 && self.seconds > 0.0).then(|| self.records / self.seconds)
    }

    /// Matching entries per record, optimistic (one match) while none was
    /// seen: windows then grow with every record read without a match.
    pub fn share(&self) -> f64 {
        (self.matches.max(1.0) / self.records.max(1.0)).min(1.0)
    }

    fn is_valid(&self) -> bool {
        [self.records, self.seconds, self.matches].iter().all(|f| f.is_finite() && (0.0..=MAX_FIGURE).contains(f))
    }
}

impl From<[f64; 3]> for Density {
    fn from([records, seconds, matches]: [f64; 3]) -> Self {
        Self { records, seconds, matches }
    }
}

impl From<Density> for [f64; 3] {
    fn from(d: Density) -> Self {
        [d.records, d.seconds, d.matches]
    }
}

impl Hint {
    fn is_valid(&self) -> bool {
        self.walks.iter().all(Density::is_valid)
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is not valid: it was not issued by this gateway or is corrupted")]
    Malformed,
    #[error("cursor was issued by an incompatible version of this gateway")]
    UnknownVersion,
    #[error("cursor belongs to a query with a different filter")]
    FilterMismatch,
}

impl Cursor {
    /// Where `source` continues: after this key, or from the start on `None`.
    pub fn position_for(&self, source: &str) -> Option<&SortKey> {
        match self.held.get(source) {
            Some(held) => held.as_ref(),
            None => Some(&self.after),
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("cursor serializes");
        format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Decodes `text` and checks it belongs to the filter with digest `filter`.
    pub fn decode(text: &str, filter: &str) -> Result<Self, CursorError> {
        let (version, payload) = text.split_once('.').ok_or(CursorError::Malformed)?;
        if version != VERSION {
            return Err(if version.starts_with('v') { CursorError::UnknownVersion } else { CursorError::Malformed });
        }
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CursorError::Malformed)?;
        let cursor: Cursor = serde_json::from_slice(&json).map_err(|_| CursorError::Malformed)?;
        if !cursor.hints.values().all(Hint::is_valid) {
            return Err(CursorError::Malformed);
        }
        if cursor.filter != filter {
            return Err(CursorError::FilterMismatch);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            filter: "abc".into(),
            after: SortKey { entry_date: None, source: "trackstar".into(), native_id: "1".into() },
            held: BTreeMap::from([("bc".to_owned(), None)]),
            hints: BTreeMap::new(),
        }
    }

    #[test]
    fn round_trips() {
        let text = cursor().encode();
        assert!(text.starts_with("v2."));
        assert_eq!(Cursor::decode(&text, "abc"), Ok(cursor()));
    }

    #[test]
    fn rejects_garbage_other_versions_and_other_filters() {
        assert_eq!(Cursor::decode("nonsense", "abc"), Err(CursorError::Malformed));
        assert_eq!(Cursor::decode("v2.!!!", "abc"), Err(CursorError::Malformed));
        assert_eq!(Cursor::decode("v2.e30", "abc"), Err(CursorError::Malformed));
        let future = cursor().encode().replacen("v2.", "v9.", 1);
        assert_eq!(Cursor::decode(&future, "abc"), Err(CursorError::UnknownVersion));
        assert_eq!(Cursor::decode(&cursor().encode(), "other"), Err(CursorError::FilterMismatch));
    }

    /// A cursor of the previous version (an untyped window-span hint) is
    /// refused as such, not read with its hints misunderstood.
    #[test]
    fn a_version_1_cursor_is_refused_as_incompatible() {
        let old = r#"{"f":"abc","k":{"d":null,"s":"trackstar","i":"1"},"x":{"trackstar":{"span":86400}}}"#;
        let text = format!("v1.{}", URL_SAFE_NO_PAD.encode(old));
        assert_eq!(Cursor::decode(&text, "abc"), Err(CursorError::UnknownVersion));
    }

    #[test]
    fn hints_round_trip_and_forged_ones_are_malformed() {
        let mut c = cursor();
        let density = Density { records: 1200.0, seconds: 86_400.0, matches: 3.0 };
        c.hints.insert("trackstar".into(), Hint { walks: vec![density], ..Hint::default() });
        c.hints.insert("bc".into(), Hint { page_size: Some(40), ..Hint::default() });
        assert_eq!(Cursor::decode(&c.encode(), "abc"), Ok(c.clone()));
        let forge = |hint: &str| {
            let json = format!(r#"{{"f":"abc","k":{{"d":null,"s":"t","i":"1"}},"x":{{"t":{hint}}}}}"#);
            Cursor::decode(&format!("v2.{}", URL_SAFE_NO_PAD.encode(json)), "abc")
        };
        assert!(forge(r#"{"w":[[10,60,1]]}"#).is_ok());
        for bad in [
            r#"{"span":86400}"#,
            r#"{"w":[[-1,60,1]]}"#,
            r#"{"w":[[1e300,60,1]]}"#,
            r#"{"w":[[1,60]]}"#,
            r#"{"w":"x"}"#,
            r#"{"p":-3}"#,
        ] {
            assert_eq!(forge(bad), Err(CursorError::Malformed), "{bad}");
        }
    }

    #[test]
    fn held_sources_keep_their_own_position() {
        let c = cursor();
        assert_eq!(c.position_for("bc"), None);
        assert_eq!(c.position_for("trackstar"), Some(&c.after));
    }
}
