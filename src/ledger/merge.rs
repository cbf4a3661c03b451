//! The k-way merge of per-source pages into one page, and the cursors of its
//! edges. Pure: the fan-out that fetches the pages lives in `sources`.

use std::collections::BTreeMap;

use super::cursor::Cursor;
use crate::model::{LedgerEntry, SortKey};

/// One source's contribution to a page.
#[derive(Debug)]
pub struct SourcePage {
    pub source: String,
    /// Sorted in merged order, at most `first` entries.
    pub entries: Vec<LedgerEntry>,
    pub has_more: bool,
    pub hint: Option<serde_json::Value>,
}

/// The merged page: entries with their cursors.
#[derive(Debug)]
pub struct MergedPage {
    pub edges: Vec<(LedgerEntry, String)>,
    pub has_next_page: bool,
}

/// Merges `pages` into the first `first` entries. `failed` names sources
/// whose page could not be fetched: they keep the position they had in
/// `previous` so their entries come on a later page instead of being lost.
pub fn merge(
    pages: Vec<SourcePage>,
    first: usize,
    filter_digest: &str,
    previous: Option<&Cursor>,
    failed: &[String],
) -> MergedPage {
    let more_in_sources = pages.iter().any(|p| p.has_more) || !failed.is_empty();
    let hints: BTreeMap<String, serde_json::Value> =
        pages.iter().filter_map(|p| Some((p.source.clone(), p.hint.clone()?))).collect();
    let mut all: Vec<LedgerEntry> = pages.into_iter().flat_map(|p| p.entries).collect();
    // Each page is sorted; a stable sort of the concatenation is the k-way
    // merge, and at these sizes it beats a heap.
    all.sort_by(LedgerEntry::cmp_order);
    let has_next_page = more_in_sources || all.len() > first;
    all.truncate(first);
    let held: BTreeMap<String, Option<SortKey>> =
        failed.iter().map(|source| (source.clone(), previous.and_then(|c| c.position_for(source).cloned()))).collect();
    let edges = all
        .into_iter()
        .map(|entry| {
            let cursor = Cursor {
                filter: filter_digest.to_owned(),
                after: entry.sort_key(),
                held: held.clone(),
                hints: hints.clone(),
            };
            (entry, cursor.encode())
        })
        .collect();
    MergedPage { edges, has_next_page }
}
