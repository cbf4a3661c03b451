//! Cheap lexical passes over raw request text, run before any parser sees
//! it. async-graphql's parser (and serde_json past its own recursion limit)
//! descend recursively into nested values, so a few kilobytes of `[[[[…`
//! could exhaust the stack; these passes are loops over bytes that stop as
//! soon as a limit is crossed.

use super::LimitError;

/// Bounds for [`scan_query`].
#[derive(Clone, Copy, Debug)]
pub struct TextLimits {
    /// Most lexical tokens.
    pub max_tokens: usize,
    /// Deepest nesting of selection-set braces.
    pub max_selection_nesting: usize,
    /// Deepest nesting of list and object values, and of list types, inside
    /// argument or variable-definition parentheses.
    pub max_value_nesting: usize,
    /// The depth limit reported when selections nest too deep.
    pub reported_depth: usize,
}

/// What the scan of a query document found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryShape {
    pub tokens: usize,
    pub selection_nesting: usize,
    pub value_nesting: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Paren,
    Selection,
    Value,
}

/// Counts tokens and nesting of a GraphQL document the way the GraphQL
/// lexer sees it: commas, whitespace, comments and the contents of strings
/// and block strings are not structure. Unbalanced or invalid text is
/// measured, not judged: the parser reports it afterwards.
pub fn scan_query(query: &str, limits: &TextLimits) -> Result<QueryShape, LimitError> {
    let bytes = query.as_bytes();
    let mut shape = QueryShape::default();
    // Heap stack of open delimiters: nesting costs memory, never recursion.
    let mut open: Vec<Open> = Vec::new();
    let (mut parens, mut values, mut selections) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let start = i;
        i += 1;
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => continue,
            0xEF if bytes[start..].starts_with(&[0xEF, 0xBB, 0xBF]) => {
                i = start + 3;
                continue;
            }
            b'#' => {
                while i < bytes.len() && !matches!(bytes[i], b'\n' | b'\r') {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[start..].starts_with(b"\"\"\"") => i = skip_block_string(bytes, start + 3),
            b'"' => i = skip_string(bytes, i),
            b'.' if bytes[start..].starts_with(b"...") => i = start + 3,
            b'(' => {
                open.push(Open::Paren);
                parens += 1;
            }
            b'{' | b'[' => {
                let kind = if byte == b'[' || parens > 0 || values > 0 { Open::Value } else { Open::Selection };
                open.push(kind);
                if kind == Open::Value {
                    values += 1;
                    shape.value_nesting = shape.value_nesting.max(values);
                    if values > limits.max_value_nesting {
                        return Err(LimitError::InputTooDeep { limit: limits.max_value_nesting });
                    }
                } else {
                    selections += 1;
                    shape.selection_nesting = shape.selection_nesting.max(selections);
                    if selections > limits.max_selection_nesting {
                        return Err(LimitError::TooDeep { limit: limits.reported_depth });
                    }
                }
            }
            b')' | b'}' | b']' => match open.pop() {
                Some(Open::Paren) => parens -= 1,
                Some(Open::Value) => values -= 1,
                Some(Open::Selection) => selections -= 1,
                None => {}
            },
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i < bytes.len() && matches!(bytes[i], b'_' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z') {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                while i < bytes.len()
                    && matches!(bytes[i], b'.' | b'+' | b'-' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    i += 1;
                }
            }
            // Punctuators and anything the parser will reject: one token each.
            _ => {}
        }
        shape.tokens += 1;
        if shape.tokens > limits.max_tokens {
            return Err(LimitError::TooManyTokens { limit: limits.max_tokens });
        }
    }
    Ok(shape)
}

/// Index after the closing quote of a string starting at `i` (just after
/// its opening quote), or where an unterminated one stops.
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Index after the closing `"""` of a block string whose body starts at `i`.
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Deepest nesting of arrays and objects in JSON text, stopping early once
/// it exceeds `limit`. Strings are skipped with their escapes; the text is
/// not validated (serde_json does that afterwards, within this bound).
pub fn json_nesting(text: &[u8], limit: usize) -> Result<usize, LimitError> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > limit {
                    return Err(LimitError::InputTooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TextLimits =
        TextLimits { max_tokens: 1000, max_selection_nesting: 10, max_value_nesting: 5, reported_depth: 9 };

    fn shape(query: &str) -> QueryShape {
        scan_query(query, &LIMITS).unwrap()
    }

    #[test]
    fn counts_tokens_like_the_graphql_lexer() {
        // `{` `a` `(` `x` `:` `1.5e3` `)` `}`; commas and comments are ignored.
        assert_eq!(shape("{ a(x: 1.5e3,,) } # { [ ( \"").tokens, 8);
        assert_eq!(shape("query Q($v: [Int!]) { ...F }").tokens, 15);
        assert_eq!(shape("\u{feff}{ a }").tokens, 3);
    }

    #[test]
    fn brackets_inside_strings_block_strings_and_comments_are_not_structure() {
        let text = r#"{ a(s: "[[[{{ \" [[", b: """ [[[ \""" {{{ """) # [[[[[[[
        }"#;
        assert_eq!(shape(text), QueryShape { tokens: 11, selection_nesting: 1, value_nesting: 0 });
    }

    #[test]
    fn values_inside_parentheses_and_list_types_count_as_input_nesting() {
        assert_eq!(shape("{ a(x: {b: [[1]]}) { c { d } } }").value_nesting, 3);
        assert_eq!(shape("query ($v: [[Int]] = [[1]]) { a }").value_nesting, 2);
        assert_eq!(shape("{ a(x: {b: [[1]]}) { c { d } } }").selection_nesting, 3);
    }

    #[test]
    fn refuses_deep_values_deep_selections_and_long_documents() {
        let deep_list = format!("{{ a(x: {}1{}) }}", "[".repeat(6), "]".repeat(6));
        assert_eq!(scan_query(&deep_list, &LIMITS), Err(LimitError::InputTooDeep { limit: 5 }));
        let deep_object = format!("{{ a(x: {}1{}) }}", "{a:".repeat(6), "}".repeat(6));
        assert_eq!(scan_query(&deep_object, &LIMITS), Err(LimitError::InputTooDeep { limit: 5 }));
        let deep_selection = format!("{}a{}", "{a".repeat(11), "}".repeat(11));
        assert_eq!(scan_query(&deep_selection, &LIMITS), Err(LimitError::TooDeep { limit: 9 }));
        let long = format!("{{ {} }}", "a ".repeat(1000));
        assert_eq!(scan_query(&long, &LIMITS), Err(LimitError::TooManyTokens { limit: 1000 }));
    }

    #[test]
    fn unterminated_strings_and_unbalanced_text_do_not_panic() {
        for text in ["\"", "\"\"\"", "\"\\", "\"\"\"\\", ")))}}]]", "(((", "{ a(x: \"abc\n) }", "...", "-", "é{"] {
            let _ = scan_query(text, &LIMITS);
        }
    }

    #[test]
    fn json_nesting_skips_strings_and_stops_early() {
        assert_eq!(json_nesting(br#"{"a": [1, {"b": "[[[[\"[["}]}"#, 10), Ok(3));
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(json_nesting(deep.as_bytes(), 64), Err(LimitError::InputTooDeep { limit: 64 }));
        assert_eq!(json_nesting(br#""\"#, 1), Ok(0));
    }
}
