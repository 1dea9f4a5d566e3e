//! Paced sending (`--rate`): a thread of its own lets each connection's request go when it is
//! due.
//!
//! tokio's timer works in whole milliseconds and rounds a deadline up to the next one: a sender
//! that slept until its request was due went out up to a millisecond late, and all the requests
//! due within a millisecond went out at once. Latency counts from when a request was due, so
//! that lateness was counted against the target, and the target got each millisecond's requests
//! as one burst rather than spread as offered. The pacer thread sleeps to each due time itself
//! (to the operating system's timer slack, about 50 µs on Linux) and wakes the one sender due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// When a paced sender sends: every `every`, from `first`.
#[derive(Clone, Copy)]
pub struct Pace {
    pub first: Instant,
    pub every: Duration,
}

/// The connections' schedules: connection `i` of `n` sends every `n / rate` seconds from
/// `start + i / rate`, so that together they send `rate` requests a second, evenly spread.
pub fn schedules(start: Instant, rate: f64, n: u32) -> Vec<Pace> {
    let every = Duration::from_secs_f64(f64::from(n) / rate);
    (0..n)
        .map(|i| Pace {
            first: start + every / n * i,
            every,
        })
        .collect()
}

/// One sender's side of the pacer (`None`: no pacer thread, tokio's timer instead).
pub struct Gate(Option<Arc<Notify>>);

impl Gate {
    /// Returns once `at` has come: at once when it has, else when the pacer says so. A release
    /// left over from a request that went out late is not taken for the next one.
    pub async fn until(&self, at: Instant) {
        match &self.0 {
            Some(n) => {
                while Instant::now() < at {
                    n.notified().await;
                }
            }
            None => tokio::time::sleep_until(at.into()).await,
        }
    }
}

/// Starts the pacer for `paces`; without a thread for it (which only a machine out of threads
/// refuses), the senders wait on tokio's timer, as they once did, and a warning says so.
pub fn start(paces: &[Pace]) -> (Option<Pacer>, Vec<Gate>) {
    match Pacer::start(paces) {
        Ok((p, gates)) => (Some(p), gates),
        Err(e) => {
            eprintln!(
                "siemgate-load: cannot start the pacer thread ({e}); pacing on tokio's \
                 millisecond timer, requests up to 1 ms late"
            );
            (None, paces.iter().map(|_| Gate(None)).collect())
        }
    }
}

/// The pacer thread; dropping it stops the thread.
pub struct Pacer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Starts releasing the senders of `paces`, one [`Gate`] each, in order of their due times.
    pub fn start(paces: &[Pace]) -> std::io::Result<(Pacer, Vec<Gate>)> {
        let notifies: Vec<Arc<Notify>> = paces.iter().map(|_| Arc::new(Notify::new())).collect();
        let gates = notifies.iter().map(|n| Gate(Some(n.clone()))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let paces = paces.to_vec();
        let thread = std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || release(&paces, &notifies, &flag))?;
        Ok((
            Pacer {
                stop,
                thread: Some(thread),
            },
            gates,
        ))
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Wakes each sender when its next request is due, the earliest first, until `stop`. The due
/// times are computed as the senders compute them (`first + k * every`), so a release never
/// comes before the time its sender waits for.
fn release(paces: &[Pace], notifies: &[Arc<Notify>], stop: &AtomicBool) {
    let mut next: BinaryHeap<Reverse<(Instant, usize)>> = paces
        .iter()
        .enumerate()
        .map(|(i, p)| Reverse((p.first, i)))
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let Some(&Reverse((due, i))) = next.peek() else {
            return;
        };
        let now = Instant::now();
        if due > now {
            // Parked rather than slept, so that stopping need not wait for the next due time.
            std::thread::park_timeout(due - now);
            continue;
        }
        notifies[i].notify_one();
        next.pop();
        next.push(Reverse((due + paces[i].every, i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twelve requests over three connections: each goes out no earlier than it is due, and
    /// the connections' due times interleave evenly.
    #[tokio::test]
    async fn senders_go_when_due_in_order() {
        let start = Instant::now() + Duration::from_millis(5);
        let paces = schedules(start, 2000.0, 3);
        let (pacer, gates) = Pacer::start(&paces).unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = gates
            .into_iter()
            .zip(paces.clone())
            .enumerate()
            .map(|(i, (gate, pace))| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut at = pace.first;
                    for _ in 0..4 {
                        gate.until(at).await;
                        log.lock().unwrap().push((at, i, Instant::now()));
                        at += pace.every;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        drop(pacer);
        let mut log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 12);
        assert!(
            log.iter().all(|(due, _, went)| went >= due),
            "a request went before it was due"
        );
        // The schedule: every 0.5 ms one connection, round robin.
        log.sort_by_key(|(due, _, _)| *due);
        let order: Vec<usize> = log.iter().map(|(_, i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        for w in log.windows(2) {
            assert_eq!(w[1].0 - w[0].0, paces[0].every / 3, "not evenly spread");
        }
    }

    /// A sender that went out late finds the release meant for its late request already there:
    /// it must not take it for the next request, which is not due yet.
    #[tokio::test]
    async fn a_left_over_release_does_not_send_early() {
        let notify = Arc::new(Notify::new());
        let gate = Gate(Some(notify.clone()));
        notify.notify_one();
        let at = Instant::now() + Duration::from_millis(30);
        let waiting = tokio::spawn(async move {
            gate.until(at).await;
            Instant::now()
        });
        // The stale release is taken and found early; a later one past `at` lets it go.
        tokio::time::sleep_until((at + Duration::from_millis(1)).into()).await;
        notify.notify_one();
        let went = waiting.await.unwrap();
        assert!(went >= at);
    }

    /// Stopping does not wait for the next due time, however far off.
    #[test]
    fn stops_at_once() {
        let paces = schedules(Instant::now() + Duration::from_secs(3600), 1.0, 1);
        let (pacer, _gates) = Pacer::start(&paces).unwrap();
        let t = Instant::now();
        drop(pacer);
        assert!(t.elapsed() < Duration::from_secs(60));
    }
}
