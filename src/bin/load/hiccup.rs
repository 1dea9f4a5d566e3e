//! The machine's own stalls during a run, measured the way jHiccup does: a thread that does
//! nothing but sleep 1 ms at a time records how much later than asked it wakes up.
//!
//! On a shared virtual machine the whole guest is sometimes not run for tens or hundreds of
//! milliseconds. Such a pause holds up every request in flight and, with latency counted from
//! when each request was due, every request due during it: one 150 ms pause at 8,000 requests/s
//! is over a thousand late requests, more than the 1% a p99 looks at. Reported beside each run
//! (`"hiccups"` in the JSON), it tells a tail the machine made from one the target made: a run
//! whose p99 is close to its largest hiccup was held up by the machine. The thread also waits
//! for a core like any other, so on a busy machine its small hiccups include that wait; the
//! large ones are the machine's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Histogram;

/// How long the thread asks to sleep each time.
const TICK: Duration = Duration::from_millis(1);

/// A hiccup meter running on its own thread; [`Meter::finish`] stops it.
pub struct Meter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Histogram>>,
}

impl Meter {
    pub fn start() -> Meter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hiccup-meter".into())
            .spawn(move || measure(&flag, std::thread::sleep))
            .ok();
        Meter { stop, thread }
    }

    /// Stops the meter: the histogram of how late each wake-up was (empty when the thread
    /// could not be started).
    pub fn finish(mut self) -> Histogram {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_else(Histogram::new)
    }
}

/// Sleeps [`TICK`] at a time with `sleep` until `stop` (at least once), recording how much
/// longer than asked each sleep took.
fn measure(stop: &AtomicBool, mut sleep: impl FnMut(Duration)) -> Histogram {
    let mut h = Histogram::new();
    loop {
        let asked = Instant::now();
        sleep(TICK);
        h.record(asked.elapsed().saturating_sub(TICK));
        if stop.load(Ordering::Relaxed) {
            return h;
        }
    }
}

/// The summary of a run's hiccups: the largest, how many were over 5 and 10 ms, and how many
/// wake-ups were measured.
pub fn summary(h: &Histogram) -> serde_json::Value {
    serde_json::json!({
        "max_ms": crate::round3(h.max_us as f64 / 1000.0),
        "over_5ms": h.count_over(Duration::from_millis(5)),
        "over_10ms": h.count_over(Duration::from_millis(10)),
        "samples": h.total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sleep that takes 30 ms instead of 1 on its 5th and 9th call is two hiccups over 10 ms,
    /// and the meter stops when told. (The other calls return at once: a busy test machine can
    /// hold a thread for a while at any time, so only a lower bound is asserted.)
    #[test]
    fn a_late_wake_up_is_a_hiccup() {
        let stop = AtomicBool::new(false);
        let mut calls = 0;
        let h = measure(&stop, |_| {
            calls += 1;
            if calls == 5 || calls == 9 {
                std::thread::sleep(Duration::from_millis(30));
            }
            if calls == 12 {
                stop.store(true, Ordering::Relaxed);
            }
        });
        assert_eq!(h.total, 12);
        assert!(h.count_over(Duration::from_millis(10)) >= 2);
        assert!(h.max_us >= 29_000, "{}", h.max_us);
        let s = summary(&h);
        assert!(s["over_10ms"].as_u64().unwrap() >= 2);
        assert!(s["max_ms"].as_f64().unwrap() >= 29.0);
    }

    #[test]
    fn a_meter_finished_at_once_has_sampled_once_at_least() {
        let h = Meter::start().finish();
        assert!(h.total >= 1, "{}", h.total);
    }
}
