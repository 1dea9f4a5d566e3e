//! The local replay store's key set: lookup and insert cost as the set grows, and the heap a
//! key takes.
//!
//! Sizes come from `SIEMGATE_KEYS_SIZES` (comma-separated key counts; default `1000000`, so the
//! test run of `cargo nextest --all-targets` stays quick). The README's figures:
//! `SIEMGATE_KEYS_SIZES=1000000,10000000,100000000 cargo bench --bench keys`.
//!
//! Each set holds its keys spread over a day's generations as a running gateway holds them:
//! those new keys no longer go to folded into the index, the current one (a sixteenth of the
//! keys) still in its hash set; keys being SHA-256 prefixes as replay keys are. New keys go to
//! the current generation. `random_read` is the machine's own cost of one random read from as
//! much memory as the set takes (each depending on the one before), for comparison.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use siemgate::spool::keys::{KeySet, GENERATIONS};

const DAY: u64 = 86_400;
const T0: u64 = 1_700_000_000;

fn key(n: u64) -> u128 {
    // splitmix64, twice: uniform like a hash prefix, and cheap to make a hundred million of.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (u128::from(mix(n)) << 64) | u128::from(mix(n ^ 0xdead_beef))
}

fn sizes() -> Vec<u64> {
    std::env::var("SIEMGATE_KEYS_SIZES")
        .unwrap_or_else(|_| "1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The generation new keys go to.
const CURRENT: u64 = T0 + DAY + (GENERATIONS - 1) * (DAY / GENERATIONS);

/// `n` keys inserted over a day, a generation after another as a gateway takes them, each
/// generation folded into the index once new keys go to the next; the current one's stay in
/// its hash set.
fn filled(n: u64) -> KeySet {
    let mut s = KeySet::new(DAY);
    let step = DAY / GENERATIONS;
    for g in 0..GENERATIONS {
        let expiry = T0 + DAY + g * step;
        s.seal(expiry);
        for i in (g..n).step_by(GENERATIONS as usize) {
            s.insert(key(i), expiry);
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_keys");
    for n in sizes() {
        let mut set = filled(n);
        eprintln!(
            "replay_keys/{n}: {:.1} bytes a key ({} keys, {} bytes); process peak RSS {}",
            set.bytes() as f64 / set.len() as f64,
            set.len(),
            set.bytes(),
            siemgate::telemetry::peak_resident_bytes()
                .map_or_else(|| "unknown".into(), |b| format!("{} kB", b / 1024))
        );
        // Each lookup's key depends on the answer before it, so lookups do not overlap: the
        // time is a lookup's latency, as a request sees it, not a batch's throughput.
        let (mut i, mut found) = (0u64, true);
        g.bench_function(BenchmarkId::new("lookup_hit", n), |b| {
            b.iter(|| {
                i = (i + 7918 + u64::from(found)) % n;
                found = set.contains(key(i), T0);
                black_box(found)
            })
        });
        let (mut m, mut found) = (n, false);
        g.bench_function(BenchmarkId::new("lookup_miss", n), |b| {
            b.iter(|| {
                m += 1 + u64::from(found);
                found = set.contains(key(m), T0);
                black_box(found)
            })
        });
        let mut next = 2 * n;
        g.bench_function(BenchmarkId::new("insert_new", n), |b| {
            b.iter_batched(
                || {
                    next += 1;
                    key(next)
                },
                |k| set.insert(k, CURRENT),
                BatchSize::SmallInput,
            )
        });
        // What this machine takes to read 16 random bytes out of as much memory as the set
        // holds, each read's place depending on the one before (as a lookup's reads do): the
        // floor under a lookup, which no layout goes below once the set outgrows the
        // processor's caches.
        let array: Vec<u128> = (0..set.bytes() as u64 / 16).map(key).collect();
        drop(set);
        let (mut at, mut t) = (0usize, 0u64);
        g.bench_function(BenchmarkId::new("random_read", n), |b| {
            b.iter(|| {
                t += 1;
                let h = key(array[at] as u64 ^ t) as u64;
                at = ((u128::from(h) * array.len() as u128) >> 64) as usize;
                black_box(at)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
