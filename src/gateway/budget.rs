//! The global budget for request bodies (`server.max_inflight_body_bytes`): every body being
//! read or held, over every connection, reserves its bytes here first — all of a declared
//! `Content-Length` before reading, else each chunk as it arrives — and gives them back when
//! its request is done. A request that would go over is answered 503 + Retry-After.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::telemetry::names;

/// Bytes of request bodies in use, over every connection.
#[derive(Default)]
pub struct BodyBudget {
    used: Arc<AtomicU64>,
}

/// Bytes taken from the budget; given back on drop.
pub struct Reservation {
    used: Arc<AtomicU64>,
    bytes: u64,
}

fn take(used: &AtomicU64, n: u64, limit: u64) -> bool {
    let ok = used
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(n).filter(|t| *t <= limit)
        })
        .is_ok();
    if ok {
        metrics::gauge!(names::INFLIGHT_BODY_BYTES).increment(n as f64);
    } else {
        metrics::counter!(names::BODY_BUDGET_REFUSALS).increment(1);
    }
    ok
}

impl BodyBudget {
    /// Takes `n` bytes if that keeps the total within `limit`.
    pub fn reserve(&self, n: u64, limit: u64) -> Option<Reservation> {
        take(&self.used, n, limit).then(|| Reservation {
            used: self.used.clone(),
            bytes: n,
        })
    }

    /// Bytes in use now.
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

impl Reservation {
    /// Takes `n` more bytes if that keeps the total within `limit`.
    pub fn grow(&mut self, n: u64, limit: u64) -> bool {
        let ok = take(&self.used, n, limit);
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
            self.used.fetch_sub(self.bytes, Ordering::AcqRel);
            metrics::gauge!(names::INFLIGHT_BODY_BYTES).decrement(self.bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_are_given_back() {
        let b = BodyBudget::default();
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
