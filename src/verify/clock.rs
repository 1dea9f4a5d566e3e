//! Time is injected: the timestamp window, the replay store and the limiters read a [`Clock`]
//! that tests can pin.

use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Wall-clock time: timestamps, windows, retention.
    fn now(&self) -> OffsetDateTime;

    /// Time elapsed since some fixed point, never going back: what rate limits measure. By
    /// default the wall clock's time since the Unix epoch (right for a clock tests move).
    fn monotonic(&self) -> Duration {
        let since = self.now() - OffsetDateTime::UNIX_EPOCH;
        Duration::try_from(since).unwrap_or(Duration::ZERO)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The process's monotonic clock: a wall-clock step (NTP, an operator) does not stall or
    /// refill a rate limit.
    fn monotonic(&self) -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// `at + by`, or `None` past the largest representable time. Never panics.
pub fn checked_add(at: OffsetDateTime, by: Duration) -> Option<OffsetDateTime> {
    at.checked_add(time::Duration::try_from(by).ok()?)
}

/// `at - by`, or `None` before the smallest representable time. Never panics.
pub fn checked_sub(at: OffsetDateTime, by: Duration) -> Option<OffsetDateTime> {
    at.checked_sub(time::Duration::try_from(by).ok()?)
}

/// The timestamp window around `now`: its earliest and latest instants, `None` where the edge
/// lies beyond representable time (then that side has no edge). However large `tolerance` is,
/// this does not panic.
pub fn window(
    now: OffsetDateTime,
    tolerance: Duration,
) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    (checked_sub(now, tolerance), checked_add(now, tolerance))
}

/// A clock that stands still until told to move: for tests and the `sign` command.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn at_unix(secs: i64) -> Self {
        Self::new(OffsetDateTime::from_unix_timestamp(secs).expect("valid unix time"))
    }

    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g = checked_add(*g, by).unwrap_or(OffsetDateTime::new_utc(
            time::Date::MAX,
            time::Time::MIDNIGHT,
        ));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_saturates_instead_of_panicking() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let (lo, hi) = window(now, Duration::MAX);
        assert_eq!((lo, hi), (None, None));
        let twenty_thousand_years = Duration::from_secs(20_000 * 365 * 86_400);
        let (lo, hi) = window(now, twenty_thousand_years);
        assert_eq!((lo, hi), (None, None));
        let (lo, hi) = window(now, Duration::from_secs(60));
        assert_eq!(lo.unwrap().unix_timestamp(), 1_700_000_000 - 60);
        assert_eq!(hi.unwrap().unix_timestamp(), 1_700_000_000 + 60);
        let clock = ManualClock::new(now);
        clock.advance(Duration::MAX);
        assert!(clock.now() > now);
    }
}
