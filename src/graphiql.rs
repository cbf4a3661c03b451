//! Self-hosted GraphiQL.
//!
//! The GraphiQL page and every file it loads are served by the gateway
//! itself; nothing is fetched from a CDN. Two reasons:
//!
//! * the gateway runs in networks without internet access, where a page that
//!   pulls React/GraphiQL from unpkg or jsdelivr would simply stay blank;
//! * a production service should not make its operators' browsers execute
//!   scripts fetched from third parties at page-load time (supply-chain risk,
//!   and it leaks who uses the gateway to the CDN).
//!
//! The browser bundles are vendored, unmodified, in `assets/graphiql/` (see
//! the README there for their npm origin and how to refresh them) and are
//! compiled into the binary with `include_bytes!`.
//!
//! The page contains no inline script and no inline event handlers: the
//! settings (endpoint, default query) are embedded as inert JSON in a
//! `<script type="application/json">` element and read by a small bootstrap
//! script served from [`INIT_JS_PATH`]. The page therefore works under
//! [`CONTENT_SECURITY_POLICY`], which the router mounting [`page`] may send as
//! a `Content-Security-Policy` header.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

/// URL path of the vendored GraphiQL UMD bundle.
pub const GRAPHIQL_JS_PATH: &str = "/graphiql/graphiql.min.js";
/// URL path of the vendored GraphiQL stylesheet.
pub const GRAPHIQL_CSS_PATH: &str = "/graphiql/graphiql.min.css";
/// URL path of the vendored React UMD bundle.
pub const REACT_JS_PATH: &str = "/graphiql/react.production.min.js";
/// URL path of the vendored ReactDOM UMD bundle.
pub const REACT_DOM_JS_PATH: &str = "/graphiql/react-dom.production.min.js";
/// URL path of the bootstrap script that renders GraphiQL (ours, not vendored).
pub const INIT_JS_PATH: &str = "/graphiql/init.js";

/// A Content-Security-Policy the GraphiQL page is compatible with: scripts,
/// styles, XHR only from the gateway's own origin. Fonts and icons in the
/// GraphiQL stylesheet are `data:` URLs. Assumes the GraphQL endpoint passed
/// to [`page`] is same-origin (`connect-src 'self'`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; font-src 'self' data:; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CACHE_CONTROL: &str = "public, max-age=86400";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const GRAPHIQL_JS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.js");
const GRAPHIQL_CSS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.css");
const REACT_JS: &[u8] = include_bytes!("../assets/graphiql/react.production.min.js");
const REACT_DOM_JS: &[u8] = include_bytes!("../assets/graphiql/react-dom.production.min.js");

/// Id of the `<script type="application/json">` element holding the settings.
const CONFIG_ELEMENT_ID: &str = "ledger-gateway-graphiql-config";

/// Bootstrap script: reads the JSON settings and renders GraphiQL full-window.
const INIT_JS: &str = r#"(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("ledger-gateway-graphiql-config").textContent);
  var full = [document.documentElement, document.body, document.getElementById("graphiql")];
  for (var i = 0; i < full.length; i++) {
    full[i].style.height = "100%";
    full[i].style.margin = "0";
    full[i].style.overflow = "hidden";
  }
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: config.endpoint }),
      defaultQuery: config.defaultQuery,
      defaultEditorToolsVisibility: true
    })
  );
})();
"#;

fn asset(body: &'static [u8], content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// Routes serving the vendored GraphiQL/React bundles and the bootstrap
/// script under `/graphiql/…`, all embedded in the binary.
///
/// To merge into a router with state `S`, use
/// `router.merge(assets_router().with_state(()))` (a `Router<()>` can be
/// turned into a `Router<S>` that way).
pub fn assets_router() -> Router {
    Router::new()
        .route(GRAPHIQL_JS_PATH, get(|| async { asset(GRAPHIQL_JS, JS) }))
        .route(GRAPHIQL_CSS_PATH, get(|| async { asset(GRAPHIQL_CSS, CSS) }))
        .route(REACT_JS_PATH, get(|| async { asset(REACT_JS, JS) }))
        .route(REACT_DOM_JS_PATH, get(|| async { asset(REACT_DOM_JS, JS) }))
        .route(INIT_JS_PATH, get(|| async { asset(INIT_JS.as_bytes(), JS) }))
}

/// Serialises `value` as JSON that is safe inside an HTML `<script>` element:
/// every `<`, `>` and `&` becomes a `\u00XX` escape, so neither `</script>`
/// nor `<!--` can appear. These characters only ever occur inside JSON
/// strings, where the escapes are valid and decode to the same text.
fn script_safe_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// The GraphiQL page: loads the self-hosted assets (paths relative to the
/// site root) and renders GraphiQL full-window, sending queries to
/// `endpoint` (normally a same-origin path such as `/graphql`) with
/// `default_query` in the editor.
pub fn page(endpoint: &str, default_query: &str) -> Html<String> {
    let config = script_safe_json(&serde_json::json!({
        "endpoint": endpoint,
        "defaultQuery": default_query,
    }));
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>ledger-gateway</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{GRAPHIQL_CSS_PATH}">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script type="application/json" id="{CONFIG_ELEMENT_ID}">{config}</script>
<script src="{REACT_JS_PATH}"></script>
<script src="{REACT_DOM_JS_PATH}"></script>
<script src="{GRAPHIQL_JS_PATH}"></script>
<script src="{INIT_JS_PATH}"></script>
</body>
</html>
"#
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    /// Extracts and parses the JSON settings embedded in the page.
    fn embedded_config(html: &str) -> serde_json::Value {
        let open = format!(r#"<script type="application/json" id="{CONFIG_ELEMENT_ID}">"#);
        let start = html.find(&open).unwrap() + open.len();
        let len = html[start..].find("</script>").unwrap();
        serde_json::from_str(&html[start..start + len]).unwrap()
    }

    #[test]
    fn page_embeds_endpoint_and_default_query_as_json() {
        let query = "{\n  ledgerEntries(first: 10) { edges { cursor } }\n}";
        let Html(html) = page("/graphql", query);
        assert!(html.contains("<title>ledger-gateway</title>"));
        assert!(html.contains(r#""endpoint":"/graphql""#));
        assert!(html.contains(r#""defaultQuery":"{\n  ledgerEntries(first: 10) { edges { cursor } }\n}""#));
        let config = embedded_config(&html);
        assert_eq!(config["endpoint"], "/graphql");
        assert_eq!(config["defaultQuery"], query);
    }

    #[test]
    fn page_loads_only_local_assets() {
        let Html(html) = page("/graphql", "{ __typename }");
        for path in [GRAPHIQL_CSS_PATH, REACT_JS_PATH, REACT_DOM_JS_PATH, GRAPHIQL_JS_PATH, INIT_JS_PATH] {
            assert!(html.contains(&format!(r#""{path}""#)), "{path} not referenced");
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("//unpkg") && !html.contains("//cdn"));
        // No inline executable script or inline handlers (CSP `script-src 'self'`).
        assert_eq!(html.matches("<script>").count(), 0);
        assert!(!html.contains("onload=") && !html.contains("onclick="));
    }

    #[test]
    fn hostile_strings_cannot_break_out_of_the_script_element() {
        let query = r#"{ a } </script><script>alert(1)</script> <!-- </SCRIPT > & "q" \ "#;
        let endpoint = "/graphql</script><img src=x>";
        let Html(html) = page(endpoint, query);
        // Exactly the 5 script elements we wrote are closed.
        assert_eq!(html.matches("</script>").count(), 5);
        assert_eq!(html.to_ascii_lowercase().matches("</script").count(), 5);
        assert!(!html.contains("<!--"));
        assert!(!html.contains("<img"));
        // And the values survive intact.
        let config = embedded_config(&html);
        assert_eq!(config["endpoint"], endpoint);
        assert_eq!(config["defaultQuery"], query);
    }

    #[test]
    fn init_script_reads_the_config_element() {
        assert!(INIT_JS.contains(CONFIG_ELEMENT_ID));
        assert!(INIT_JS.contains("defaultEditorToolsVisibility: true"));
    }

    #[tokio::test]
    async fn asset_routes_serve_embedded_files() {
        let cases: [(&str, &str, &[u8]); 5] = [
            (GRAPHIQL_JS_PATH, JS, GRAPHIQL_JS),
            (GRAPHIQL_CSS_PATH, CSS, GRAPHIQL_CSS),
            (REACT_JS_PATH, JS, REACT_JS),
            (REACT_DOM_JS_PATH, JS, REACT_DOM_JS),
            (INIT_JS_PATH, JS, INIT_JS.as_bytes()),
        ];
        for (path, content_type, expected) in cases {
            let response = assets_router().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=86400", "{path}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert!(!expected.is_empty(), "{path}");
            assert_eq!(&body[..], expected, "{path}");
        }
    }

    #[tokio::test]
    async fn unknown_asset_is_404() {
        let response =
            assets_router().oneshot(Request::get("/graphiql/missing.js").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
