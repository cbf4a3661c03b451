//! Stable-Rust fuzzing: runs the targets of `ledger_gateway::fuzzing` (the
//! same functions the cargo-fuzz harness in `fuzz/` calls) on mutated seed
//! inputs for a bounded time. No coverage guidance, so it finds less than
//! libFuzzer, but it needs no nightly toolchain.
//!
//! ```sh
//! cargo run --example fuzz -- [TARGET...] [--seconds N] [--seed N]
//! ```
//!
//! Seeds come from `fuzz/seeds/<target>/`; a panicking input is written to
//! `fuzz/artifacts/<target>/crash-<hash>`, an input slower than a second to
//! `slow-<hash>`. Exits non-zero when anything was found.

// A command-line tool: failing loudly on a broken setup is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ledger_gateway::fuzzing::TARGETS;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MAX_INPUT: usize = 64 * 1024;
const POOL: usize = 512;
const SLOW: Duration = Duration::from_secs(1);

/// Fragments the mutator splices in: structure, names of this schema, and
/// values at the edges of what the gateway accepts.
const DICTIONARY: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "\"\"\"",
    "\\",
    "\\\"\"\"",
    "...",
    "#",
    ":",
    "$",
    "@",
    ",",
    "\n",
    "!",
    "=",
    "query",
    "mutation",
    "subscription",
    "fragment F on Query { ...F }",
    "...F",
    "... on Query",
    "ledgerEntries",
    "ledgerEntry(id: \"trackstar:1\")",
    "_entities(representations: [{__typename: \"LedgerEntry\", id: \"trackstar:1\"}])",
    "_service { sdl }",
    "__schema { types { name } }",
    "__typename",
    "a: ",
    "first: 500",
    "first: -1",
    "first: 2147483647",
    "after: \"v1.e30\"",
    "filter: {entryDate: {lte: \"+262142-12-31T23:59:59.999999999Z\"}}",
    "filter: {ids: [\"trackstar:x\"]}",
    "filter: {sources: [\"nope\"]}",
    "@include(if: true)",
    "@skip(if: $v)",
    "\"query\": \"",
    "\"variables\": {\"v\": ",
    "\"operationName\": \"",
    "query=",
    "&variables=",
    "&operationName=",
    "%7B",
    "%5B",
    "%22",
    "v1.",
    "eyJ",
    "+262142-12-31T23:59:59.999999999Z",
    "-262143-01-01T00:00:00Z",
    "1e400",
    "-0",
    "9223372036854775807",
    "null",
    "\u{feff}",
    "\u{0}",
    "é",
];

struct Found {
    kind: &'static str,
    path: PathBuf,
    detail: String,
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = 0x5eed_u64;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            name => names.push(name.to_owned()),
        }
    }
    let selected: Vec<_> =
        TARGETS.iter().filter(|(name, _)| names.is_empty() || names.iter().any(|n| n == name)).collect();
    assert!(!selected.is_empty(), "unknown target; targets: {:?}", TARGETS.iter().map(|t| t.0).collect::<Vec<_>>());

    // The message of the panic being caught, instead of printing each one.
    static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
    std::panic::set_hook(Box::new(|info| *LAST_PANIC.lock().unwrap() = info.to_string()));

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = 0;
    for (name, target) in selected {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut pool = seeds(&root.join("seeds").join(name));
        let seed_count = pool.len();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut executions = 0u64;
        let mut found: Vec<Found> = Vec::new();
        while Instant::now() < deadline {
            let input = mutate(&mut rng, &pool);
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
            let elapsed = started.elapsed();
            executions += 1;
            let problem = match outcome {
                Err(_) => Some(("crash", LAST_PANIC.lock().unwrap().clone())),
                Ok(()) if elapsed > SLOW => Some(("slow", format!("took {elapsed:?}"))),
                Ok(()) => None,
            };
            if let Some((kind, detail)) = problem {
                let path = save(&root.join("artifacts").join(name), kind, &input);
                if !found.iter().any(|f| f.detail == detail) {
                    found.push(Found { kind, path, detail });
                }
            }
            if pool.len() < POOL {
                pool.push(input);
            } else {
                let slot = rng.random_range(seed_count.min(POOL - 1)..POOL);
                pool[slot] = input;
            }
        }
        println!(
            "{name}: {executions} executions in {seconds} s ({} seeds), {} crashes, {} slow inputs",
            seed_count,
            found.iter().filter(|f| f.kind == "crash").count(),
            found.iter().filter(|f| f.kind == "slow").count(),
        );
        for problem in &found {
            println!("  {} {}: {}", problem.kind, problem.path.display(), problem.detail);
        }
        failures += found.len();
    }
    if failures > 0 {
        std::process::exit(1);
    }
}

fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect())
        .unwrap_or_default();
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

fn mutate(rng: &mut SmallRng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut input = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=input.len());
        match rng.random_range(0..7) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = [0, 0xff, b'{', b'[', b'"', b'(', b'0'][rng.random_range(0..7)];
            }
            2 => {
                let word = DICTIONARY[rng.random_range(0..DICTIONARY.len())];
                input.splice(at..at, word.bytes());
            }
            3 if !input.is_empty() => {
                let end = rng.random_range(at..=input.len().min(at + 64));
                input.drain(at.min(input.len())..end.max(at.min(input.len())));
            }
            4 if at < input.len() => {
                // Repeat a slice: nesting, long lists, many fields.
                let end = rng.random_range(at + 1..=input.len().min(at + 16));
                let slice = input[at..end].to_vec();
                for _ in 0..rng.random_range(1..=256) {
                    input.splice(at..at, slice.iter().copied());
                }
            }
            5 => {
                let other = &pool[rng.random_range(0..pool.len())];
                let from = rng.random_range(0..=other.len());
                let to = rng.random_range(from..=other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let count = rng.random_range(1..=8);
                input.splice(at..at, (0..count).map(|_| rng.random::<u8>()));
            }
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn save(dir: &Path, kind: &str, input: &[u8]) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    std::fs::create_dir_all(dir).expect("artifact directory");
    let path = dir.join(format!("{kind}-{:016x}", hasher.finish()));
    std::fs::write(&path, input).expect("artifact written");
    path
}
