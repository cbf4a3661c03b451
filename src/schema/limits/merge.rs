//! Identical selections run once. async-graphql resolves every occurrence
//! of a field, even when the occurrences share a response key and end up
//! as one value in the response: `totalCount` spread 4,000 times through
//! one fragment was 4,000 counts, each holding its futures until the
//! slowest answered. A selection's result is its fields grouped by response
//! key (the spec's CollectFields), so a selection identical to an earlier
//! one of the same set (same field, alias, arguments, directives and
//! sub-selections; a spread of the same fragment with the same directives;
//! an identical inline fragment) adds nothing and is dropped before
//! validation and execution. Selections that are only equivalent
//! (aliases of one field, different fragments selecting it) stay, and count
//! toward `limits.max_fields`.

use std::collections::HashSet;
use std::fmt::{Display, Write};

use async_graphql::parser::types::{Directive, DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned};

/// Drops every selection identical to an earlier one of its selection set,
/// in every operation and fragment of `doc`. Runs on documents whose
/// nesting the limits already bounded, so its recursion is bounded too.
pub fn merge_identical(doc: &mut ExecutableDocument) {
    match &mut doc.operations {
        DocumentOperations::Single(operation) => merge_set(&mut operation.node.selection_set.node),
        DocumentOperations::Multiple(operations) => {
            for operation in operations.values_mut() {
                merge_set(&mut operation.node.selection_set.node);
            }
        }
    }
    for fragment in doc.fragments.values_mut() {
        merge_set(&mut fragment.node.selection_set.node);
    }
}

/// Merges the children first, so selections whose sub-selections only
/// differed by repetitions compare equal.
fn merge_set(set: &mut SelectionSet) {
    for selection in &mut set.items {
        match &mut selection.node {
            Selection::Field(field) => merge_set(&mut field.node.selection_set.node),
            Selection::InlineFragment(inline) => merge_set(&mut inline.node.selection_set.node),
            Selection::FragmentSpread(_) => {}
        }
    }
    let mut seen = HashSet::new();
    set.items.retain(|selection| seen.insert(identity(&selection.node)));
}

/// The selection printed as GraphQL without positions: equal texts are
/// identical selections, since the printing is unambiguous (names are
/// identifiers, strings are quoted with escapes).
fn identity(selection: &Selection) -> String {
    let mut out = String::new();
    write_selection(&mut out, selection);
    out
}

fn write_selection(out: &mut String, selection: &Selection) {
    match selection {
        Selection::Field(field) => {
            let field = &field.node;
            if let Some(alias) = &field.alias {
                out.push_str(&alias.node);
                out.push(':');
            }
            out.push_str(&field.name.node);
            write_arguments(out, &field.arguments);
            write_directives(out, &field.directives);
            write_set(out, &field.selection_set.node);
        }
        Selection::FragmentSpread(spread) => {
            out.push_str("...");
            out.push_str(&spread.node.fragment_name.node);
            write_directives(out, &spread.node.directives);
        }
        Selection::InlineFragment(inline) => {
            // The space keeps it apart from a spread: a fragment name
            // follows `...` directly.
            out.push_str("... ");
            if let Some(condition) = &inline.node.type_condition {
                out.push_str("on ");
                out.push_str(&condition.node.on.node);
            }
            write_directives(out, &inline.node.directives);
            write_set(out, &inline.node.selection_set.node);
        }
    }
}

fn write_set(out: &mut String, set: &SelectionSet) {
    if set.items.is_empty() {
        return;
    }
    out.push('{');
    for selection in &set.items {
        write_selection(out, &selection.node);
        out.push(' ');
    }
    out.push('}');
}

/// Generic over the value type: async-graphql does not export the parser's
/// (variable-holding) one.
fn write_arguments<V: Display>(out: &mut String, arguments: &[(Positioned<Name>, Positioned<V>)]) {
    if arguments.is_empty() {
        return;
    }
    out.push('(');
    for (name, value) in arguments {
        // Writing to a String cannot fail.
        let _ = write!(out, "{}:{} ", name.node, value.node);
    }
    out.push(')');
}

fn write_directives(out: &mut String, directives: &[Positioned<Directive>]) {
    for directive in directives {
        out.push('@');
        out.push_str(&directive.node.name.node);
        write_arguments(out, &directive.node.arguments);
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// The first operation of `query`, merged, printed as its identity.
    fn merged(query: &str) -> String {
        let mut doc = parse_query(query).unwrap();
        merge_identical(&mut doc);
        let operation = &doc.operations.iter().next().unwrap().1.node;
        let mut out = String::new();
        write_set(&mut out, &operation.selection_set.node);
        out
    }

    #[test]
    fn identical_selections_are_kept_once_in_first_position() {
        assert_eq!(merged("{ a b a { x } a b }"), "{a b a{x } }");
        assert_eq!(
            merged("{ ...F x ...F ...F @skip(if: true) } fragment F on Q { a }"),
            "{...F x ...F@skip(if:true ) }"
        );
        assert_eq!(merged("{ ... on Q { a } ... on Q { a } ... { a } ... { a } }"), "{... on Q{a } ... {a } }");
    }

    #[test]
    fn selections_differing_anywhere_are_kept() {
        let distinct = [
            "{ a b: a }",
            "{ a(x: 1) a(x: 2) }",
            r#"{ a(x: "1") a(x: 1) a(x: ONE) a(x: $one) }"#,
            r#"{ a(x: "a\"b") a(x: "a") }"#,
            "{ a @include(if: true) a @include(if: false) a }",
            "{ a { x } a { y } }",
            "{ ...F ... on F { a } ... { a } } fragment F on Q { a }",
        ];
        for query in distinct {
            let doc = parse_query(query).unwrap();
            let count = doc.operations.iter().next().unwrap().1.node.selection_set.node.items.len();
            let mut merged = doc.clone();
            merge_identical(&mut merged);
            let after = merged.operations.iter().next().unwrap().1.node.selection_set.node.items.len();
            assert_eq!(after, count, "{query}");
        }
    }

    #[test]
    fn children_merge_first_so_their_parents_compare_equal() {
        assert_eq!(merged("{ a { x x } a { x } }"), "{a{x } }");
    }

    #[test]
    fn fragments_and_every_named_operation_are_merged() {
        let mut doc = parse_query("query A { a a } query B { b b } fragment F on Q { c c }").unwrap();
        merge_identical(&mut doc);
        for (_, operation) in doc.operations.iter() {
            assert_eq!(operation.node.selection_set.node.items.len(), 1);
        }
        assert_eq!(doc.fragments["F"].node.selection_set.node.items.len(), 1);
    }
}
