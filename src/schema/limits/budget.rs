//! The upstream calls an operation will make, estimated before it runs from
//! each source's batch limits (data in its `SourceInfo`), and refused with
//! `UPSTREAM_BUDGET_EXCEEDED` when that is more than its budget
//! (`limits.max_upstream_calls`, per operation: each operation of a batch
//! has its own). Unlike the other limits
//! this stage knows the root fields that call upstreams, since what a field
//! costs is what it calls:
//!
//! - `items`, `locations`, `item`, `location`, and `_entities` entries,
//!   items and locations: the distinct keys per source and kind, in calls
//!   of that source's batch limit for the kind (`max_keys`, or
//!   `ids_per_read` for entries; the request's loaders ask for a key once,
//!   however many fields name it);
//! - `node` and `nodes`: the same, each id counted as every kind its source
//!   may hold it as (`Source::node_kinds`): an upper bound, since ids found
//!   as entries are not looked up as items or locations;
//! - `ledgerEntry`: one call each;
//! - `ledgerEntries`: at least one call per source it reaches, one more for
//!   `totalCount`.
//!
//! Ledger walks can take more than their first call; the budget stops them
//! while running (`crate::upstream::budget`). Directives are not evaluated:
//! a skipped field counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Field};
use async_graphql::{Name, Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use super::document::{collect_root_fields, selected_operation};
use super::LimitError;
use crate::model::{split_global_id, Item, Location, NodeKind};
use crate::sources::lookup::Entity;
use crate::sources::Registry;
use crate::upstream::budget::{self, CallBudget};

/// Largest allowed `limits.max_upstream_calls`.
pub const MAX_UPSTREAM_CALLS: usize = 100_000;

/// What a root field looks up by id: one kind, or (`None`: `node`,
/// `nodes`) whichever kinds the id's source may hold it as.
type Wanted = Option<NodeKind>;

/// The calls an operation is expected to make, per source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Keys to look up, per source and kind.
    keys: BTreeMap<(String, Wanted), BTreeSet<String>>,
    /// Other calls (ledger pages, counts, single entries), per source.
    calls: BTreeMap<String, usize>,
}

impl Estimate {
    /// The estimate for the operation `operation_name` selects in `doc`;
    /// empty when none is selected (validation reports that).
    pub fn of(doc: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> Self {
        let mut estimate = Self::default();
        let Some(operation) = selected_operation(doc, operation_name) else { return estimate };
        let mut fields = Vec::new();
        collect_root_fields(doc, &operation.node.selection_set.node, 0, &mut fields);
        for field in fields {
            estimate.add_field(doc, field, variables);
        }
        estimate
    }

    fn add_field(&mut self, doc: &ExecutableDocument, field: &Field, variables: &Variables) {
        let argument = |name: &str| argument(field, name, variables);
        match field.name.node.as_str() {
            "items" => self.add_ids(Some(NodeKind::Item), argument("ids")),
            "locations" => self.add_ids(Some(NodeKind::Location), argument("ids")),
            "item" => self.add_ids(Some(NodeKind::Item), argument("id")),
            "location" => self.add_ids(Some(NodeKind::Location), argument("id")),
            "node" => self.add_ids(None, argument("id")),
            "nodes" => self.add_ids(None, argument("ids")),
            "ledgerEntry" => {
                let id = argument("id");
                if let Some((source, _)) = id.as_ref().and_then(text).and_then(split_global_id) {
                    *self.calls.entry(source.to_owned()).or_default() += 1;
                }
            }
            "_entities" => self.add_representations(argument("representations")),
            "ledgerEntries" => {
                let per_source = 1 + usize::from(selects(doc, field, "totalCount"));
                let sources = argument("filter").and_then(|filter| match filter {
                    Value::Object(mut fields) => fields.shift_remove("sources"),
                    _ => None,
                });
                let sources = match sources {
                    Some(Value::List(names)) => names.iter().filter_map(text).map(str::to_owned).collect(),
                    _ => vec![ALL_SOURCES.to_owned()],
                };
                for source in sources {
                    *self.calls.entry(source).or_default() += per_source;
                }
            }
            _ => {}
        }
    }

    /// One id or a list of them; anything else is for validation.
    fn add_ids(&mut self, wanted: Wanted, ids: Option<Value>) {
        let ids = match ids {
            Some(Value::List(ids)) => ids,
            Some(id) => vec![id],
            None => return,
        };
        for id in ids.iter().filter_map(text) {
            if let Some((source, native)) = split_global_id(id) {
                self.keys.entry((source.to_owned(), wanted)).or_default().insert(native.to_owned());
            }
        }
    }

    fn add_representations(&mut self, representations: Option<Value>) {
        let Some(Value::List(representations)) = representations else { return };
        for representation in representations {
            let Value::Object(fields) = representation else { continue };
            let kind = match fields.get("__typename").and_then(text) {
                Some("Item") => NodeKind::Item,
                Some("Location") => NodeKind::Location,
                Some("LedgerEntry") => NodeKind::Entry,
                _ => continue,
            };
            self.add_ids(Some(kind), fields.get("id").cloned());
        }
    }

    /// Total calls over the sources `registry` has (others cost nothing:
    /// they answer null or an error without a call).
    pub fn total(&self, registry: &Registry) -> usize {
        let configured = registry.sources().count();
        let calls: usize = self
            .calls
            .iter()
            .map(|(source, calls)| match source.as_str() {
                ALL_SOURCES => calls.saturating_mul(configured),
                name => registry.get(name).map_or(0, |_| *calls),
            })
            .fold(0, usize::saturating_add);
        let lookups = self.lookups(registry).into_iter().map(|((source, kind), keys)| {
            let Some(capabilities) = registry.get(source).map(|source| source.capabilities()) else { return 0 };
            let per_call = match kind {
                NodeKind::Entry => Some(capabilities.ids_per_read),
                NodeKind::Item => Item::limits(capabilities).map(|limits| limits.max_keys),
                NodeKind::Location => Location::limits(capabilities).map(|limits| limits.max_keys),
            };
            per_call.map_or(0, |per_call| keys.len().div_ceil(per_call.max(1)))
        });
        lookups.fold(calls, usize::saturating_add)
    }

    /// The keys each configured source's loader of each kind gets: an id
    /// wanted as any kind counts for every kind its source may hold it as.
    fn lookups<'a>(&'a self, registry: &'a Registry) -> BTreeMap<(&'a str, NodeKind), BTreeSet<&'a str>> {
        let mut lookups: BTreeMap<(&str, NodeKind), BTreeSet<&str>> = BTreeMap::new();
        for ((name, wanted), keys) in &self.keys {
            let Some(source) = registry.get(name) else { continue };
            for key in keys {
                let kinds = wanted.map_or_else(|| source.node_kinds(key), |kind| vec![kind]);
                for kind in kinds {
                    lookups.entry((source.name().as_str(), kind)).or_default().insert(key);
                }
            }
        }
        lookups
    }
}

/// Stands for every configured source (a ledger query without `sources`);
/// not a valid source name, so no source is called that.
const ALL_SOURCES: &str = "";

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// The value of `field`'s argument `name`, variables substituted.
fn argument(field: &Field, name: &str, variables: &Variables) -> Option<Value> {
    let value = field.get_argument(name)?.node.clone();
    value.into_const_with(|name: Name| Ok::<_, ()>(variables.get(&name).cloned().unwrap_or_default())).ok()
}

/// Whether `field`'s selection names `wanted` directly (through fragments).
fn selects(doc: &ExecutableDocument, field: &Field, wanted: &str) -> bool {
    let mut children = Vec::new();
    collect_root_fields(doc, &field.selection_set.node, 0, &mut children);
    children.iter().any(|child| child.name.node.as_str() == wanted)
}

/// The async-graphql extension that gives each operation its budget of
/// upstream calls (so each operation of a batch has its own: they run
/// concurrently) and refuses one whose estimate exceeds it. The estimate is
/// taken when the request is prepared (its document parsed) and checked once
/// the document validates, so invalid documents get their validation errors,
/// not this one.
#[derive(Debug)]
pub struct UpstreamBudget {
    limit: usize,
}

impl UpstreamBudget {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl ExtensionFactory for UpstreamBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(BudgetCheck { limit: self.limit, estimate: Mutex::default() })
    }
}

/// One operation's budget: created per request, so the estimate is its own.
struct BudgetCheck {
    limit: usize,
    estimate: Mutex<Option<Estimate>>,
}

#[async_trait::async_trait]
impl Extension for BudgetCheck {
    /// Everything the operation does, resolvers and the loaders' tasks
    /// included, charges this budget.
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        budget::within(CallBudget::new(self.limit), next.run(ctx)).await
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let (name, variables) = (request.operation_name.clone(), request.variables.clone());
        if let Ok(doc) = request.parsed_query() {
            let estimate = Estimate::of(doc, name.as_deref(), &variables);
            *self.estimate.lock().unwrap_or_else(|p| p.into_inner()) = Some(estimate);
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let estimate = self.estimate.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (Some(estimate), Ok(registry)) = (estimate, ctx.data::<Arc<Registry>>()) else { return Ok(result) };
        let found = estimate.total(registry);
        if found > self.limit {
            return Err(vec![LimitError::UpstreamBudget { found, limit: self.limit }.into_server_error()]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn estimate(query: &str, variables: serde_json::Value) -> Estimate {
        let doc = parse_query(query).unwrap();
        Estimate::of(&doc, None, &Variables::from_json(variables))
    }

    #[test]
    fn keys_are_counted_once_per_source_and_kind() {
        let estimate = estimate(
            r#"query ($ids: [ID!]!) { a: items(ids: $ids) { id } b: items(ids: $ids) { id }
               item(id: "s:3") { id } location(id: "s:3") { id } ... on Query { items(ids: ["t:1", "bad"]) { id } } }"#,
            serde_json::json!({"ids": ["s:1", "s:2", "s:1"]}),
        );
        let keys: Vec<(&str, Wanted, usize)> =
            estimate.keys.iter().map(|((s, r), keys)| (s.as_str(), *r, keys.len())).collect();
        let (item, location) = (Some(NodeKind::Item), Some(NodeKind::Location));
        assert_eq!(keys, [("s", item, 3), ("s", location, 1), ("t", item, 1)]);
    }

    #[test]
    fn entities_and_nodes_are_keys_and_ledger_entry_a_call() {
        let estimate = estimate(
            r#"{ ledgerEntry(id: "s:9") { id } node(id: "s:1") { id } nodes(ids: ["s:1", "s:2", "t:3"]) { id }
                 _entities(representations: [{__typename: "LedgerEntry", id: "t:1"}, {__typename: "LedgerEntry", id: "t:2"}]) { __typename } }"#,
            serde_json::json!({}),
        );
        assert_eq!(estimate.calls, BTreeMap::from([("s".into(), 1)]));
        let keys: Vec<(&str, Wanted, usize)> =
            estimate.keys.iter().map(|((s, r), keys)| (s.as_str(), *r, keys.len())).collect();
        assert_eq!(keys, [("s", None, 2), ("t", None, 1), ("t", Some(NodeKind::Entry), 2)]);
    }

    #[test]
    fn ledger_fields_count_per_source_reached() {
        let estimate = estimate(
            r#"{ a: ledgerEntries(filter: {sources: ["s", "t"]}) { totalCount nodes { id } }
                 b: ledgerEntries { nodes { id } }
                 ledgerEntry(id: "s:9") { id }
                 _entities(representations: [{__typename: "LedgerEntry", id: "t:1"}, {__typename: "Item", id: "s:1"}]) { __typename } }"#,
            serde_json::json!({}),
        );
        assert_eq!(estimate.calls, BTreeMap::from([("".into(), 1), ("s".into(), 3), ("t".into(), 2)]));
        assert_eq!(estimate.keys.len(), 2);
    }
}
