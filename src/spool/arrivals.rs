//! What has been committed for each sink, and a wake-up when enough has.
//!
//! A sink's worker reads its next batch only when a read can fill it (or its batch timeout
//! comes). Waking it on every group commit instead, to read a few records each time, cost one
//! blocking-pool read per commit per sink, whether or not the commit held anything for that
//! sink: at 8,800 events/s with five sinks, 15,000 thread hand-offs a second competing with
//! ingest for the CPU. Now the writer adds each group's records to the counts of the sinks
//! they are for (each live sink's [`super::SinkState`] holds its own), and wakes a sink's
//! worker only when the count passes the mark the worker set.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// Events and bytes (of event JSON) committed for one sink since the spool opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Arrived {
    pub events: u64,
    pub bytes: u64,
}

/// One sink's counts and its worker's mark.
#[derive(Debug)]
pub struct Arrivals {
    events: AtomicU64,
    bytes: AtomicU64,
    /// Wake the worker once `events` or `bytes` reaches these (`u64::MAX`: nobody waits).
    want_events: AtomicU64,
    want_bytes: AtomicU64,
    wake: Notify,
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals {
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            want_events: AtomicU64::new(u64::MAX),
            want_bytes: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }
}

impl Arrivals {
    /// What has arrived so far.
    pub fn now(&self) -> Arrived {
        Arrived {
            events: self.events.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
        }
    }

    /// Counts a commit's records for this sink (the writer, once they are durable and
    /// readable) and wakes the worker if they reach its mark.
    pub(super) fn add(&self, n: Arrived) {
        let events = self.events.fetch_add(n.events, Ordering::SeqCst) + n.events;
        let bytes = self.bytes.fetch_add(n.bytes, Ordering::SeqCst) + n.bytes;
        if events >= self.want_events.load(Ordering::SeqCst)
            || bytes >= self.want_bytes.load(Ordering::SeqCst)
        {
            self.want_events.store(u64::MAX, Ordering::SeqCst);
            self.want_bytes.store(u64::MAX, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }

    /// Waits until `events` more events or `bytes` more bytes have arrived since `since`
    /// (at once if they have). Cancel-safe; one worker waits on a sink at a time.
    pub async fn wait(&self, since: Arrived, events: u64, bytes: u64) {
        let want_events = since.events.saturating_add(events.max(1));
        let want_bytes = since.bytes.saturating_add(bytes.max(1));
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // The mark is set before the counts are read, and the writer adds before it reads
            // the mark (both sequentially consistent): a commit that reaches the mark is seen
            // by one side or the other, never missed by both.
            self.want_events.store(want_events, Ordering::SeqCst);
            self.want_bytes.store(want_bytes, Ordering::SeqCst);
            let now = self.now();
            if now.events >= want_events || now.bytes >= want_bytes {
                self.want_events.store(u64::MAX, Ordering::SeqCst);
                self.want_bytes.store(u64::MAX, Ordering::SeqCst);
                return;
            }
            woken.await;
            // A wake-up left from an earlier mark may come first: check again.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn arrived(events: u64, bytes: u64) -> Arrived {
        Arrived { events, bytes }
    }

    /// Whether `wait` has returned after the writer's step (the wait runs on this thread, so
    /// one poll after the step tells).
    async fn done(wait: std::pin::Pin<&mut impl std::future::Future<Output = ()>>) -> bool {
        tokio::time::timeout(Duration::ZERO, wait).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_wakes_when_enough_events_or_bytes_have_arrived_not_before() {
        let a = Arrivals::default();
        let other = Arrivals::default();
        let since = a.now();
        let wait = a.wait(since, 3, 1000);
        tokio::pin!(wait);
        assert!(!done(wait.as_mut()).await);
        a.add(arrived(2, 200));
        assert!(
            !done(wait.as_mut()).await,
            "2 of 3 events, 200 of 1000 bytes"
        );
        other.add(arrived(50, 50_000));
        assert!(
            !done(wait.as_mut()).await,
            "another sink's records do not count"
        );
        a.add(arrived(1, 10));
        assert!(done(wait.as_mut()).await, "the third event");

        let since = a.now();
        assert_eq!(since, arrived(3, 210));
        let wait = a.wait(since, 100, 1000);
        tokio::pin!(wait);
        assert!(!done(wait.as_mut()).await);
        a.add(arrived(1, 999));
        assert!(!done(wait.as_mut()).await);
        a.add(arrived(1, 1));
        assert!(done(wait.as_mut()).await, "1000 bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn what_arrived_before_the_wait_began_counts() {
        let a = Arrivals::default();
        let since = a.now();
        a.add(arrived(5, 50));
        let wait = a.wait(since, 5, u64::MAX);
        tokio::pin!(wait);
        assert!(done(wait.as_mut()).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_wake_up_does_not_end_a_wait_too_soon() {
        let a = Arrivals::default();
        // A wait that gave up (its batch timed out) after its mark was reached but before it
        // was polled: the wake-up is left over.
        let mut first = Box::pin(a.wait(a.now(), 1, u64::MAX));
        assert!(!done(first.as_mut()).await);
        a.add(arrived(1, 10));
        drop(first);
        let wait = a.wait(a.now(), 2, u64::MAX);
        tokio::pin!(wait);
        assert!(!done(wait.as_mut()).await);
        a.add(arrived(2, 20));
        assert!(done(wait.as_mut()).await);
    }
}
