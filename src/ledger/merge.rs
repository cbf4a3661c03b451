//! The k-way merge of per-source pages into one page, and the cursors of its
//! edges. Pure: the fan-out that fetches the pages lives in `sources`.

use std::collections::BTreeMap;

use super::cursor::{Cursor, Hint};
use crate::model::{LedgerEntry, SortKey};

/// One source's contribution to a page.
#[derive(Debug)]
pub struct SourcePage {
    pub source: String,
    /// Sorted in merged order, at most `first` entries.
    pub entries: Vec<LedgerEntry>,
    pub has_more: bool,
    pub hint: Option<Hint>,
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
    let hints: BTreeMap<String, Hint> =
        pages.iter().filter_map(|p| Some((p.source.clone(), p.hint.clone()?))).collect();
    let standing: Vec<Standing> = pages
        .iter()
        .map(|p| (p.source.as_str(), false))
        .chain(failed.iter().map(|s| (s.as_str(), true)))
        .map(|(source, failed)| Standing {
            source: source.to_owned(),
            before: previous.and_then(|c| c.position_for(source).cloned()),
            failed,
        })
        .collect();
    let mut all: Vec<LedgerEntry> = pages.into_iter().flat_map(|p| p.entries).collect();
    // Each page is sorted; a stable sort of the concatenation is the k-way
    // merge, and at these sizes it beats a heap.
    all.sort_by(LedgerEntry::cmp_order);
    let has_next_page = more_in_sources || all.len() > first;
    all.truncate(first);
    let edges = all
        .into_iter()
        .map(|entry| {
            let after = entry.sort_key();
            let held = standing.iter().filter_map(|s| s.held_at(&after)).collect();
            let cursor = Cursor { filter: filter_digest.to_owned(), after, held, hints: hints.clone() };
            (entry, cursor.encode())
        })
        .collect();
    MergedPage { edges, has_next_page }
}

/// Where one source stood before this page, and whether it failed on it.
struct Standing {
    source: String,
    /// `None`: from the start.
    before: Option<SortKey>,
    failed: bool,
}

impl Standing {
    /// The source's position once the caller has seen everything up to
    /// `after`, when it differs from `after`. A failed source stays where it
    /// was, so none of its entries is skipped. A source that was already
    /// past `after` stays there too, so none of its entries repeats: that
    /// happens while a source held back by an earlier failure catches up and
    /// fills the page with entries that come before the others' position.
    fn held_at(&self, after: &SortKey) -> Option<(String, Option<SortKey>)> {
        let at = if self.failed { self.before.clone() } else { self.before.clone().max(Some(after.clone())) };
        (at.as_ref() != Some(after)).then(|| (self.source.clone(), at))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::{EventType, SourceKind, SourceName};

    fn entry(source: &str, id: usize) -> LedgerEntry {
        // Interleaved dates across the two sources, with ties.
        let date = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() - chrono::Duration::hours((id / 2) as i64);
        LedgerEntry::new(
            SourceName::new(source),
            SourceKind::Trackstar,
            format!("{id:04}"),
            Some(date),
            EventType::Other,
        )
    }

    /// What a source's driver returns: its next `want` entries after `position`.
    fn source_page(entries: &[LedgerEntry], position: Option<&SortKey>, want: usize) -> SourcePage {
        let mut next: Vec<LedgerEntry> =
            entries.iter().filter(|e| position.is_none_or(|p| e.sort_key() > *p)).cloned().collect();
        next.sort_by_cached_key(LedgerEntry::sort_key);
        let has_more = next.len() > want;
        next.truncate(want);
        SourcePage { source: entries[0].source.to_string(), entries: next, has_more, hint: None }
    }

    #[test]
    fn a_source_failing_on_some_pages_loses_and_repeats_nothing() {
        let sources: Vec<Vec<LedgerEntry>> =
            vec![(0..60).map(|i| entry("a", i)).collect(), (0..45).map(|i| entry("b", i * 3 + 1)).collect()];
        let mut expected: Vec<SortKey> = sources.iter().flatten().map(LedgerEntry::sort_key).collect();
        expected.sort();
        // Source b fails on pages 2-4 and 7, then catches up with a backlog.
        for first in [1, 4, 10] {
            let (mut cursor, mut seen, mut page) = (None::<Cursor>, Vec::new(), 0);
            loop {
                page += 1;
                let failing: Vec<String> = if [2, 3, 4, 7].contains(&page) { vec!["b".into()] } else { vec![] };
                let pages = sources
                    .iter()
                    .filter(|s| !failing.contains(&s[0].source.to_string()))
                    .map(|s| {
                        let name = s[0].source.to_string();
                        source_page(s, cursor.as_ref().and_then(|c| c.position_for(&name)), first)
                    })
                    .collect();
                let merged = merge(pages, first, "f", cursor.as_ref(), &failing);
                seen.extend(merged.edges.iter().map(|(e, _)| e.sort_key()));
                if !merged.has_next_page {
                    break;
                }
                if let Some((_, last)) = merged.edges.last() {
                    cursor = Some(Cursor::decode(last, "f").unwrap());
                }
                assert!(page < 1000, "walk does not end");
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "first={first}: an entry repeats");
            assert_eq!(sorted, expected, "first={first}: an entry is missing");
        }
    }

    #[test]
    fn a_source_ahead_of_the_page_keeps_its_own_position() {
        let a: Vec<LedgerEntry> = (0..10).map(|i| entry("a", i * 2)).collect();
        let previous = Cursor {
            filter: "f".into(),
            after: a[5].sort_key(),
            held: BTreeMap::from([("b".to_owned(), None)]),
            hints: BTreeMap::new(),
        };
        let b: Vec<LedgerEntry> = (0..10).map(|i| entry("b", i * 2 + 1)).collect();
        // b catches up with entries newer than where a stands.
        let pages = vec![source_page(&a, Some(&a[5].sort_key()), 2), source_page(&b, None, 2)];
        let merged = merge(pages, 2, "f", Some(&previous), &[]);
        let cursor = Cursor::decode(&merged.edges[1].1, "f").unwrap();
        assert_eq!(cursor.after, b[1].sort_key());
        assert_eq!(cursor.held, BTreeMap::from([("a".to_owned(), Some(a[5].sort_key()))]));
        assert_eq!(cursor.position_for("b"), Some(&b[1].sort_key()));
    }
}
