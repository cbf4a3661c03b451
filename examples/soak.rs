//! Soak test: the gateway in a child process, the mock upstreams and the
//! load in this one, on 127.0.0.1 only, with faults injected into the mock,
//! under a fixed request rate for a bounded time. Reports responses by error
//! code, latency percentiles, upstream calls, and the gateway's resident
//! memory every 10 s. The gateway runs alone in its process so that the
//! memory measured is its own, not the mock's or the load generator's.
//!
//! ```sh
//! scripts/soak                                   # 60 s at 5 requests/s
//! scripts/soak --duration-secs 300 --rate 50
//! scripts/soak --faults my-rules.json            # rules as for POST /__mock/faults
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use ledger_gateway::config::Config;
use ledger_gateway::mock::trackstar::ACCESS_TOKEN;
use ledger_gateway::mock::{Mock, MockOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const LEDGER_PAGE: &str = include_str!("../tests/queries/LedgerPage.graphql");
const ENTRY: &str = "query($id: ID!) { ledgerEntry(id: $id) { id quantity } }";
/// Concurrent cursor walks the load cycles through.
const WALKERS: usize = 16;

/// One cursor walk through the merged ledger: its filter and where it is.
#[derive(Clone, Debug, Default)]
struct Walk {
    filter: Value,
    after: Value,
}

/// Where `walker` goes next: on from its cursor, or, at the start of a walk,
/// from a random point of the mock's year of entries. Walks that all began
/// at the top would move in step, share upstream reads for the first half of
/// the ledger and then stop sharing at once, so the load (and the memory it
/// needs) would change halfway through the run; spread out, it is the same
/// from the first minute to the last.
fn walk_step(walks: &Mutex<Vec<Walk>>, walker: usize, rng: &mut SmallRng) -> Walk {
    let current = walks.lock().map(|w| w[walker].clone()).unwrap_or_default();
    if !current.after.is_null() {
        return current;
    }
    let start = chrono::Utc::now() - chrono::Duration::seconds(rng.random_range(0..365 * 86_400));
    Walk { filter: json!({"entryDate": {"lt": start.to_rfc3339()}}), after: Value::Null }
}

#[derive(Debug, Parser)]
#[command(about = "Soak the gateway against faulty mock upstreams")]
struct Args {
    /// How long to send requests.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Requests per second, sent on a fixed schedule whatever the latency.
    #[arg(long, default_value_t = 5)]
    rate: u32,
    /// Ledger entries per source and tenant in the mock.
    #[arg(long, default_value_t = 3000)]
    entries: usize,
    /// Fault rules (JSON, as for POST /__mock/faults) instead of the default mix.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Run without faults.
    #[arg(long, conflicts_with = "faults")]
    no_faults: bool,
    /// Time-to-live of cached items and locations. Shorter than the run, so
    /// the cache reaches its steady size inside it: memory that still grows
    /// after that is a leak, not a filling cache.
    #[arg(long, default_value_t = 60)]
    entity_ttl_secs: u64,
    /// The cache's size bound (`cache.max_bytes`), MiB. Resident memory
    /// levels off at no more than about the process's base plus this.
    #[arg(long, default_value_t = 64)]
    cache_max_mib: u64,
    /// Run only the gateway: its configuration (JSON) is the first line of
    /// stdin, it prints the address it listens on, and it exits when stdin
    /// closes. The soak starts itself this way.
    #[arg(long, hide = true)]
    gateway: bool,
}

/// The default mix: every kind of fault on every upstream, at rates a bad
/// day might bring.
fn default_faults() -> Value {
    let per_upstream = ["trackstar", "business-central", "bigledger", "pennylane"].into_iter().flat_map(|upstream| {
        [
            json!({"upstream": upstream, "status": 503, "rate": 0.04}),
            json!({"upstream": upstream, "status": 429, "headers": {"retry-after": "1"}, "rate": {"every": 50}}),
            json!({"upstream": upstream, "latency_ms": 400, "rate": 0.03}),
            json!({"upstream": upstream, "body": "malformed_json", "rate": 0.01}),
            json!({"upstream": upstream, "body": "truncated", "rate": 0.01}),
            json!({"upstream": upstream, "body": "cut", "rate": 0.01}),
            json!({"upstream": upstream, "body": "html", "rate": 0.005}),
        ]
    });
    // One tenant's credential is broken for good: its circuit opens.
    let broken = json!({"upstream": "trackstar", "credential": "soak-tenant-0", "status": 500});
    Value::Array(per_upstream.chain([broken]).collect())
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Responses without errors, with some errors, and failed at the HTTP level.
    clean: u64,
    partial: u64,
    transport: u64,
    codes: BTreeMap<String, u64>,
}

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// The gateway under soak, in a child process of its own.
struct Gateway {
    child: Child,
    /// Held open: the child stops when it closes, even if this process dies.
    _stdin: ChildStdin,
    url: String,
}

impl Gateway {
    fn spawn(config: &Config) -> Result<Self, Box<dyn Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--gateway")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin to the gateway")?;
        writeln!(stdin, "{}", config_with_credentials(config)?)?;
        let mut addr = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout from the gateway")?).read_line(&mut addr)?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| format!("the gateway did not start: {addr:?}"))?;
        Ok(Gateway { child, _stdin: stdin, url: format!("http://{addr}/graphql") })
    }

    fn resident_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration as JSON for the child. `Config` serializes credentials
/// redacted, so they are put back here.
fn config_with_credentials(config: &Config) -> Result<String, Box<dyn Error>> {
    let mut value = serde_json::to_value(config)?;
    for (name, source) in &config.sources {
        for (field, secret) in &source.credentials {
            value["sources"][name]["credentials"][field] = json!(secret.expose_secret());
        }
    }
    Ok(value.to_string())
}

/// The child's side of [`Gateway::spawn`].
async fn serve_gateway() -> Result<(), Box<dyn Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let config: Config = serde_json::from_str(&line)?;
    let app = ledger_gateway::app(&config)?;
    let listener = tokio::net::TcpListener::bind(LOOPBACK).await?;
    println!("{}", listener.local_addr()?);
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    ledger_gateway::server::listen::serve(listener, app, &config.server, std::future::pending()).await?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.gateway {
        return serve_gateway().await;
    }
    let mock = Mock::start_on(LOOPBACK, MockOptions { entries: args.entries, ..MockOptions::default() }).await?;

    // The demo's four sources plus a second Trackstar tenant, so partial
    // pages happen.
    let mut config = Config { sources: mock.sources_config(), ..Config::default() };
    config.server.request_timeout_ms = 5000;
    config.cache.item_ttl_secs = args.entity_ttl_secs;
    config.cache.location_ttl_secs = args.entity_ttl_secs;
    config.cache.max_bytes = args.cache_max_mib * 1024 * 1024;
    let mut second = config.sources["trackstar"].clone();
    second.credentials.insert("access_token".into(), SecretString::from("soak-second-tenant"));
    config.sources.insert("trackstar-eu".into(), second);
    for source in config.sources.values_mut() {
        source.http.request_timeout_ms = 2000;
        source.http.breaker.cool_down_ms = 5000;
    }
    let gateway_process = Gateway::spawn(&config)?;
    let gateway = gateway_process.url.clone();

    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mock_url = format!("http://{}", mock.addr);
    let ids: Vec<String> =
        mock.state.trackstar.tenant(ACCESS_TOKEN).by_id.iter().map(|r| format!("trackstar:{}", r.id)).collect();
    // Every tenant's data exists before the first memory reading.
    for tenant in (0..5).map(|n| format!("soak-tenant-{n}")).chain(["soak-second-tenant".to_owned()]) {
        mock.state.trackstar.tenant(&tenant);
    }
    let faults = match (&args.faults, args.no_faults) {
        (_, true) => json!([]),
        (Some(path), _) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        (None, _) => default_faults(),
    };
    let installed = client.post(format!("{mock_url}/__mock/faults")).json(&faults).send().await?;
    if !installed.status().is_success() {
        return Err(format!("fault rules refused: {}", installed.text().await?).into());
    }

    let rss_start = gateway_process.resident_kib();
    println!(
        "soak: {} s at {} requests/s against {gateway}, {} fault rules, rss {} KiB at start",
        args.duration_secs,
        args.rate,
        faults.as_array().map_or(0, Vec::len),
        rss_start.map_or("?".into(), |k| k.to_string())
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let walks: Arc<Mutex<Vec<Walk>>> = Arc::new(Mutex::new(vec![Walk::default(); WALKERS]));
    let mut rng = SmallRng::seed_from_u64(7);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let mut sent = 0u64;
    // Resident memory every ten seconds: growth that does not level off is a leak.
    let mut rss_series = Vec::new();
    while started.elapsed() < Duration::from_secs(args.duration_secs) {
        ticks.tick().await;
        if sent % (u64::from(args.rate.max(1)) * 10) == 0 {
            rss_series.push(gateway_process.resident_kib().unwrap_or_default() / 1024);
        }
        sent += 1;
        let (client, gateway, tally, walks) = (client.clone(), gateway.clone(), tally.clone(), walks.clone());
        let walker = rng.random_range(0..WALKERS);
        let lookup = rng.random_bool(0.2).then(|| ids[rng.random_range(0..ids.len())].clone());
        let walk = walk_step(&walks, walker, &mut rng);
        // Some callers bring their own token: per-credential limits and circuits.
        let token = rng.random_bool(0.1).then(|| format!("soak-tenant-{}", rng.random_range(0..5)));
        // Finished requests are reaped as the load goes, so the load
        // generator's own memory stays flat too.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let body = match &lookup {
                Some(id) => json!({"query": ENTRY, "variables": {"id": id}}),
                None => json!({
                    "query": LEDGER_PAGE,
                    "variables": {"first": 50, "filter": walk.filter, "after": walk.after}
                }),
            };
            let mut request = client.post(&gateway).json(&body);
            if let Some(token) = &token {
                request = request.header("x-trackstar-access-token", token);
            }
            let begin = Instant::now();
            let answer: Option<Value> = match request.send().await {
                Ok(response) => response.json().await.ok(),
                Err(_) => None,
            };
            let latency = begin.elapsed();
            if lookup.is_none() && token.is_none() {
                if let Some(info) = answer.as_ref().map(|a| &a["data"]["ledgerEntries"]["pageInfo"]) {
                    let next = if info["hasNextPage"] == true { info["endCursor"].clone() } else { Value::Null };
                    // An empty page has no cursor: that walker asks again.
                    if !(next.is_null() && info["hasNextPage"] == true) {
                        if let Ok(mut walks) = walks.lock() {
                            walks[walker] = Walk { filter: walk.filter, after: next };
                        }
                    }
                }
            }
            let Ok(mut tally) = tally.lock() else { return };
            tally.latencies.push(latency);
            match answer {
                None => tally.transport += 1,
                Some(answer) => {
                    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
                    if errors.is_empty() {
                        tally.clean += 1;
                    } else {
                        tally.partial += 1;
                    }
                    for error in errors {
                        let code = error["extensions"]["code"].as_str().unwrap_or("<none>").to_owned();
                        *tally.codes.entry(code).or_default() += 1;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let rss_end = gateway_process.resident_kib();

    let stats: Value = client.get(format!("{mock_url}/__mock/stats")).send().await?.json().await?;
    let fired: Value = client.get(format!("{mock_url}/__mock/faults")).send().await?.json().await?;
    let mut tally = tally.lock().map_err(|_| "tally lock poisoned")?;
    tally.latencies.sort();
    let lat = |p| percentile(&tally.latencies, p).as_millis();
    println!("requests: {sent} in {:.1} s ({:.1}/s)", elapsed.as_secs_f64(), sent as f64 / elapsed.as_secs_f64());
    println!(
        "responses: {} clean, {} with errors, {} failed at HTTP level",
        tally.clean, tally.partial, tally.transport
    );
    println!("errors by code:");
    for (code, count) in &tally.codes {
        println!("  {code:<28} {count}");
    }
    println!("latency ms: p50 {} p90 {} p99 {} max {}", lat(0.5), lat(0.9), lat(0.99), lat(1.0));
    println!("upstream calls: {}", stats["total"]);
    println!("faults fired:");
    for rule in fired.as_array().into_iter().flatten() {
        let mut shown = rule.clone();
        if let Some(fields) = shown.as_object_mut() {
            fields.remove("upstream");
            fields.remove("matched");
            fields.remove("fired");
        }
        let upstream = rule["upstream"].as_str().unwrap_or("?");
        println!("  {:>6} of {:>6}  {upstream:<16} {shown}", rule["fired"], rule["matched"]);
    }
    let show = |kib: Option<u64>| kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!("gateway resident memory: {} at start, {} at end", show(rss_start), show(rss_end));
    println!("gateway resident memory every 10 s (MiB): {rss_series:?}");
    Ok(())
}
