//! Field errors as the GraphQL spec handles them ("Handling Field Errors"):
//! a field whose resolver fails is `null` in `data`, with its error at its
//! `path`; when the failed field is non-null, its null goes up to the
//! nearest nullable field or list element above it, or to `data` itself.
//!
//! async-graphql 7.2 instead leaves a failed field out of its object, null or
//! not, and never propagates: normalized client caches (Apollo Client, Relay,
//! urql's graphcache) read a missing key as a cache miss or a broken
//! response, and a query whose only field failed came back as `data: null`.
//! Every field and list element resolves through an extension's `resolve`
//! hook with its path and type, so this one extension fixes both.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo};
use async_graphql::{PathSegment, QueryPathNode, QueryPathSegment, Response, ServerError, ServerResult, Value};

#[derive(Debug, Default)]
pub struct FieldErrors;

impl ExtensionFactory for FieldErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Failures::default())
    }
}

/// One request's failed fields.
#[derive(Debug, Default)]
struct Failures {
    /// Errors of the nullable positions made null here: async-graphql keeps
    /// the request's own error list out of an extension's reach.
    errors: Mutex<Vec<ServerError>>,
    /// Non-null positions that failed, whose null has not yet reached a
    /// nullable position above them. Their errors are already recorded.
    pending: Mutex<Vec<Vec<PathSegment>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn path_of(node: &QueryPathNode<'_>) -> Vec<PathSegment> {
    let mut path: Vec<PathSegment> = std::iter::once(node)
        .chain(node.parents())
        .map(|node| match node.segment {
            QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            QueryPathSegment::Index(index) => PathSegment::Index(index),
        })
        .collect();
    path.reverse();
    path
}

impl Failures {
    /// The failed non-null positions at or below `path`, forgotten here:
    /// `path` answers for them now.
    fn take_failures_below(&self, path: &[PathSegment]) -> Vec<Vec<PathSegment>> {
        let mut pending = lock(&self.pending);
        let (below, others) = std::mem::take(&mut *pending).into_iter().partition(|failed| failed.starts_with(path));
        *pending = others;
        below
    }
}

/// Whether each list level of the GraphQL type `ty` holds nullable
/// elements, outermost first: `[[A!]]!` is `[true, false]`.
fn list_levels(ty: &str) -> Vec<bool> {
    let mut levels = Vec::new();
    let mut ty = ty.strip_suffix('!').unwrap_or(ty);
    while let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        levels.push(!inner.ends_with('!'));
        ty = inner.strip_suffix('!').unwrap_or(inner);
    }
    levels
}

/// Nulls the innermost nullable list element of `value` on the way to
/// `failed` (a path below the list field); false when none is nullable.
fn null_element(value: &mut Value, levels: &[bool], failed: &[PathSegment]) -> bool {
    let indexes: Vec<usize> = failed
        .iter()
        .take(levels.len())
        .map_while(|segment| match segment {
            PathSegment::Index(index) => Some(*index),
            PathSegment::Field(_) => None,
        })
        .collect();
    let Some(depth) = levels[..indexes.len()].iter().rposition(|nullable| *nullable) else { return false };
    let mut element = value;
    for index in &indexes[..=depth] {
        match element {
            Value::List(items) if *index < items.len() => element = &mut items[*index],
            // Nulled already, for another failure in it.
            _ => return true,
        }
    }
    *element = Value::Null;
    true
}

#[async_trait::async_trait]
impl Extension for Failures {
    /// Runs for every field, after everything below it resolved, and for
    /// every list element. An element's `return_type` is not reliable
    /// (async-graphql resolves a `Vec`'s elements by reference, and a
    /// reference's type always reads non-null): its field answers for it,
    /// from the field's own type.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let (node, ty) = (info.path_node, info.return_type);
        if matches!(node.segment, QueryPathSegment::Index(_)) {
            return next.run(ctx, info).await;
        }
        let result = next.run(ctx, info).await;
        if result.is_ok() && lock(&self.pending).is_empty() {
            return result;
        }
        let path = path_of(node);
        let failures = self.take_failures_below(&path);
        let error = match result {
            Ok(value) if failures.is_empty() => return Ok(value),
            Ok(Some(mut value)) => {
                let levels = list_levels(ty);
                let mut absorbed = true;
                for failed in &failures {
                    absorbed &= null_element(&mut value, &levels, &failed[path.len()..]);
                }
                if absorbed {
                    return Ok(Some(value));
                }
                None
            }
            Ok(None) => None,
            Err(error) => Some(error),
        };
        if !ty.ends_with('!') {
            lock(&self.errors).extend(error);
            return Ok(Some(Value::Null));
        }
        lock(&self.pending).push(path);
        // async-graphql records a returned error itself (and leaves the field
        // out of an object that becomes null anyway).
        error.map_or(Ok(Some(Value::Null)), Err)
    }

    async fn execute(&self, ctx: &ExtensionContext<'_>, operation: Option<&str>, next: NextExecute<'_>) -> Response {
        let mut response = next.run(ctx, operation).await;
        // A non-null root field failed: nothing above it is nullable but `data`.
        if !lock(&self.pending).is_empty() {
            response.data = Value::Null;
        }
        response.errors.append(&mut lock(&self.errors));
        response
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use serde_json::{json, Value as Json};

    use super::FieldErrors;

    /// A tree where `fails*` fields always fail, nullable or not, at every depth.
    struct Node;

    #[Object]
    impl Node {
        async fn ok(&self) -> i32 {
            1
        }
        async fn fails(&self) -> async_graphql::Result<Option<i32>> {
            Err("nullable failed".into())
        }
        async fn fails_non_null(&self) -> async_graphql::Result<i32> {
            Err("non-null failed".into())
        }
        async fn child(&self) -> Option<Node> {
            Some(Node)
        }
        async fn non_null_child(&self) -> Node {
            Node
        }
        async fn list(&self) -> Vec<Option<Node>> {
            vec![Some(Node), Some(Node)]
        }
        async fn non_null_list(&self) -> Option<Vec<Node>> {
            Some(vec![Node, Node])
        }
        async fn nested(&self) -> Vec<Option<Vec<Node>>> {
            vec![Some(vec![Node]), Some(vec![Node, Node])]
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn node(&self) -> Option<Node> {
            Some(Node)
        }
        async fn non_null_node(&self) -> Node {
            Node
        }
        async fn ok(&self) -> i32 {
            1
        }
    }

    /// `(data, [(path, message)])` of `query`.
    async fn run(query: &str) -> (Json, Vec<(Json, String)>) {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription).extension(FieldErrors).finish();
        let response = serde_json::to_value(schema.execute(query).await).unwrap();
        let mut errors: Vec<(Json, String)> = response["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| (e["path"].clone(), e["message"].as_str().unwrap().to_owned()))
            .collect();
        errors.sort_by_key(|(path, _)| path.to_string());
        (response["data"].clone(), errors)
    }

    fn at(path: Json, message: &str) -> (Json, String) {
        (path, message.to_owned())
    }

    #[tokio::test]
    async fn a_failed_nullable_field_is_null_beside_its_siblings() {
        let (data, errors) = run("{ node { ok fails } ok }").await;
        assert_eq!(data, json!({"node": {"ok": 1, "fails": null}, "ok": 1}));
        assert_eq!(errors, [at(json!(["node", "fails"]), "nullable failed")]);
    }

    #[tokio::test]
    async fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
        let (data, errors) = run("{ node { ok child { ok nonNullChild { failsNonNull } } } ok }").await;
        assert_eq!(data, json!({"node": {"ok": 1, "child": null}, "ok": 1}));
        assert_eq!(errors, [at(json!(["node", "child", "nonNullChild", "failsNonNull"]), "non-null failed")]);
    }

    #[tokio::test]
    async fn a_failed_non_null_root_field_nulls_data() {
        let (data, errors) = run("{ ok nonNullNode { failsNonNull } }").await;
        assert_eq!(data, Json::Null);
        assert_eq!(errors, [at(json!(["nonNullNode", "failsNonNull"]), "non-null failed")]);
    }

    #[tokio::test]
    async fn list_elements_are_nulled_when_nullable_and_the_list_when_not() {
        let (data, errors) = run("{ node { list { ok failsNonNull } nonNullList { ok failsNonNull } } }").await;
        assert_eq!(data, json!({"node": {"list": [null, null], "nonNullList": null}}));
        let paths: Vec<Json> = errors.into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                json!(["node", "list", 0, "failsNonNull"]),
                json!(["node", "list", 1, "failsNonNull"]),
                json!(["node", "nonNullList", 0, "failsNonNull"]),
                json!(["node", "nonNullList", 1, "failsNonNull"]),
            ]
        );
    }

    #[tokio::test]
    async fn in_nested_lists_the_innermost_nullable_level_is_nulled() {
        let (data, errors) = run("{ node { nested { failsNonNull } } }").await;
        assert_eq!(data, json!({"node": {"nested": [null, null]}}));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(super::list_levels("[[Node!]]!"), [true, false]);
        assert_eq!(super::list_levels("Node"), [false; 0]);
    }

    #[tokio::test]
    async fn every_failure_is_reported_once_and_healthy_parts_stay() {
        let (data, errors) = run("{ node { fails list { ok fails } } }").await;
        assert_eq!(
            data,
            json!({"node": {"fails": null, "list": [{"ok": 1, "fails": null}, {"ok": 1, "fails": null}]}})
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
