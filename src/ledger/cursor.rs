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

const VERSION: &str = "v1";

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
    /// Connector-private hints (a learned date window, say); never positions.
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hints: BTreeMap<String, serde_json::Value>,
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
        assert!(text.starts_with("v1."));
        assert_eq!(Cursor::decode(&text, "abc"), Ok(cursor()));
    }

    #[test]
    fn rejects_garbage_other_versions_and_other_filters() {
        assert_eq!(Cursor::decode("nonsense", "abc"), Err(CursorError::Malformed));
        assert_eq!(Cursor::decode("v1.!!!", "abc"), Err(CursorError::Malformed));
        assert_eq!(Cursor::decode("v1.e30", "abc"), Err(CursorError::Malformed));
        let future = cursor().encode().replacen("v1.", "v9.", 1);
        assert_eq!(Cursor::decode(&future, "abc"), Err(CursorError::UnknownVersion));
        assert_eq!(Cursor::decode(&cursor().encode(), "other"), Err(CursorError::FilterMismatch));
    }

    #[test]
    fn held_sources_keep_their_own_position() {
        let c = cursor();
        assert_eq!(c.position_for("bc"), None);
        assert_eq!(c.position_for("trackstar"), Some(&c.after));
    }
}
