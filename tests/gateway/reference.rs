//! The configuration as documented: the annotated example loads and
//! validates, and README.md's configuration reference lists every key the
//! configuration has, with the default the code has, and nothing else.

use std::collections::BTreeMap;

use ledger_gateway::config::Config;
use serde_json::Value;

use crate::cli::{gateway, run_to_exit, text};

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ledger-gateway.toml");

#[test]
fn the_example_configuration_validates_with_its_secrets_from_the_environment() {
    let secrets = [
        ("LEDGER_GATEWAY__SOURCES__TRACKSTAR__CREDENTIALS__API_KEY", "k"),
        ("LEDGER_GATEWAY__SOURCES__TRACKSTAR__CREDENTIALS__ACCESS_TOKEN", "t"),
        ("LEDGER_GATEWAY__SOURCES__BUSINESS_CENTRAL__CREDENTIALS__CLIENT_SECRET", "s"),
        ("LEDGER_GATEWAY__SOURCES__BIGLEDGER__CREDENTIALS__API_KEY", "k"),
        ("LEDGER_GATEWAY__SOURCES__BIGLEDGER__CREDENTIALS__COMPANY_ID", "c"),
        ("LEDGER_GATEWAY__SOURCES__PENNYLANE__CREDENTIALS__TOKEN", "t"),
        ("LEDGER_GATEWAY__SERVER__ADMIN_TOKEN", "an-admin-token-of-some-length"),
    ];
    let output = run_to_exit(gateway(&["check-config", EXAMPLE], &secrets));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let shown: toml::Value = toml::from_str(&text(&output.stdout)).unwrap();
    let kinds: Vec<&str> = shown["sources"].as_table().unwrap().values().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["bigledger", "business-central", "pennylane", "trackstar"], "all four upstreams");

    let output = run_to_exit(gateway(&["check-config", EXAMPLE], &secrets[1..]));
    assert_eq!(output.status.code(), Some(1), "a missing secret is an error");
    assert!(text(&output.stderr).contains("sources.trackstar: credentials.api_key or forward.api_key is required"));
}

/// A configuration with every optional table present, so their keys show.
const EVERY_TABLE: &str = r#"
[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "k", access_token = "t" }
http = { rate_limit = { requests = 1, per_ms = 1000 } }
[cache.sources.wms]
[telemetry.otlp]
endpoint = "http://127.0.0.1:4318"
[server.cors]
allow_origins = ["https://app.example.com"]
"#;

/// Every key of the loaded configuration, dotted, with its value; map keys
/// that are names (`sources.wms`) become `<name>`, credential and forward
/// maps one key each.
fn keys(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(fields)
            if !fields.is_empty() && !prefix.ends_with(".credentials") && !prefix.ends_with(".forward") =>
        {
            for (key, value) in fields {
                let named = prefix == "sources" || prefix == "cache.sources";
                let key = if named { "<name>" } else { key.as_str() };
                let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
                keys(value, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), value.clone());
        }
    }
}

/// The reference table's rows: key -> default cell.
fn documented() -> BTreeMap<String, String> {
    let section = README.split("### Configuration reference").nth(1).expect("README has a configuration reference");
    let table = section.split("\n#").next().unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((key.to_owned(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn the_readme_configuration_reference_lists_every_key_with_its_default() {
    let file = crate::cli::config_file("every_table", EVERY_TABLE);
    let config = Config::load(Some(std::path::Path::new(&file))).expect("valid");
    let mut actual = BTreeMap::new();
    keys(&serde_json::to_value(&config).unwrap(), "", &mut actual);
    let given: toml::Value = toml::from_str(EVERY_TABLE).unwrap();
    let mut given_keys = BTreeMap::new();
    keys(&serde_json::to_value(&given).unwrap(), "", &mut given_keys);
    let readme = documented();

    let mut problems = Vec::new();
    for (key, value) in &actual {
        let Some(cell) = readme.get(key) else {
            problems.push(format!("README's configuration reference has no row for `{key}` (default {value})"));
            continue;
        };
        // Values the test supplied, unset options and empty maps have no
        // default to compare.
        if given_keys.contains_key(key) || value.is_null() || value.as_object().is_some_and(|o| o.is_empty()) {
            continue;
        }
        let shown = toml::Value::try_from(value).map(|v| v.to_string()).unwrap_or_else(|_| value.to_string());
        if !cell.starts_with(&format!("`{shown}`")) {
            problems.push(format!("README says `{key}` defaults to {cell}, the code to `{shown}`"));
        }
    }
    for key in readme.keys().filter(|key| !actual.contains_key(*key)) {
        problems.push(format!("README's configuration reference has `{key}`, which the configuration does not"));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
