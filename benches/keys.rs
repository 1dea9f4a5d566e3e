//! The local replay store's key set: lookup and insert cost as the set grows, and the heap a
//! key takes.
//!
//! Sizes come from `SIEMGATE_KEYS_SIZES` (comma-separated key counts; default `1000000`, so the
//! test run of `cargo nextest --all-targets` stays quick). The README's figures:
//! `SIEMGATE_KEYS_SIZES=1000000,10000000,100000000 cargo bench --bench keys`.
//!
//! Each set holds its keys spread over a day's generations, all sealed (as a running gateway
//! seals those new keys no longer go to), keys being SHA-256 prefixes as replay keys are.

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

/// `n` keys inserted over a day (expiries spread over the day's generations), then sealed.
fn filled(n: u64) -> KeySet {
    let mut s = KeySet::new(DAY);
    let step = DAY / GENERATIONS;
    for i in 0..n {
        let expiry = T0 + DAY + (i % GENERATIONS) * step;
        s.insert(key(i), expiry);
    }
    s.seal(T0 + 2 * DAY);
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay_keys");
    for n in sizes() {
        let mut set = filled(n);
        eprintln!(
            "replay_keys/{n}: {:.1} bytes a key ({} keys, {} bytes)",
            set.bytes() as f64 / set.len() as f64,
            set.len(),
            set.bytes()
        );
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("lookup_hit", n), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(set.contains(key(i), T0))
            })
        });
        let mut m = n;
        g.bench_function(BenchmarkId::new("lookup_miss", n), |b| {
            b.iter(|| {
                m += 1;
                black_box(set.contains(key(m), T0))
            })
        });
        let mut next = 2 * n;
        g.bench_function(BenchmarkId::new("insert_new", n), |b| {
            b.iter_batched(
                || {
                    next += 1;
                    key(next)
                },
                |k| set.insert(k, T0 + DAY),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
