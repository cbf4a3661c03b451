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

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A source of the current instant, cheap to copy into every part that needs one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, in UTC.
    #[default]
    System,
    /// Always this instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Fixed(instant) => *instant,
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
}
