//! The global budget for request bodies (`server.max_inflight_body_bytes`): every body being
//! read or held, over every connection, reserves its bytes here first — all of a declared
//! `Content-Length` before reading, else each chunk as it arrives — and gives them back when
//! its request is done. A request that would go over is answered 503 + Retry-After.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::telemetry::{names, Telemetry};

/// Bytes of request bodies in use, over every connection.
pub struct BodyBudget {
    shared: Arc<Shared>,
}

struct Shared {
    used: AtomicU64,
    gauge: metrics::Gauge,
    refusals: metrics::Counter,
}

/// Bytes taken from the budget; given back on drop.
pub struct Reservation {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Shared {
    fn take(&self, n: u64, limit: u64) -> bool {
        match self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= limit)
            }) {
            Ok(_) => {
                // Increments commute: concurrent takes and gives leave the gauge right.
                self.gauge.increment(n as f64);
                true
            }
            Err(_) => {
                self.refusals.increment(1);
                false
            }
        }
    }
}

impl BodyBudget {
    pub fn new(tel: &Telemetry) -> Self {
        BodyBudget {
            shared: Arc::new(Shared {
                used: AtomicU64::new(0),
                gauge: tel.gauge(names::INFLIGHT_BODY_BYTES, &[]),
                refusals: tel.counter(names::BODY_BUDGET_REFUSALS, &[]),
            }),
        }
    }

    /// Takes `n` bytes if that keeps the total within `limit`.
    pub fn reserve(&self, n: u64, limit: u64) -> Option<Reservation> {
        self.shared.take(n, limit).then(|| Reservation {
            shared: self.shared.clone(),
            bytes: n,
        })
    }

    /// Bytes in use now.
    pub fn in_use(&self) -> u64 {
        self.shared.used.load(Ordering::Acquire)
    }
}

impl Reservation {
    /// Takes `n` more bytes if that keeps the total within `limit`.
    pub fn grow(&mut self, n: u64, limit: u64) -> bool {
        let ok = self.shared.take(n, limit);
        if ok {
            self.bytes += n;
        }
        ok
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.shared.used.fetch_sub(self.bytes, Ordering::AcqRel);
            self.shared.gauge.decrement(self.bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_are_given_back() {
        let b = BodyBudget::new(&Telemetry::new());
        let mut a = b.reserve(60, 100).unwrap();
        assert!(b.reserve(50, 100).is_none());
        assert!(a.grow(40, 100));
        assert!(!a.grow(1, 100));
        assert_eq!(b.in_use(), 100);
        drop(a);
        assert_eq!(b.in_use(), 0);
        assert!(b.reserve(100, 100).is_some());
        assert!(b.reserve(u64::MAX, 100).is_none());
    }
}
