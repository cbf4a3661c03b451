//! Turns a source's batches into its next `want` entries in merged order.
//! A batch comes with a watermark: the date above which the source promises
//! nothing more will come. Entries below it wait for later batches, because
//! an upstream that sorts by date alone (or not at all) may still send an
//! entry that sorts before them.

use chrono::{DateTime, Utc};

use super::filter::SourceFilter;
use crate::model::{LedgerEntry, SortKey};

/// How far a source's delivered batches are complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watermark {
    /// Every entry dated at or after this has been delivered.
    AtOrAfter(DateTime<Utc>),
    /// Every entry dated strictly after this has been delivered.
    After(DateTime<Utc>),
    /// Everything has been delivered.
    Exhausted,
}

impl Watermark {
    fn is_final(&self, entry: &LedgerEntry) -> bool {
        match (self, entry.entry_date) {
            (Watermark::Exhausted, _) => true,
            (_, None) => false,
            (Watermark::AtOrAfter(mark), Some(date)) => date >= *mark,
            (Watermark::After(mark), Some(date)) => date > *mark,
        }
    }
}

/// Collects one source's entries for one page.
#[derive(Debug)]
pub struct Collector {
    after: Option<SortKey>,
    residual: SourceFilter,
    want: usize,
    pending: Vec<LedgerEntry>,
    ready: Vec<LedgerEntry>,
}

impl Collector {
    /// Keeps entries after `after` that pass `residual`; wants `want` of them.
    pub fn new(after: Option<SortKey>, residual: SourceFilter, want: usize) -> Self {
        Self { after, residual, want, pending: Vec::new(), ready: Vec::new() }
    }

    pub fn push(&mut self, entries: Vec<LedgerEntry>, watermark: Watermark) {
        let after = self.after.as_ref();
        self.pending
            .extend(entries.into_iter().filter(|e| after.is_none_or(|a| e.is_after(a)) && self.residual.matches(e)));
        let (mut ready, pending): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|e| watermark.is_final(e));
        self.pending = pending;
        ready.sort_by(LedgerEntry::cmp_order);
        // A source's ready entries only grow older batch by batch, so
        // appending keeps `ready` sorted; memory stays bounded by trimming.
        self.ready.append(&mut ready);
        self.ready.truncate(self.want + 1);
    }

    /// One entry more than wanted is known, so the page has a successor.
    pub fn is_satisfied(&self) -> bool {
        self.ready.len() > self.want
    }

    /// The first `want` entries, and whether more exist.
    pub fn finish(mut self, exhausted: bool) -> (Vec<LedgerEntry>, bool) {
        let has_more = self.ready.len() > self.want || !exhausted;
        self.ready.truncate(self.want);
        (self.ready, has_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, SourceKind, SourceName};
    use chrono::TimeZone;

    fn entry(id: &str, hour: u32) -> LedgerEntry {
        let at = Utc.with_ymd_and_hms(2025, 1, 1, hour, 0, 0).unwrap();
        LedgerEntry::new(SourceName::new("t"), SourceKind::Trackstar, id.into(), Some(at), EventType::Other)
    }

    fn ids(entries: &[LedgerEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.native_id.as_str()).collect()
    }

    #[test]
    fn entries_below_the_watermark_wait_for_the_next_batch() {
        let mut c = Collector::new(None, SourceFilter::default(), 2);
        c.push(vec![entry("a", 5), entry("b", 3)], Watermark::After(entry("b", 3).entry_date.unwrap()));
        assert!(!c.is_satisfied());
        // "c" shares b's hour but sorts before it: it must come out first.
        c.push(vec![entry("c", 3), entry("d", 1)], Watermark::Exhausted);
        let (page, more) = c.finish(true);
        assert_eq!(ids(&page), ["a", "b"]);
        assert!(more);
    }

    #[test]
    fn entries_at_or_before_the_position_are_dropped() {
        let position = entry("b", 3).sort_key();
        let mut c = Collector::new(Some(position), SourceFilter::default(), 5);
        c.push(vec![entry("a", 5), entry("b", 3), entry("c", 3), entry("d", 1)], Watermark::Exhausted);
        let (page, more) = c.finish(true);
        assert_eq!(ids(&page), ["c", "d"]);
        assert!(!more);
    }

    #[test]
    fn an_unfinished_source_reports_more() {
        let mut c = Collector::new(None, SourceFilter::default(), 5);
        c.push(vec![entry("a", 5)], Watermark::AtOrAfter(entry("a", 5).entry_date.unwrap()));
        let (page, more) = c.finish(false);
        assert_eq!(ids(&page), ["a"]);
        assert!(more);
    }
}
