//! Which sources a query reaches and what each evaluates itself. A source's
//! capabilities are data; this turns them plus a filter into a per-source
//! plan: the native filter to translate and the residual the gateway checks.

use std::collections::BTreeSet;

use super::filter::{native_ids_for, Field, LedgerFilter, SourceFilter};
use crate::model::EventType;

/// How far a source evaluates one filter field itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Exactly: the gateway need not check it again.
    Native,
    /// As a superset (day granularity, say): the gateway re-checks.
    Coarse,
    /// Not at all: the gateway filters.
    Gateway,
    /// The source never has such data, so a query using it cannot match.
    Unmatchable,
}

/// Per-field support, declared by each connector.
#[derive(Clone, Debug)]
pub struct Pushdown {
    pub entry_date: Support,
    pub updated_at: Support,
    pub event_types: Support,
    pub skus: Support,
    pub item_ids: Support,
    pub location_ids: Support,
    pub ids: Support,
    /// The upstream ignores every other filter when ids are given
    /// (Trackstar's `ids[in]`), so the rest becomes residual.
    pub ids_override_other_filters: bool,
}

impl Pushdown {
    pub fn support(&self, field: Field) -> Support {
        match field {
            Field::EntryDate => self.entry_date,
            Field::UpdatedAt => self.updated_at,
            Field::EventTypes => self.event_types,
            Field::Skus => self.skus,
            Field::ItemIds => self.item_ids,
            Field::LocationIds => self.location_ids,
            Field::Ids => self.ids,
        }
    }
}

/// How a source looks up one kind of entity: the dataloaders split and
/// throttle calls by these numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most keys in one upstream call (1: the API has no batch lookup).
    pub max_keys: usize,
    /// Most upstream calls in flight at once for one load.
    pub concurrency: usize,
}

/// What a source can do, as data the planner reads.
#[derive(Clone, Debug)]
pub struct Capabilities {
    pub pushdown: Pushdown,
    /// The event types this source can ever produce.
    pub event_types: &'static [EventType],
    /// Largest page the upstream serves.
    pub max_page_size: usize,
    /// Most entry ids one ledger read by id carries; the call budget counts
    /// lookups of entries by id in reads of this many.
    pub ids_per_read: usize,
    /// Item lookups; `None` when the source has no items.
    pub items: Option<BatchLimits>,
    /// Location lookups; `None` when the source has no locations.
    pub locations: Option<BatchLimits>,
}

/// One source's part of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlan {
    /// Everything the caller asked, in this source's terms; the connector
    /// translates the fields its capabilities push down.
    pub filter: SourceFilter,
    /// What the gateway must still check on each entry.
    pub residual: SourceFilter,
}

/// Plans `filter` for source `name`; `None` when the source cannot match and
/// must not be called.
pub fn plan(name: &str, capabilities: &Capabilities, filter: &LedgerFilter) -> Option<SourcePlan> {
    if filter.sources.as_ref().is_some_and(|sources| !sources.contains(name)) {
        return None;
    }
    let event_types = match &filter.event_types {
        Some(wanted) => {
            let possible: BTreeSet<EventType> = capabilities.event_types.iter().copied().collect();
            Some(wanted.intersection(&possible).copied().collect::<BTreeSet<_>>())
        }
        None => None,
    };
    let source_filter = SourceFilter {
        entry_date: filter.entry_date.clone(),
        updated_at: filter.updated_at.clone(),
        event_types,
        skus: filter.skus.clone(),
        item_refs: native_ids_for(&filter.item_ids, name),
        location_ids: native_ids_for(&filter.location_ids, name),
        ids: native_ids_for(&filter.ids, name),
    };
    if cannot_match(capabilities, &source_filter) {
        return None;
    }
    let pushdown = &capabilities.pushdown;
    let ids_take_over = pushdown.ids_override_other_filters && source_filter.is_set(Field::Ids);
    let residual_fields: Vec<Field> = Field::ALL
        .into_iter()
        .filter(|field| {
            let native = pushdown.support(*field) == Support::Native && (!ids_take_over || *field == Field::Ids);
            source_filter.is_set(*field) && !native
        })
        .collect();
    Some(SourcePlan { residual: source_filter.only(&residual_fields), filter: source_filter })
}

fn cannot_match(capabilities: &Capabilities, filter: &SourceFilter) -> bool {
    let empty = |set: &Option<BTreeSet<String>>| set.as_ref().is_some_and(BTreeSet::is_empty);
    filter.event_types.as_ref().is_some_and(BTreeSet::is_empty)
        || empty(&filter.skus)
        || empty(&filter.item_refs)
        || empty(&filter.location_ids)
        || empty(&filter.ids)
        || filter.entry_date.is_empty()
        || filter.updated_at.is_empty()
        || Field::ALL
            .into_iter()
            .any(|field| filter.is_set(field) && capabilities.pushdown.support(field) == Support::Unmatchable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capabilities() -> Capabilities {
        Capabilities {
            pushdown: Pushdown {
                entry_date: Support::Native,
                updated_at: Support::Coarse,
                event_types: Support::Native,
                skus: Support::Gateway,
                item_ids: Support::Gateway,
                location_ids: Support::Unmatchable,
                ids: Support::Native,
                ids_override_other_filters: true,
            },
            event_types: &[EventType::Receipt, EventType::Shipment],
            max_page_size: 100,
            ids_per_read: 100,
            items: None,
            locations: None,
        }
    }

    fn set(items: &[&str]) -> Option<BTreeSet<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn native_fields_leave_the_residual_and_others_stay() {
        let filter =
            LedgerFilter { skus: set(&["A"]), event_types: Some([EventType::Receipt].into()), ..Default::default() };
        let plan = plan("t", &capabilities(), &filter).unwrap();
        assert_eq!(plan.residual.skus, set(&["A"]));
        assert_eq!(plan.residual.event_types, None);
        assert_eq!(plan.filter.event_types, Some([EventType::Receipt].into()));
    }

    #[test]
    fn a_source_is_skipped_when_it_cannot_match() {
        let caps = capabilities();
        let only_other = LedgerFilter { sources: set(&["other"]), ..Default::default() };
        assert_eq!(plan("t", &caps, &only_other), None);
        let wrong_events = LedgerFilter { event_types: Some([EventType::Journal].into()), ..Default::default() };
        assert_eq!(plan("t", &caps, &wrong_events), None);
        let other_ids = LedgerFilter { ids: set(&["other:1"]), ..Default::default() };
        assert_eq!(plan("t", &caps, &other_ids), None);
        let location = LedgerFilter { location_ids: set(&["t:1"]), ..Default::default() };
        assert_eq!(plan("t", &caps, &location), None);
    }

    #[test]
    fn ids_that_override_other_filters_move_them_to_the_residual() {
        let filter = LedgerFilter {
            ids: set(&["t:1", "x:2"]),
            event_types: Some([EventType::Receipt].into()),
            ..Default::default()
        };
        let plan = plan("t", &capabilities(), &filter).unwrap();
        assert_eq!(plan.filter.ids, set(&["1"]));
        assert_eq!(plan.residual.ids, None);
        assert_eq!(plan.residual.event_types, Some([EventType::Receipt].into()));
    }
}
