//! Planner, merger and cursors: pure logic with no I/O, so it can be tested
//! and fuzzed on its own. `plan` decides which sources a filter reaches and
//! what each evaluates natively; `collect` turns a source's batches into its
//! next entries in merged order; `merge` combines sources into one page with
//! keyset `cursor`s.

pub mod collect;
pub mod cursor;
pub mod filter;
pub mod merge;
pub mod plan;

pub use collect::{Collector, Watermark};
pub use cursor::{Cursor, CursorError, Density, Hint};
pub use filter::{nameable, Field, LedgerFilter, SourceFilter, TimeRange, CALENDAR_YEARS};
pub use merge::{merge, MergedPage, SourcePage};
pub use plan::{plan, BatchLimits, Capabilities, Pushdown, SourcePlan, Support};
