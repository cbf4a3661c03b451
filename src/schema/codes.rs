//! Gives every error an `extensions.code`: parse and validation failures get
//! theirs here, where the stage is known; resolver errors carry theirs from
//! `crate::error`; anything left is classified once at the end.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

fn with_code(mut error: ServerError, code: &'static str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

/// Errors async-graphql raises while coercing argument values.
fn is_input_error(message: &str) -> bool {
    ["Failed to parse", "Invalid value for argument", "Internal error: Invalid value"]
        .iter()
        .any(|prefix| message.starts_with(prefix))
}

/// Errors async-graphql raises when a valid document does not say which of
/// its operations to run.
fn is_operation_error(message: &str) -> bool {
    ["Unknown operation named", "Operation name required"].iter().any(|prefix| message.starts_with(prefix))
}

/// The code of an error no stage gave one.
fn fallback_code(message: &str) -> &'static str {
    if is_input_error(message) {
        "BAD_USER_INPUT"
    } else if is_operation_error(message) {
        "OPERATION_RESOLUTION_FAILURE"
    } else {
        "INTERNAL"
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|error| {
                let code = fallback_code(&error.message);
                with_code(error, code)
            })
            .collect();
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(parse_failed)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx)
            .await
            .map_err(|errors| errors.into_iter().map(|e| with_code(e, "GRAPHQL_VALIDATION_FAILED")).collect())
    }
}

/// Longest parse error message returned; the parser's own message quotes
/// the offending source line, which can be the whole (huge) document.
const MAX_PARSE_MESSAGE: usize = 200;

/// A parse error with its code and a short message: the parser's reason
/// (`expected selection_set`...) without the quoted source line; the
/// position stays in `locations`.
pub fn parse_failed(mut error: ServerError) -> ServerError {
    let reason = error.message.lines().find_map(|line| line.trim_start().strip_prefix("= "));
    let message = match reason {
        Some(reason) => format!("syntax error: {reason}"),
        None => error.message.lines().next().unwrap_or_default().to_owned(),
    };
    error.message = match message.char_indices().nth(MAX_PARSE_MESSAGE) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    };
    with_code(error, "GRAPHQL_PARSE_FAILED")
}

/// Whether a response is a request error: it failed before execution (to
/// parse, validate, pass a limit, or pick its operation), so it has no data
/// and no error names a field. An executed request whose non-null root field
/// failed also has `data: null`, but its errors carry their field's `path`.
pub fn is_request_error(response: &Response) -> bool {
    matches!(response.data, Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_keep_the_reason_but_not_the_quoted_source() {
        let query = format!("{{ a(x: \"{}\" ", "secret".repeat(1000));
        let error = async_graphql::parser::parse_query(&query).map(|_| ()).unwrap_err();
        let error = parse_failed(ServerError::from(error));
        assert!(error.message.starts_with("syntax error: expected"), "{}", error.message);
        assert!(!error.message.contains("secret") && error.message.len() < 300, "{}", error.message);
        assert!(!error.locations.is_empty());
        assert_eq!(error.extensions.unwrap().get("code"), Some(&Value::from("GRAPHQL_PARSE_FAILED")));
    }
}
