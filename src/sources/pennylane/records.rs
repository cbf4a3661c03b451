//! Pennylane's wire types (API v2 with the 2026 changes) and their mapping
//! into the unified model. A ledger entry carries no money itself: its
//! amounts are the sums of its ledger entry lines, which come from a
//! separate endpoint and are joined here by `ledger_entry.id`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use crate::model::{Amounts, DocumentRef, EventType, LedgerEntry, SourceKind, SourceName};
use crate::upstream::decimal::exact;

/// The 2026 list envelope (`total_*`, `per_page`, `current_page` are null
/// and ignored). `has_more` is required on purpose: the pre-2026 page format
/// has none, and reading it as "no more" would end a walk after one page.
#[derive(Clone, Debug, Deserialize)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// `{id, url}` references; only the id is used.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct IdRef {
    pub id: i64,
}

/// One ledger entry (`GET /ledger_entries`, `GET /ledger_entries/{id}`).
/// Unknown fields (categories, attachment, urls) are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LedgerEntryRecord {
    pub id: i64,
    #[serde(default)]
    pub label: Option<String>,
    /// Null for drafts since the 2026 changes.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub journal: Option<IdRef>,
    /// The pre-2026 spelling of `journal.id`, still accepted.
    #[serde(default)]
    pub journal_id: Option<i64>,
    #[serde(default)]
    pub piece_number: Option<String>,
    #[serde(default)]
    pub invoice_number: Option<String>,
    #[serde(default)]
    pub due_date: Option<NaiveDate>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// One ledger entry line. Debit and credit are decimal strings (`"100.00"`);
/// a JSON number is read from its text too, never through a float.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct LineRecord {
    pub id: i64,
    #[serde(deserialize_with = "exact")]
    pub debit: Decimal,
    #[serde(deserialize_with = "exact")]
    pub credit: Decimal,
    pub ledger_entry: IdRef,
    /// Not in the documented line schema; used only when a line states it.
    #[serde(default)]
    pub currency: Option<String>,
}

impl LedgerEntryRecord {
    /// The journal's id, from either spelling.
    pub fn journal_id(&self) -> Option<i64> {
        self.journal.as_ref().map(|j| j.id).or(self.journal_id)
    }

    /// The unified entry, without amounts (see [`Totals`]).
    pub fn into_entry(self, source: &SourceName) -> LedgerEntry {
        let journal = self.journal_id();
        let additional_fields = json!({
            "journal": journal.map(|id| json!({ "id": id })),
            "invoice_number": self.invoice_number,
            "status": self.status,
            "due_date": self.due_date,
        });
        // Day precision: midnight UTC, as the unified model documents.
        let entry_date = self.date.map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
        let entry = LedgerEntry::new(
            source.clone(),
            SourceKind::Pennylane,
            self.id.to_string(),
            entry_date,
            EventType::Journal,
        );
        LedgerEntry {
            raw_event_type: journal.map(|id| format!("journal:{id}")),
            document: self.piece_number.map(|number| DocumentRef { kind: Some("piece".into()), number: Some(number) }),
            description: self.label,
            created_at: self.created_at,
            updated_at: self.updated_at,
            additional_fields,
            ..entry
        }
    }
}

/// The money of one entry: its lines summed exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    debit: Decimal,
    credit: Decimal,
    currencies: BTreeSet<Option<String>>,
}

impl Totals {
    fn add(&mut self, line: &LineRecord) {
        self.debit += line.debit;
        self.credit += line.credit;
        self.currencies.insert(line.currency.clone());
    }

    /// Debit and credit sums; a currency only when every line states the
    /// same one (Pennylane's documented lines state none).
    pub fn amounts(&self) -> Amounts {
        let currency = match self.currencies.iter().collect::<Vec<_>>().as_slice() {
            [Some(currency)] => Some(currency.clone()),
            _ => None,
        };
        Amounts { debit: Some(self.debit), credit: Some(self.credit), currency, ..Amounts::default() }
    }
}

/// Lines grouped by the entry they belong to.
pub fn totals_by_entry<'a>(lines: impl IntoIterator<Item = &'a LineRecord>) -> HashMap<i64, Totals> {
    let mut totals: HashMap<i64, Totals> = HashMap::new();
    for line in lines {
        totals.entry(line.ledger_entry.id).or_default().add(line);
    }
    totals
}
