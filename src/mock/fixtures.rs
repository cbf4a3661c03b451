//! Deterministic data for the mock upstreams: the same seed and tenant give
//! the same data on every machine. Each tenant (credential) gets its own data
//! set, so isolation between callers is observable.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use crate::clock::Clock;

/// Mock-wide settings.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Ledger entries per source and tenant.
    pub entries: usize,
    pub seed: u64,
    /// Newest possible entry date; entries spread over the year before it.
    pub anchor: DateTime<Utc>,
    /// The mock's "now": the rate-limit reset times and the timestamps its
    /// answers carry. A gateway pointed at the mock reads the same clock, so
    /// that what it measures from those times is what the mock meant.
    pub clock: Clock,
}

impl MockOptions {
    /// Data up to midnight UTC of `clock`'s today: recent, and stable
    /// through the day.
    pub fn at(clock: Clock) -> Self {
        Self { entries: 3000, seed: 42, anchor: clock.today(), clock }
    }
}

impl Default for MockOptions {
    /// Anchored on the system clock, as the demo runs.
    fn default() -> Self {
        Self::at(Clock::System)
    }
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

/// A day within the year before `anchor` (for date-only fields).
pub fn day_in_year(rng: &mut SmallRng, anchor: DateTime<Utc>) -> NaiveDate {
    (anchor - Duration::days(rng.random_range(1..=365))).date_naive()
}

/// An exact amount with two decimals, between `cents` bounds.
pub fn money(rng: &mut SmallRng, cents: std::ops::Range<i64>) -> Decimal {
    Decimal::new(rng.random_range(cents), 2)
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
