//! Where log lines go: a bounded buffer in memory that a thread of its own writes out.
//!
//! The request path logs one line per request. Written straight to stderr that was one
//! `write` per request under stderr's lock; handed to a writer thread line by line (a channel),
//! one wake-up of that thread per line. Either took about a fifth of a core at 8,800
//! requests/s on the 2-core bench machine. Here a line is copied into a buffer under a lock
//! and nothing else: the writer wakes every [`PERIOD`], or sooner once [`FLUSH_AT`] bytes
//! wait, and writes them all at once. A writer that cannot keep up (a stuck log collector)
//! never stalls the request path: past [`LIMIT`] bytes waiting, lines are dropped and counted.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a line waits at most before it is written (while the writer keeps up).
pub const PERIOD: Duration = Duration::from_millis(50);
/// Bytes waiting that wake the writer before its period is up.
const FLUSH_AT: usize = 64 << 10;
/// Bytes waiting at most; a line that would pass it is dropped and counted.
pub const LIMIT: usize = 4 << 20;

struct Shared {
    waiting: Mutex<Vec<u8>>,
    wake: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
}

/// Takes lines ([`std::io::Write`] and, for tracing, `MakeWriter`); cloned freely.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

/// Keeps the writer thread; dropping it writes out what waits and stops the thread.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A buffer whose lines `out` receives, written by a thread named `log-writer`.
pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(LogBuffer, Flusher)> {
    let shared = Arc::new(Shared {
        waiting: Mutex::new(Vec::with_capacity(FLUSH_AT)),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_out(&s, out))?;
    Ok((
        LogBuffer {
            shared: shared.clone(),
        },
        Flusher {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::with_capacity(FLUSH_AT);
    loop {
        let stopping = {
            let waiting = shared.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let (mut waiting, _) = shared
                .wake
                .wait_timeout_while(waiting, PERIOD, |w| {
                    w.len() < FLUSH_AT && !shared.stop.load(Ordering::SeqCst)
                })
                .unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *waiting, &mut spare);
            shared.stop.load(Ordering::SeqCst)
        };
        if !spare.is_empty() {
            // Nowhere to report a failed write to but the log itself: the lines are lost.
            let _ = out.write_all(&spare).and_then(|_| out.flush());
            spare.clear();
            if spare.capacity() > LIMIT {
                spare.shrink_to(FLUSH_AT);
            }
        }
        if stopping {
            return;
        }
    }
}

impl LogBuffer {
    /// Lines dropped so far because [`LIMIT`] bytes were waiting.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for LogBuffer {
    /// Takes `buf` whole (tracing hands over one formatted line per call) or drops it whole.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut waiting = self
            .shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if waiting.len() + buf.len() > LIMIT {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            waiting.extend_from_slice(buf);
            if waiting.len() >= FLUSH_AT && waiting.len() - buf.len() < FLUSH_AT {
                self.shared.wake.notify_one();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test reads back; optionally stuck until released.
    #[derive(Clone, Default)]
    struct Out {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Out {
        fn stuck() -> Out {
            let o = Out::default();
            *o.gate.0.lock().unwrap() = true;
            o
        }
        fn release(&self) {
            *self.gate.0.lock().unwrap() = false;
            self.gate.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (stuck, cv) = &*self.gate;
            drop(cv.wait_while(stuck.lock().unwrap(), |s| *s).unwrap());
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_out_whole_and_in_order_and_all_by_the_time_the_flusher_is_dropped() {
        let out = Out::default();
        let (buf, flusher) = start(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut b = buf.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        b.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(flusher);
        let text = out.text();
        assert_eq!(text.lines().count(), 8000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let want: Vec<String> = (0..2000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, want);
        }
        assert_eq!(buf.dropped(), 0);
    }

    #[test]
    fn a_stuck_output_costs_dropped_lines_not_a_blocked_logger() {
        let out = Out::stuck();
        let (buf, flusher) = start(out.clone()).unwrap();
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        let mut b = buf.clone();
        // The writer takes what waits and blocks on the output; then the buffer fills. None
        // of these writes blocks (the output is stuck throughout): they return, some dropped.
        let lines = 3 * LIMIT / 1024;
        for _ in 0..lines {
            b.write_all(&line).unwrap();
        }
        let dropped = buf.dropped();
        assert!(
            dropped > 0,
            "nothing dropped with {} bytes offered",
            3 * LIMIT
        );
        out.release();
        drop(flusher);
        let written = out.text().len();
        assert!(written <= 2 * LIMIT, "{written} bytes got through");
        assert!(written >= LIMIT - 1024, "only {written} bytes got through");
        assert_eq!(written % 1024, 0, "only whole lines");
    }
}
