//! What one GraphQL request may ask for, enforced before any resolver runs
//! (so before any upstream call). Three stages, cheapest first:
//!
//! 1. [`text`]: a lexical scan of the raw query (tokens, nesting) and of
//!    the variables, before the recursive parser sees them.
//! 2. [`document`]: depth, field count, aliases, root fields, directives,
//!    `_entities` representations, `nodes` ids and the introspection switches, measured
//!    on the parsed document with fragments expanded by counting.
//! 3. [`merge`]: identical selections are merged, then the fields that will
//!    run are counted again (`max_fields`, per operation and per batch).
//! 4. Complexity with `first` weighting, from async-graphql's validation
//!    ([`page_cost`] on paged fields).
//!
//! 4. [`budget`]: the upstream calls the operation would make, against
//!    `limits.max_upstream_calls`.
//!
//! Every refusal is a [`LimitError`] with its own `extensions.code`
//! (`crate::error`). Limits are generic over the schema: nothing here
//! names a field of ours beyond the spec-defined `_entities` (federation)
//! and `nodes` (Relay).

pub mod budget;
pub mod document;
pub mod merge;
pub mod text;

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Value as ConstValue};

use crate::config::{Config, LimitsConfig};
use text::TextLimits;

/// Deepest selection-set nesting (fields with selections, inline fragments,
/// fragment spreads) of any operation; also async-graphql's recursion limit.
pub const MAX_NESTING: usize = 32;
/// Largest allowed `limits.max_input_depth`: JSON bodies get three more
/// levels of envelope and must stay under serde_json's recursion limit (128).
pub const MAX_VALUE_NESTING: usize = 64;
/// Levels a JSON request body adds around a variable's value: the batch
/// array, the request object and the `variables` object.
const JSON_ENVELOPE: usize = 3;
/// How many items a paged field without `first` counts for in complexity:
/// the default `limits.default_page_size`. Complexity functions cannot read
/// the configuration, so a changed default page size is not reflected.
pub const UNSPECIFIED_PAGE_WEIGHT: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("query is nested too deep: at most {limit} levels")]
    TooDeep { limit: usize },
    #[error("query is too complex: complexity {found}, at most {limit}")]
    TooComplex { found: usize, limit: usize },
    #[error("query has too many aliases: {found}, at most {limit}")]
    TooManyAliases { found: usize, limit: usize },
    #[error("operation has too many root fields: {found}, at most {limit}")]
    TooManyRootFields { found: usize, limit: usize },
    #[error("query has too many directives: {found}, at most {limit}")]
    TooManyDirectives { found: usize, limit: usize },
    #[error("query has too many tokens: at most {limit}")]
    TooManyTokens { limit: usize },
    #[error("input values are nested too deep: at most {limit} levels")]
    InputTooDeep { limit: usize },
    #[error("too many _entities representations: {found}, at most {limit}")]
    TooManyRepresentations { found: usize, limit: usize },
    #[error("too many nodes ids: {found}, at most {limit}")]
    TooManyNodeIds { found: usize, limit: usize },
    #[error("{field} is disabled on this server")]
    IntrospectionDisabled { field: String },
    #[error("operation would make about {found} upstream calls, at most {limit}")]
    UpstreamBudget { found: usize, limit: usize },
    #[error("fragment {fragment} spreads itself")]
    FragmentCycle { fragment: String },
    #[error("operation selects too many fields: {found}, at most {limit}")]
    TooManyFields { found: usize, limit: usize },
    #[error("batch selects too many fields: {found}, at most {limit}")]
    BatchTooManyFields { found: usize, limit: usize },
}

/// The limits and switches one schema enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    pub config: LimitsConfig,
    pub introspection: bool,
    pub federation_sdl: bool,
}

impl Limits {
    pub fn new(config: &Config) -> Self {
        Self {
            config: config.limits.clone(),
            introspection: config.server.introspection,
            federation_sdl: config.server.federation_sdl,
        }
    }

    fn text_limits(&self) -> TextLimits {
        TextLimits {
            max_tokens: self.config.max_tokens,
            // The operation's own braces are one level of text nesting.
            max_selection_nesting: MAX_NESTING + 1,
            max_value_nesting: self.config.max_input_depth,
            reported_depth: self.config.max_depth,
        }
    }

    /// Refuses a JSON request body nested deeper than any allowed variable
    /// value could make it, before serde_json builds it.
    pub fn check_json_body(&self, body: &[u8]) -> Result<(), LimitError> {
        text::json_nesting(body, self.config.max_input_depth + JSON_ENVELOPE)
            .map(|_| ())
            .map_err(|_| LimitError::InputTooDeep { limit: self.config.max_input_depth })
    }

    /// Checks a request and leaves its parsed document in it, identical
    /// selections merged, so it is parsed once and repetitions run once.
    /// Returns the fields the operation to run selects.
    pub fn check_request(&self, request: &mut Request) -> ServerResult<usize> {
        let fail = |error: LimitError| error.into_server_error();
        text::scan_query(&request.query, &self.text_limits()).map_err(fail)?;
        let deepest = value_depth(request.variables.values());
        if deepest > self.config.max_input_depth {
            return Err(fail(LimitError::InputTooDeep { limit: self.config.max_input_depth }));
        }
        let variables = request.variables.clone();
        let doc = request.parsed_query().map_err(|e| super::codes::parse_failed(e.clone()))?;
        // The other limits bound the document as written, which is what
        // merging and async-graphql's validation walk.
        document::check_document(doc, &variables, self).map_err(fail)?;
        // async-graphql lends its parsed document only by reference.
        let mut merged = doc.clone();
        merge::merge_identical(&mut merged);
        let fields = document::check_fields(&merged, request.operation_name.as_deref(), self).map_err(fail)?;
        request.set_parsed_query(merged);
        Ok(fields)
    }

    /// Checks every request of a batch as [`Self::check_request`] does, and
    /// refuses the batch when its operations together select more than
    /// `max_fields`: one HTTP request gets one allowance, however it is
    /// split. A request failing its own check counts nothing here; its own
    /// response says why.
    pub fn check_batch<'a>(&self, requests: impl IntoIterator<Item = &'a mut Request>) -> Result<(), LimitError> {
        let found =
            requests.into_iter().filter_map(|request| self.check_request(request).ok()).fold(0, usize::saturating_add);
        let limit = self.config.max_fields;
        if found > limit {
            return Err(LimitError::BatchTooManyFields { found, limit });
        }
        Ok(())
    }

    /// The type of the operation `request` would run, when the query is
    /// within the text limits, parses and names one operation.
    pub fn operation_type(&self, request: &mut Request) -> Option<OperationType> {
        self.operation(request).map(|(ty, _)| ty)
    }

    /// The type and name (`None`: anonymous) of the operation `request`
    /// would run, as [`Self::operation_type`] finds it.
    pub fn operation(&self, request: &mut Request) -> Option<(OperationType, Option<String>)> {
        text::scan_query(&request.query, &self.text_limits()).ok()?;
        let name = request.operation_name.clone();
        let doc = request.parsed_query().ok()?;
        let ty = document::selected_operation(doc, name.as_deref())?.node.ty;
        let name = name.or_else(|| match &doc.operations {
            DocumentOperations::Multiple(operations) => operations.keys().next().map(ToString::to_string),
            DocumentOperations::Single(_) => None,
        });
        Some((ty, name))
    }
}

/// Deepest list/object nesting of `values` (a scalar is 0), without recursion.
fn value_depth<'a>(values: impl Iterator<Item = &'a ConstValue>) -> usize {
    let mut stack: Vec<(&ConstValue, usize)> = values.map(|v| (v, 0)).collect();
    let mut deepest = 0;
    while let Some((value, depth)) = stack.pop() {
        match value {
            ConstValue::List(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            ConstValue::Object(fields) => {
                deepest = deepest.max(depth + 1);
                stack.extend(fields.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Complexity of a paged field: its children count once per requested item
/// (`first`, or [`UNSPECIFIED_PAGE_WEIGHT`]). Use it on every field that
/// takes `first`: `#[graphql(complexity = "limits::page_cost(first, child_complexity)")]`.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let items = first.map_or(UNSPECIFIED_PAGE_WEIGHT, |n| usize::try_from(n).unwrap_or(0).max(1));
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// Complexity of a field that looks up a list of ids: its children count
/// once per id. `#[graphql(complexity = "limits::ids_cost(ids.len(), child_complexity)")]`.
pub fn ids_cost(ids: usize, child_complexity: usize) -> usize {
    ids.max(1).saturating_mul(child_complexity).saturating_add(1)
}

/// The async-graphql extension enforcing [`Limits`].
#[derive(Debug)]
pub struct QueryLimits(Arc<Limits>);

impl QueryLimits {
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(limits))
    }
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension(self.0.clone()))
    }
}

struct QueryLimitsExtension(Arc<Limits>);

#[async_trait::async_trait]
impl Extension for QueryLimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.0.check_request(&mut request)?;
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let limit = self.0.config.max_complexity;
        if result.complexity > limit {
            return Err(vec![LimitError::TooComplex { found: result.complexity, limit }.into_server_error()]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cost_weights_children_by_first_and_never_overflows() {
        assert_eq!(page_cost(Some(10), 3), 31);
        assert_eq!(page_cost(None, 3), 61);
        assert_eq!(page_cost(Some(-5), 3), 4);
        assert_eq!(page_cost(Some(i32::MAX), usize::MAX), usize::MAX);
        assert_eq!(ids_cost(3, 4), 13);
        assert_eq!(ids_cost(0, 4), 5);
    }

    #[test]
    fn value_depth_counts_lists_and_objects() {
        let value = ConstValue::from_json(serde_json::json!({"a": [[1], {"b": []}]})).unwrap();
        assert_eq!(value_depth(std::iter::once(&value)), 4);
        assert_eq!(value_depth(std::iter::once(&ConstValue::Null)), 0);
    }
}
