//! Relay's Global Object Identification: the `Node` interface over
//! `LedgerEntry`, `Item` and `Location`, and the lookup `node(id:)`,
//! `nodes(ids:)` and the federation entity resolvers share, through the
//! request's batched loaders.
//!
//! Ids stay `<source>:<native id>` for every kind, so one source's item, location
//! and entry may share an id (Trackstar's ids are opaque; a Business Central
//! item number can equal a location code). An id is looked up as the kinds
//! its source's id grammar allows (`Source::node_kinds`): as an entry first
//! when it may be one, then as every other kind concurrently. One hit is the
//! answer, several are an `AMBIGUOUS_ID` error rather than a guess.
//! Federation representations name their type, so they look up that kind
//! alone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Any, Context, ErrorExtensions, Interface, PathSegment, Value, ID};
use futures::future::join_all;

use super::entry::LedgerEntry;
use super::inventory::{Item, Location};
use super::loaders::Loaders;
use crate::error::GatewayError;
use crate::model::{split_global_id, NodeKind};
use crate::sources::Registry;
use crate::upstream::UpstreamError;

/// An object that can be refetched by its id alone (Relay).
// A node lives only while its field resolves; boxing the entry would cost
// an allocation per node for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "`<source>:<native id>`, unique across sources."))]
pub enum Node {
    LedgerEntry(LedgerEntry),
    Item(Item),
    Location(Location),
}

impl Node {
    fn kind(&self) -> NodeKind {
        match self {
            Node::LedgerEntry(_) => NodeKind::Entry,
            Node::Item(_) => NodeKind::Item,
            Node::Location(_) => NodeKind::Location,
        }
    }
}

/// The object `id` names: of kind `wanted`, or of whichever kind its source
/// holds it as. Unknown, malformed and ambiguous ids are errors.
pub async fn find(ctx: &Context<'_>, id: &str, wanted: Option<NodeKind>) -> async_graphql::Result<Node> {
    let Some((source, native)) = split_global_id(id) else {
        return Err(GatewayError::BadUserInput(format!("id {id:?} is not of the form <source>:<native id>")).extend());
    };
    let registry = ctx.data::<Arc<Registry>>()?;
    let loaders = ctx.data::<Loaders>()?;
    let Some(configured) = registry.get(source) else { return Err(GatewayError::NotFound(id.to_owned()).extend()) };
    let mut kinds = wanted.map_or_else(|| configured.node_kinds(native), |kind| vec![kind]);
    // Entries first, on their own: then N entry ids cost what
    // `ledgerEntries(filter: { ids })` costs, and only the ids no entry has
    // cost item and location lookups. An entry found is the answer without
    // asking whether an item or location has the id too. That assumes entry
    // ids and item/location ids are distinct: true of every grammar but
    // Trackstar's, whose ids are opaque and not documented as disjoint, but
    // are issued by different resources (ledger records vs. inventory and
    // warehouse records) and differ in practice (`led_…` vs. `inv_…`,
    // `wh_…`). Should one clash, `item(id:)` and `location(id:)` still reach
    // the others. A failed entry lookup fails the id: a hit elsewhere might
    // not be the only one.
    if kinds.len() > 1 && kinds.contains(&NodeKind::Entry) {
        let entry = load(loaders, NodeKind::Entry, source, native).await;
        if let Some(entry) = entry.map_err(|e| GatewayError::from(e).extend())? {
            return Ok(entry);
        }
        kinds.retain(|kind| *kind != NodeKind::Entry);
    }
    let found = join_all(kinds.into_iter().map(|kind| load(loaders, kind, source, native))).await;
    pick(id, found).map_err(|e| e.extend())
}

async fn load(loaders: &Loaders, kind: NodeKind, source: &str, native: &str) -> Result<Option<Node>, UpstreamError> {
    Ok(match kind {
        NodeKind::Entry => {
            loaders.entry(source, native).await?.map(|entry| Node::LedgerEntry(LedgerEntry((*entry).clone())))
        }
        NodeKind::Item => loaders.item(source, native).await?.map(|item| Node::Item(Item(item))),
        NodeKind::Location => loaders.location(source, native).await?.map(|place| Node::Location(Location(place))),
    })
}

/// The one object found among the kinds looked up. While a lookup failed,
/// a hit elsewhere might not be the only one: the failure is the answer.
fn pick(id: &str, found: Vec<Result<Option<Node>, UpstreamError>>) -> Result<Node, GatewayError> {
    let mut hits = Vec::new();
    let mut failure = None;
    for lookup in found {
        match lookup {
            Ok(hit) => hits.extend(hit),
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    match hits.len() {
        0 => Err(GatewayError::NotFound(id.to_owned())),
        1 => Ok(hits.remove(0)),
        _ => {
            let kinds: Vec<String> = hits.iter().map(|hit| format!("{:?}", hit.kind())).collect();
            Err(GatewayError::AmbiguousId { id: id.to_owned(), kinds: kinds.join(", ") })
        }
    }
}

/// `found` as a list element at `index` of the current field: the object,
/// or null with its error at the element's path.
pub fn element(ctx: &Context<'_>, index: usize, found: async_graphql::Result<Node>) -> Option<Node> {
    found.map_err(|error| add_error_at(ctx, error, index)).ok()
}

fn add_error_at(ctx: &Context<'_>, error: async_graphql::Error, index: usize) {
    let mut error = ctx.set_error_path(error.into_server_error(ctx.item.pos));
    error.path.push(PathSegment::Index(index));
    ctx.add_error(error);
}

/// A federation entity of type `typename` (kind `kind`) by `id`: the object,
/// or null with its error at the path of its representation in
/// `_entities`, so a router reports it where the entity belongs and the
/// other representations still resolve.
pub async fn entity(
    ctx: &Context<'_>,
    typename: &str,
    id: &str,
    kind: NodeKind,
) -> async_graphql::Result<Option<Node>> {
    match find(ctx, id, Some(kind)).await {
        Ok(node) => Ok(Some(node)),
        Err(error) => {
            let index = ctx.data::<EntitySlots>()?.claim(ctx, typename, id)?;
            add_error_at(ctx, error, index);
            Ok(None)
        }
    }
}

/// Where each representation of the request's `_entities` stands: an
/// entity resolver learns its type and key but not its index, so each
/// failing one claims the next index holding that type and key (duplicates
/// fail alike, so which claims which does not matter).
#[derive(Debug, Default)]
pub struct EntitySlots(Mutex<Option<Slots>>);

/// Indices of representations by type and key.
type Slots = HashMap<(String, String), VecDeque<usize>>;

impl EntitySlots {
    fn claim(&self, ctx: &Context<'_>, typename: &str, id: &str) -> async_graphql::Result<usize> {
        let mut slots = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.is_none() {
            let (_, representations) = ctx.param_value::<Vec<Any>>("representations", None)?;
            *slots = Some(index(&representations));
        }
        let index = slots.as_mut().and_then(|slots| slots.get_mut(&(typename.to_owned(), id.to_owned()))?.pop_front());
        index.ok_or_else(|| "a representation was resolved more often than it was asked".into())
    }
}

fn index(representations: &[Any]) -> Slots {
    let mut slots = Slots::new();
    for (position, Any(representation)) in representations.iter().enumerate() {
        let Value::Object(fields) = representation else { continue };
        if let (Some(Value::String(typename)), Some(Value::String(id))) = (fields.get("__typename"), fields.get("id")) {
            slots.entry((typename.clone(), id.clone())).or_default().push_back(position);
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{self, LocationKind, SourceKind, SourceName};
    use crate::upstream::UpstreamFailure;

    fn location(native: &str) -> Node {
        Node::Location(Location(Arc::new(model::Location {
            source: SourceName::new("s"),
            source_kind: SourceKind::BusinessCentral,
            native_id: native.to_owned(),
            name: None,
            code: None,
            kind: LocationKind::Warehouse,
            address: None,
            parent_ref: None,
        })))
    }

    fn entry(native: &str) -> Node {
        let entry = model::LedgerEntry::new(
            SourceName::new("s"),
            SourceKind::BusinessCentral,
            native.to_owned(),
            None,
            model::EventType::Other,
        );
        Node::LedgerEntry(LedgerEntry(entry))
    }

    fn code(result: Result<Node, GatewayError>) -> &'static str {
        result.map(|_| ()).unwrap_err().code()
    }

    #[test]
    fn one_hit_is_the_answer_whatever_else_was_looked_up() {
        let found = pick("s:a", vec![Ok(None), Ok(Some(location("a")))]).unwrap();
        assert_eq!(found.kind(), NodeKind::Location);
    }

    #[test]
    fn an_id_two_kinds_hold_is_ambiguous_not_a_guess() {
        let result = pick("s:a", vec![Ok(Some(entry("a"))), Ok(Some(location("a")))]);
        let error = result.map(|_| ()).unwrap_err();
        assert_eq!(error.code(), "AMBIGUOUS_ID");
        assert!(error.to_string().contains("Entry, Location"), "{error}");
    }

    #[test]
    fn no_hit_is_not_found_and_a_failed_lookup_is_its_failure() {
        assert_eq!(code(pick("s:a", vec![Ok(None), Ok(None)])), "NOT_FOUND");
        let failed = UpstreamError::new(&SourceName::new("s"), UpstreamFailure::Unavailable);
        assert_eq!(code(pick("s:a", vec![Ok(Some(entry("a"))), Err(failed)])), "UPSTREAM_UNAVAILABLE");
    }

    #[test]
    fn representations_are_indexed_by_type_and_key() {
        let any = |typename: &str, id: &str| {
            Any(Value::from_json(serde_json::json!({"__typename": typename, "id": id})).unwrap())
        };
        let slots = index(&[any("Item", "s:1"), any("Location", "s:1"), any("Item", "s:1"), Any(Value::Null)]);
        assert_eq!(slots[&("Item".to_owned(), "s:1".to_owned())], [0, 2]);
        assert_eq!(slots[&("Location".to_owned(), "s:1".to_owned())], [1]);
        assert_eq!(slots.len(), 2);
    }
}
