//! How the machine's CPUs spent a run, from the first line of `/proc/stat`: busy (user and
//! system, interrupts included), idle (with I/O wait), and stolen: time the hypervisor ran
//! something else while this guest's virtual CPU was ready to run. On a shared VM the steal
//! moves by the hour (0-30% on this project's machine), and every figure of a run moves with
//! it; reported beside each run (`"cpu"` in the JSON), it tells a slow run on a busy host from a
//! slow target. Only on Linux; elsewhere the run reports none.

/// Cumulative CPU time of every CPU, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    busy: u64,
    idle: u64,
    steal: u64,
}

/// The machine's CPU times now, if `/proc/stat` says.
pub fn now() -> Option<Times> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line: user nice system idle iowait irq softirq steal (guest time is counted in
/// user already).
fn parse(stat: &str) -> Option<Times> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    if f.len() < 4 {
        return None;
    }
    Some(Times {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        idle: at(3) + at(4),
        steal: at(7),
    })
}

/// Shares of the CPU time between `a` and `b`, in percent; `None` when no time passed.
pub fn summary(a: &Times, b: &Times) -> Option<serde_json::Value> {
    let busy = b.busy.checked_sub(a.busy)?;
    let idle = b.idle.checked_sub(a.idle)?;
    let steal = b.steal.checked_sub(a.steal)?;
    let total = busy + idle + steal;
    if total == 0 {
        return None;
    }
    let pct = |n: u64| (n as f64 * 1000.0 / total as f64).round() / 10.0;
    Some(serde_json::json!({
        "busy_pct": pct(busy),
        "idle_pct": pct(idle),
        "steal_pct": pct(steal),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  100 5 40 800 20 3 2 30 0 0\ncpu0 50 2 20 400 10 1 1 15 0 0\nintr 1 2 3\n";

    #[test]
    fn reads_the_machine_line_and_states_shares_of_the_time_between_two_readings() {
        let a = parse(STAT).unwrap();
        assert_eq!(
            a,
            Times {
                busy: 150,
                idle: 820,
                steal: 30
            }
        );
        let b = Times {
            busy: a.busy + 60,
            idle: a.idle + 30,
            steal: a.steal + 10,
        };
        let s = summary(&a, &b).unwrap();
        assert_eq!(s["busy_pct"], 60.0);
        assert_eq!(s["idle_pct"], 30.0);
        assert_eq!(s["steal_pct"], 10.0);
        // No time between them, or a counter that went back: no shares.
        assert_eq!(summary(&a, &a), None);
        assert_eq!(summary(&b, &a), None);
    }

    #[test]
    fn a_stat_without_a_readable_machine_line_is_none() {
        assert_eq!(parse("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse("cpu  1 2 x 4\n"), None);
        assert_eq!(parse("cpu  1 2\n"), None);
        assert_eq!(parse(""), None);
    }

    /// On this (Linux) machine the real file reads, and time passes between two readings.
    #[test]
    fn the_machine_is_read() {
        let a = now().expect("/proc/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut b = now().unwrap();
        while b == a && std::time::Instant::now() < deadline {
            std::hint::black_box((0..100_000u64).sum::<u64>());
            b = now().unwrap();
        }
        let s = summary(&a, &b).expect("some time passed");
        let sum = s["busy_pct"].as_f64().unwrap()
            + s["idle_pct"].as_f64().unwrap()
            + s["steal_pct"].as_f64().unwrap();
        assert!((99.0..=101.0).contains(&sum), "{s}");
    }
}
