//! Where the gateway and the mock upstreams read "now": the date-window
//! walk starts there, `Retry-After` dates and rate-limit reset times are
//! measured from it, and the mock stamps its answers with it. Production
//! reads the system clock; tests fix the instant, so what they assert (exact
//! upstream call counts above all) is the same on every day, at every hour
//! and in every time zone.
//!
//! Only calendar time goes through here. Durations (timeouts, backoff,
//! rate-limit windows) are measured with `tokio::time::Instant`, which
//! knows no date.

use std::sync::Mutex;

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A source of the current instant, cheap to copy into every part that needs one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, in UTC.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
    /// An instant a test moves forward (to expire a token, say); every copy
    /// reads the same one.
    Manual(&'static ManualClock),
}

/// The shared instant behind [`Clock::Manual`]. Leaked, a few bytes per
/// test, so that `Clock` stays `Copy` for every part that holds one.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn starting_at(instant: DateTime<Utc>) -> &'static Self {
        Box::leak(Box::new(Self(Mutex::new(instant))))
    }

    pub fn clock(&'static self) -> Clock {
        Clock::Manual(self)
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Two manual clocks are the same clock only if they are one.
impl PartialEq for ManualClock {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ManualClock {}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Fixed(instant) => *instant,
            Self::Manual(clock) => clock.now(),
        }
    }

    /// Midnight UTC of the current day.
    pub fn today(&self) -> DateTime<Utc> {
        let now = self.now();
        // Truncating to a day only fails for instants near the ends of the
        // representable range.
        now.duration_trunc(Duration::days(1)).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_fixed_clock_always_answers_its_instant() {
        let instant = Utc.with_ymd_and_hms(2028, 2, 29, 23, 59, 59).unwrap();
        let clock = Clock::Fixed(instant);
        assert_eq!((clock.now(), clock.now()), (instant, instant));
        assert_eq!(clock.today(), Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap());
    }

    #[test]
    fn every_copy_of_a_manual_clock_moves_with_it() {
        let instant = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        let manual = ManualClock::starting_at(instant);
        let (clock, copy) = (manual.clock(), manual.clock());
        manual.advance(Duration::hours(1));
        assert_eq!((clock.now(), copy.now()), (instant + Duration::hours(1), instant + Duration::hours(1)));
        assert_eq!(copy.today(), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_ne!(clock, ManualClock::starting_at(instant).clock(), "another manual clock is another clock");
    }
}
