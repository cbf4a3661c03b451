//! Limits measured on the parsed document, before async-graphql validates
//! it. Fragments are expanded by counting, not by walking: each fragment is
//! measured once and its counts reused at every spread, so a "fragment bomb"
//! (fragments spreading the next one twice, thirty deep) costs thirty steps
//! here and is refused, instead of costing 2^30 steps in a validator.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value, Variables};

use super::{LimitError, Limits, MAX_NESTING};

/// Counts for a selection set with its fragments expanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Fields, at any depth.
    pub fields: usize,
    /// Fields at this level (through inline fragments and spreads).
    pub top_fields: usize,
    pub aliases: usize,
    pub directives: usize,
    /// Deepest field nesting (a leaf field is 1).
    pub depth: usize,
    /// Deepest selection-set nesting below this one, counting fields with
    /// selections, inline fragments and spreads (async-graphql's recursion
    /// depth).
    pub nesting: usize,
}

impl Shape {
    fn add(&mut self, other: Shape, depth: usize, nesting: usize, top_fields: usize) {
        self.fields = self.fields.saturating_add(other.fields);
        self.top_fields = self.top_fields.saturating_add(top_fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
        self.depth = self.depth.max(depth);
        self.nesting = self.nesting.max(nesting);
    }
}

struct Measure<'a> {
    doc: &'a ExecutableDocument,
    fragments: HashMap<&'a str, Shape>,
    in_progress: HashSet<&'a str>,
}

impl<'a> Measure<'a> {
    /// `level` is this set's own nesting, only to bound the recursion: a
    /// fragment measured here is reused elsewhere without recursing.
    fn selection_set(&mut self, set: &'a SelectionSet, level: usize) -> Result<Shape, LimitError> {
        if level > MAX_NESTING {
            return Err(LimitError::TooDeep { limit: MAX_NESTING });
        }
        let mut shape = Shape::default();
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let own = Shape {
                        fields: 1,
                        aliases: usize::from(field.alias.is_some()),
                        directives: field.directives.len(),
                        ..Shape::default()
                    };
                    shape.add(own, 1, 0, 1);
                    if !field.selection_set.node.items.is_empty() {
                        let child = self.selection_set(&field.selection_set.node, level + 1)?;
                        shape.add(child, child.depth + 1, child.nesting + 1, 0);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    shape.add(Shape { directives: inline.directives.len(), ..Shape::default() }, 0, 0, 0);
                    let child = self.selection_set(&inline.selection_set.node, level + 1)?;
                    shape.add(child, child.depth, child.nesting + 1, child.top_fields);
                }
                Selection::FragmentSpread(spread) => {
                    let spread = &spread.node;
                    shape.add(Shape { directives: spread.directives.len(), ..Shape::default() }, 0, 0, 0);
                    if let Some(child) = self.fragment(&spread.fragment_name.node, level + 1)? {
                        shape.add(child, child.depth, child.nesting + 1, child.top_fields);
                    }
                }
            }
        }
        Ok(shape)
    }

    /// A fragment's shape, measured once. Unknown fragments count as empty
    /// (validation reports them); a cycle is refused here because
    /// async-graphql's own recursion check would walk it exponentially.
    fn fragment(&mut self, name: &'a Name, level: usize) -> Result<Option<Shape>, LimitError> {
        let name = name.as_str();
        if let Some(shape) = self.fragments.get(name) {
            return Ok(Some(*shape));
        }
        let Some(definition) = self.doc.fragments.get(name) else { return Ok(None) };
        if !self.in_progress.insert(name) {
            return Err(LimitError::FragmentCycle { fragment: name.to_owned() });
        }
        let mut shape = self.selection_set(&definition.node.selection_set.node, level)?;
        shape.directives = shape.directives.saturating_add(definition.node.directives.len());
        self.in_progress.remove(name);
        self.fragments.insert(name, shape);
        Ok(Some(shape))
    }
}

/// Checks every operation of `doc` against `limits`.
pub fn check_document(doc: &ExecutableDocument, variables: &Variables, limits: &Limits) -> Result<(), LimitError> {
    let mut measure = Measure { doc, fragments: HashMap::new(), in_progress: HashSet::new() };
    for (_, operation) in doc.operations.iter() {
        let operation = &operation.node;
        let mut shape = measure.selection_set(&operation.selection_set.node, 0)?;
        let variable_directives: usize = operation.variable_definitions.iter().map(|v| v.node.directives.len()).sum();
        shape.directives =
            shape.directives.saturating_add(operation.directives.len()).saturating_add(variable_directives);
        check_shape(&shape, limits)?;
        check_root_fields(doc, operation, variables, limits)?;
    }
    Ok(())
}

/// Checks that no operation of `doc`, whose identical selections are
/// merged, selects more than `limits.max_fields` fields, fragments
/// expanded. Returns the fields of the operation `operation_name` selects
/// (none selected runs nothing: 0).
pub fn check_fields(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    limits: &Limits,
) -> Result<usize, LimitError> {
    let mut measure = Measure { doc, fragments: HashMap::new(), in_progress: HashSet::new() };
    let selected = selected_operation(doc, operation_name);
    let limit = limits.config.max_fields;
    let mut selected_fields = 0;
    for (_, operation) in doc.operations.iter() {
        let found = measure.selection_set(&operation.node.selection_set.node, 0)?.fields;
        if found > limit {
            return Err(LimitError::TooManyFields { found, limit });
        }
        if selected.is_some_and(|selected| std::ptr::eq(selected, operation)) {
            selected_fields = found;
        }
    }
    Ok(selected_fields)
}

fn check_shape(shape: &Shape, limits: &Limits) -> Result<(), LimitError> {
    let config = &limits.config;
    let over = |found: usize, limit: usize| (found > limit).then_some((found, limit));
    if shape.nesting > MAX_NESTING || shape.depth > config.max_depth {
        return Err(LimitError::TooDeep { limit: config.max_depth });
    }
    // Every field costs at least 1, so this bounds the complexity
    // async-graphql computes afterwards (and the work of computing it).
    if let Some((found, limit)) = over(shape.fields, config.max_complexity) {
        return Err(LimitError::TooComplex { found, limit });
    }
    if let Some((found, limit)) = over(shape.top_fields, config.max_root_fields) {
        return Err(LimitError::TooManyRootFields { found, limit });
    }
    if let Some((found, limit)) = over(shape.aliases, config.max_aliases) {
        return Err(LimitError::TooManyAliases { found, limit });
    }
    if let Some((found, limit)) = over(shape.directives, config.max_directives) {
        return Err(LimitError::TooManyDirectives { found, limit });
    }
    Ok(())
}

/// Root fields that are gated (introspection, the federation SDL) or whose
/// cost is in their arguments (`_entities`, Relay's `nodes`). Runs after `check_shape`, so
/// the root fields it visits are at most `max_root_fields`.
fn check_root_fields(
    doc: &ExecutableDocument,
    operation: &OperationDefinition,
    variables: &Variables,
    limits: &Limits,
) -> Result<(), LimitError> {
    let mut fields = Vec::new();
    collect_root_fields(doc, &operation.selection_set.node, 0, &mut fields);
    let (mut representations, mut node_ids) = (0usize, 0usize);
    for field in fields {
        match field.name.node.as_str() {
            name @ ("__schema" | "__type") if !limits.introspection => {
                return Err(LimitError::IntrospectionDisabled { field: name.to_owned() });
            }
            "_service" if !limits.introspection && !limits.federation_sdl => {
                return Err(LimitError::IntrospectionDisabled { field: "_service".to_owned() });
            }
            "_entities" => {
                representations = representations.saturating_add(list_length(field, "representations", variables));
            }
            "nodes" => node_ids = node_ids.saturating_add(list_length(field, "ids", variables)),
            _ => {}
        }
    }
    if node_ids > limits.config.max_node_ids {
        return Err(LimitError::TooManyNodeIds { found: node_ids, limit: limits.config.max_node_ids });
    }
    if representations > limits.config.max_representations {
        return Err(LimitError::TooManyRepresentations {
            found: representations,
            limit: limits.config.max_representations,
        });
    }
    Ok(())
}

pub(super) fn collect_root_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    level: usize,
    out: &mut Vec<&'a Field>,
) {
    // Cycles were refused by the measure; the level only bounds the stack.
    if level > MAX_NESTING {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => out.push(&field.node),
            Selection::InlineFragment(inline) => {
                collect_root_fields(doc, &inline.node.selection_set.node, level + 1, out);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect_root_fields(doc, &fragment.node.selection_set.node, level + 1, out);
                }
            }
        }
    }
}

/// How long the list `field`'s argument `name` is (`_entities`
/// representations, `nodes` ids), inline or through a variable; anything
/// else is for validation to reject.
fn list_length(field: &Field, name: &str, variables: &Variables) -> usize {
    let Some(argument) = field.get_argument(name) else { return 0 };
    let value =
        argument.node.clone().into_const_with(|name| Ok::<_, ()>(variables.get(&name).cloned().unwrap_or_default()));
    match value {
        Ok(Value::List(items)) => items.len(),
        _ => 0,
    }
}

/// The operation `operation_name` selects, as async-graphql will pick it.
pub fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;
    use crate::config::LimitsConfig;

    fn limits() -> Limits {
        Limits { config: LimitsConfig::default(), introspection: true, federation_sdl: false }
    }

    fn shape(query: &str) -> Shape {
        let doc = parse_query(query).unwrap();
        let operation = &doc.operations.iter().next().unwrap().1.node;
        let mut measure = Measure { doc: &doc, fragments: HashMap::new(), in_progress: HashSet::new() };
        measure.selection_set(&operation.selection_set.node, 0).unwrap()
    }

    #[test]
    fn counts_expand_fragments() {
        let shape = shape(
            "{ a: x { y @skip(if: true) ...F } ...F }
             fragment F on T @d { b: y z { w } ... on T { v } }",
        );
        // Direct: x, y; F twice: b (aliased), z, w, v.
        assert_eq!(shape.fields, 2 + 2 * 4);
        assert_eq!(shape.top_fields, 1 + 3);
        assert_eq!(shape.aliases, 1 + 2);
        assert_eq!(shape.directives, 1 + 2);
        assert_eq!(shape.depth, 3);
        // x -> spread F -> z's set.
        assert_eq!(shape.nesting, 3);
    }

    #[test]
    fn a_fragment_bomb_is_measured_without_expanding_it() {
        let mut query = String::from("{ ...F0 }\n");
        for i in 0..30 {
            query.push_str(&format!("fragment F{i} on Query {{ ...F{next} ...F{next} }}\n", next = i + 1));
        }
        query.push_str("fragment F30 on Query { a }");
        let doc = parse_query(&query).unwrap();
        let error = check_document(&doc, &Variables::default(), &limits()).unwrap_err();
        assert!(matches!(error, LimitError::TooDeep { .. } | LimitError::TooComplex { .. }), "{error:?}");
        let wide: String =
            (0..20).map(|i| format!("fragment F{i} on Query {{ ...F{} ...F{} }}\n", i + 1, i + 1)).collect();
        let doc = parse_query(format!("{{ ...F0 }}\n{wide}fragment F20 on Query {{ a }}")).unwrap();
        assert_eq!(
            check_document(&doc, &Variables::default(), &limits()),
            Err(LimitError::TooComplex { found: 1 << 20, limit: 20_000 })
        );
    }

    #[test]
    fn fields_are_checked_for_every_operation_and_counted_for_the_selected_one() {
        let mut limits = limits();
        limits.config.max_fields = 4;
        let doc = parse_query("query A { a { b } ...F } query B { c } fragment F on Query { d e }").unwrap();
        assert_eq!(check_fields(&doc, Some("A"), &limits), Ok(4));
        assert_eq!(check_fields(&doc, Some("B"), &limits), Ok(1));
        assert_eq!(check_fields(&doc, None, &limits), Ok(0));
        limits.config.max_fields = 3;
        assert_eq!(check_fields(&doc, Some("B"), &limits), Err(LimitError::TooManyFields { found: 4, limit: 3 }));
    }

    #[test]
    fn fragment_cycles_are_refused() {
        let doc = parse_query("{ ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }").unwrap();
        assert!(matches!(
            check_document(&doc, &Variables::default(), &limits()),
            Err(LimitError::FragmentCycle { .. })
        ));
    }

    #[test]
    fn representations_are_counted_inline_and_through_variables() {
        let mut limits = limits();
        limits.config.max_representations = 2;
        let inline = parse_query(r#"{ _entities(representations: [{}, {}, {}]) { __typename } }"#).unwrap();
        assert_eq!(
            check_document(&inline, &Variables::default(), &limits),
            Err(LimitError::TooManyRepresentations { found: 3, limit: 2 })
        );
        let by_variable =
            parse_query("query ($r: [_Any!]!) { _entities(representations: $r) { __typename } }").unwrap();
        let variables = Variables::from_json(serde_json::json!({"r": [{}, {}]}));
        assert_eq!(check_document(&by_variable, &variables, &limits), Ok(()));
    }

    #[test]
    fn node_ids_are_summed_over_aliases_inline_and_through_variables() {
        let mut limits = limits();
        limits.config.max_node_ids = 3;
        let doc =
            parse_query(r#"query ($ids: [ID!]!) { a: nodes(ids: ["s:1", "s:2"]) { id } b: nodes(ids: $ids) { id } }"#)
                .unwrap();
        let two = Variables::from_json(serde_json::json!({"ids": ["s:3", "s:4"]}));
        assert_eq!(check_document(&doc, &two, &limits), Err(LimitError::TooManyNodeIds { found: 4, limit: 3 }));
        let one = Variables::from_json(serde_json::json!({"ids": ["s:3"]}));
        assert_eq!(check_document(&doc, &one, &limits), Ok(()));
    }

    #[test]
    fn introspection_and_the_sdl_follow_the_switches() {
        let mut limits = limits();
        limits.introspection = false;
        let schema = parse_query("{ ... on Query { __schema { queryType { name } } } }").unwrap();
        assert_eq!(
            check_document(&schema, &Variables::default(), &limits),
            Err(LimitError::IntrospectionDisabled { field: "__schema".into() })
        );
        let sdl = parse_query("{ _service { sdl } }").unwrap();
        assert!(check_document(&sdl, &Variables::default(), &limits).is_err());
        limits.federation_sdl = true;
        assert_eq!(check_document(&sdl, &Variables::default(), &limits), Ok(()));
        let typename = parse_query("{ __typename }").unwrap();
        assert_eq!(check_document(&typename, &Variables::default(), &limits), Ok(()));
    }
}
