//! The real binary as a child process: what it refuses to start with, what
//! `check-config` prints, and which settings the demo takes. Every child
//! gets a clean environment (no `LEDGER_GATEWAY…` variable of the test
//! run leaks in), listens on loopback only, and every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Far more than any start-up takes; only a hang reaches it.
const WAIT: Duration = Duration::from_secs(60);

fn binary() -> PathBuf {
    std::env::var_os("LEDGER_GATEWAY_BIN").map_or_else(|| env!("CARGO_BIN_EXE_ledger-gateway").into(), PathBuf::from)
}

/// The binary with `args` and only the `env` given (plus logging at info).
fn gateway(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary());
    command.args(args).env_clear().env("RUST_LOG", "info").env("NO_COLOR", "1").envs(env.iter().copied());
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// A configuration file named for the test that writes it.
fn config_file(name: &str, toml: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs a command that must exit by itself; a hang (a gateway that started
/// serving after all) is killed and fails the test.
fn run_to_exit(mut command: Command) -> Output {
    let mut child = command.spawn().expect("the gateway binary starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > WAIT {
            child.kill().unwrap();
            panic!("{command:?} did not exit: {}", String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn serve_refuses_to_start_without_sources_unless_it_is_the_demo() {
    let sourceless = config_file("sourceless", "[server]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_batch = 5\n");
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&[&str], Env); 4] = [
        (&["serve", "--config", &sourceless], &[]),
        (&["serve"], &[("LEDGER_GATEWAY_CONFIG", &sourceless)]),
        // Settings alone, in the environment or as a flag, are configuration too.
        (&["serve"], &[("LEDGER_GATEWAY__SERVER__LISTEN", "127.0.0.1:0")]),
        (&["serve", "--listen", "127.0.0.1:0"], &[]),
    ];
    for (args, env) in cases {
        let output = run_to_exit(gateway(args, env));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains("error: no sources configured: add at least one [sources.<name>] table"), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[test]
fn check_config_prints_the_effective_settings_without_secrets() {
    let file = config_file(
        "check_config",
        r#"[server]
listen = "127.0.0.1:0"
[sources.wms]
kind = "trackstar"
base_url = "https://x.example"
credentials = { api_key = "file-secret-4f1c" }
"#,
    );
    let env = [
        ("LEDGER_GATEWAY__SOURCES__wms__CREDENTIALS__ACCESS_TOKEN", "env-secret-9a2e"),
        ("LEDGER_GATEWAY__SERVER__REQUEST_TIMEOUT_MS", "12345"),
    ];
    let output = run_to_exit(gateway(&["check-config", &file], &env));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    for secret in ["file-secret-4f1c", "env-secret-9a2e"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} shown:\n{stdout}\n{stderr}");
    }
    let shown: toml::Value = toml::from_str(&stdout).expect("the settings print as TOML");
    let credentials = &shown["sources"]["wms"]["credentials"];
    assert_eq!(credentials["api_key"].as_str(), Some("[redacted]"));
    assert_eq!(credentials["access_token"].as_str(), Some("[redacted]"), "the environment overlays the file");
    assert_eq!(shown["server"]["request_timeout_ms"].as_integer(), Some(12345));
    assert_eq!(shown["limits"]["max_batch"].as_integer(), Some(10), "defaults are shown too");

    let invalid = [("LEDGER_GATEWAY__SOURCES__wms__CREDENTIALS__CLIENT_SECRET", "env-secret-9a2e")];
    let output = run_to_exit(gateway(&["check-config", &file], &invalid));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("sources.wms: credentials.client_secret is not a credential"), "{stderr}");
    assert!(!stderr.contains("env-secret-9a2e"), "{stderr}");
}

#[test]
fn check_config_reads_the_safelist_as_serving_would() {
    let file = config_file("check_config_safelist", "[sources.wms]\nkind = \"trackstar\"\nbase_url = \"https://x.example\"\ncredentials = { api_key = \"k\", access_token = \"t\" }\n");
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("check-config-missing-manifest.json");
    let env = [("LEDGER_GATEWAY__SERVER__PERSISTED_QUERIES__SAFELIST", missing.to_str().unwrap())];
    let output = run_to_exit(gateway(&["check-config", &file], &env));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.persisted_queries.safelist: ") && stderr.contains("cannot be read"), "{stderr}");
}

/// A gateway child that is killed when dropped, with its log lines.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("the gateway binary starts");
        let (sender, lines) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || stderr.lines().map_while(Result::ok).try_for_each(|line| sender.send(line)));
        Self { child, lines, log: Vec::new() }
    }

    /// The first log line containing `text`, within [`WAIT`].
    fn line_with(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => self.log.push(line),
                Err(e) => panic!("no {text:?} in the log ({e}):\n{}", self.log.join("\n")),
            }
        }
    }

    /// Stops the child and returns every line it logged.
    fn stop(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut log = std::mem::take(&mut self.log);
        log.extend(self.lines.try_iter());
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_demo_takes_its_settings_from_the_file_and_its_sources_from_the_mock() {
    let file = config_file(
        "demo_settings",
        "[server]\nlisten = \"127.0.0.1:0\"\ngraphiql = false\nintrospection = false\n[limits]\nmax_root_fields = 1\n",
    );
    let mut demo = Running::start(gateway(&["serve", "--demo", "--config", &file], &[]));
    let listening = demo.line_with("listening");
    let addr = listening.rsplit("addr=").next().unwrap().trim();
    assert!(addr.starts_with("127.0.0.1:"), "{listening}");
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let query = |query: &str| client.post(format!("http://{addr}/graphql")).json(&json!({ "query": query })).send();

    let body: Value =
        query("{ ledgerEntries(first: 1) { edges { node { id } } } }").await.unwrap().json().await.unwrap();
    let id = body["data"]["ledgerEntries"]["edges"][0]["node"]["id"].as_str().unwrap_or_default().to_owned();
    assert!(id.contains(':'), "the mock's entries are served: {body}");
    let body: Value = query("{ __schema { queryType { name } } }").await.unwrap().json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "INTROSPECTION_DISABLED", "{body}");
    let body: Value = query("{ a: ledgerEntries(first: 1) { totalCount } b: ledgerEntries(first: 1) { totalCount } }")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "TOO_MANY_ROOT_FIELDS", "{body}");
    let page = client.get(format!("http://{addr}/")).header("accept", "text/html").send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(!page.contains("graphiql"), "GraphiQL is off: {page}");

    let log = demo.stop();
    assert!(log.iter().all(|line| !line.contains("GraphiQL ready")), "{log:#?}");

    let sources =
        "[sources.wms]\nkind = \"pennylane\"\nbase_url = \"https://x.example\"\ncredentials = { token = \"t\" }\n";
    let file = config_file("demo_with_sources", sources);
    let output = run_to_exit(gateway(&["serve", "--demo", "--config", &file], &[]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: --demo serves the mock upstreams, but the configuration also has [sources] (wms)"),
        "{stderr}"
    );
}
