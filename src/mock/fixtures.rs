//! Deterministic data for the mock upstreams: the same seed and tenant give
//! the same data on every machine. Each tenant (credential) gets its own data
//! set, so isolation between callers is observable.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Mock-wide settings.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Ledger entries per source and tenant.
    pub entries: usize,
    pub seed: u64,
    /// Newest possible entry date; entries spread over the year before it.
    pub anchor: DateTime<Utc>,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self { entries: 3000, seed: 42, anchor: today() }
    }
}

/// Midnight UTC today: recent data, stable through the day.
pub fn today() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).unwrap_or_else(|_| Utc::now())
}

/// A generator seeded from the mock seed, the upstream and the tenant.
pub fn rng(options: &MockOptions, upstream: &str, tenant: &str) -> SmallRng {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in upstream.bytes().chain([0]).chain(tenant.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    SmallRng::seed_from_u64(options.seed ^ hash)
}

/// A random lowercase hex id of `len` characters.
pub fn hex_id(rng: &mut SmallRng, len: usize) -> String {
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// A whole-second instant within the year before `anchor`.
pub fn instant_in_year(rng: &mut SmallRng, anchor: DateTime<Utc>) -> DateTime<Utc> {
    anchor - Duration::seconds(rng.random_range(1..=365 * 86_400))
}

pub const WAREHOUSE_NAMES: [&str; 12] = [
    "Berlin Hub",
    "Lyon North",
    "Rotterdam Port",
    "Milan DC",
    "Warsaw East",
    "Madrid Sur",
    "Dublin Docks",
    "Oslo Fjord",
    "Prague Central",
    "Vienna West",
    "Lisbon Bay",
    "Zurich Alpine",
];

pub const PRODUCT_WORDS: [&str; 16] = [
    "Widget", "Bracket", "Sprocket", "Gasket", "Hinge", "Valve", "Spindle", "Bearing", "Clamp", "Flange", "Coupling",
    "Rotor", "Piston", "Nozzle", "Bushing", "Lever",
];

pub const ADJECTIVES: [&str; 8] = ["Premium", "Compact", "Heavy", "Standard", "Micro", "Steel", "Carbon", "Eco"];

/// A product name like "Compact Valve 17".
pub fn product_name(rng: &mut SmallRng, n: usize) -> String {
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let word = PRODUCT_WORDS[rng.random_range(0..PRODUCT_WORDS.len())];
    format!("{adjective} {word} {n}")
}

/// A random GUID in canonical form (lowercase, hyphenated).
pub fn guid(rng: &mut SmallRng) -> String {
    let groups: Vec<String> = [8, 4, 4, 4, 12].iter().map(|len| hex_id(rng, *len)).collect();
    groups.join("-")
}
