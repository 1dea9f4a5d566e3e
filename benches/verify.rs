//! End-to-end cost of verifying one webhook request, per vendor family and body size, and of the
//! in-memory replay store.
//!
//! Each verify benchmark signs a valid JSON body of the target size with the vendor's own
//! `sign()` at a fixed timestamp, then measures `siemgate::verify::verify` at `now` equal to that
//! timestamp: header lookup, MAC (or token compare), constant-time comparison, the signed-bytes
//! digest, JSON parse of the body and the window check. Building the `Unverified` request (a
//! `HeaderMap` clone) happens in the untimed setup of `iter_batched`.
//!
//! Run with `cargo bench --bench verify`; filter with e.g. `cargo bench --bench verify -- 64KiB`.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use time::OffsetDateTime;

use siemgate::config::{Secret, VendorOptions};
use siemgate::replay::{MemoryStore, ReplayKey, ReplayStore, Seen};
use siemgate::vendors::{scheme_for, Vendor, VendorKind};
use siemgate::verify::{verify, Key, Unverified, Verifier};

/// A fixed signing time (2023-11-14T22:13:20Z); verification runs at the same instant.
const TS: i64 = 1_700_000_000;
const TOLERANCE: Duration = Duration::from_secs(300);
const EVENT_ID: &str = "evt-0001-bench";

/// One vendor per signing family, with a secret of the form that vendor expects.
const FAMILIES: &[(VendorKind, &str)] = &[
    // hex HMAC-SHA256 of the body, prefixed header
    (VendorKind::Github, "bench-github-secret"),
    // timestamped "t=..,v1=.." list header over "{t}.{body}"
    (VendorKind::Stripe, "whsec_bench_stripe_secret"),
    // whsec_ base64 key, base64 HMAC over "{id}.{ts}.{body}"
    (
        VendorKind::StandardWebhooks,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    // comma-separated list of base64 HMACs of the body
    (VendorKind::Soteri, "bench-soteri-secret"),
    // "v0:{ts}:{body}" hex HMAC
    (VendorKind::Slack, "bench-slack-secret"),
    // HMAC key derived per request from "{timestamp}_{secret}"
    (VendorKind::Spectral, "bench-spectral-secret"),
    // shared token in a header, constant-time equality
    (VendorKind::Okta, "bench-okta-token"),
];

const SIZES: &[(usize, &str)] = &[(1024, "1KiB"), (64 * 1024, "64KiB")];

/// The vendor's sample body with a `padding` string field making it exactly `size` bytes (or
/// its natural size when that is already larger). Always valid JSON.
fn padded_body(scheme: &dyn Vendor, ts: OffsetDateTime, id: &str, size: usize) -> String {
    let sample = scheme.sample_body(ts, id);
    let mut v: Value = serde_json::from_str(&sample).expect("sample_body is JSON");
    let obj = v.as_object_mut().expect("sample_body is a JSON object");
    obj.insert("padding".into(), Value::String(String::new()));
    let base = serde_json::to_string(&v).expect("serializes").len();
    let fill = "x".repeat(size.saturating_sub(base));
    v.as_object_mut()
        .expect("still an object")
        .insert("padding".into(), Value::String(fill));
    serde_json::to_string(&v).expect("serializes")
}

/// A signed request for one vendor and body size, plus what verifying it needs.
struct Case {
    kind: VendorKind,
    scheme: Box<dyn Vendor>,
    keys: Vec<Key>,
    headers: HeaderMap,
    body: Bytes,
    ts: OffsetDateTime,
}

impl Case {
    fn new(kind: VendorKind, secret: &str, size: usize) -> Self {
        let scheme = scheme_for(kind, &VendorOptions::default());
        let key = scheme
            .prepare_key(&Secret::new(secret))
            .unwrap_or_else(|e| panic!("{}: bench secret rejected: {e}", kind.name()));
        let ts = OffsetDateTime::from_unix_timestamp(TS).expect("valid timestamp");
        let body = padded_body(scheme.as_ref(), ts, EVENT_ID, size);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in scheme.sign(&key, body.as_bytes(), ts, EVENT_ID) {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("vendor header name"),
                HeaderValue::from_str(&value).expect("vendor header value"),
            );
        }
        let case = Case {
            kind,
            scheme,
            keys: vec![key],
            headers,
            body: Bytes::from(body),
            ts,
        };
        // A benchmark of a rejection would measure the wrong thing: check it passes first.
        let verified = verify(&case.verifier(), case.request(), ts)
            .unwrap_or_else(|r| panic!("{}: signed request did not verify: {r:?}", kind.name()));
        assert!(
            verified.json().is_some(),
            "{}: body did not parse as JSON",
            kind.name()
        );
        case
    }

    fn verifier(&self) -> Verifier<'_> {
        Verifier {
            source_id: "bench-source",
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance: TOLERANCE,
        }
    }

    fn request(&self) -> Unverified {
        Unverified {
            headers: self.headers.clone(),
            query: None,
            body: self.body.clone(),
            received_at: self.ts,
        }
    }
}

fn bench_verify(c: &mut Criterion) {
    for &(size, label) in SIZES {
        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        for &(kind, secret) in FAMILIES {
            let case = Case::new(kind, secret, size);
            assert_eq!(
                case.body.len(),
                size,
                "{}: body not padded to {size}",
                kind.name()
            );
            let verifier = case.verifier();
            group.bench_with_input(
                BenchmarkId::from_parameter(case.kind.name()),
                &case,
                |b, case| {
                    b.iter_batched(
                        || case.request(),
                        |req| verify(black_box(&verifier), req, black_box(case.ts)),
                        BatchSize::SmallInput,
                    )
                },
            );
        }
        group.finish();
    }
}

/// The cost of an unauthenticated 1 MiB Standard Webhooks request whose header carries 16
/// `v1a` (Ed25519) entries and one `v1` entry, none valid, against a source holding one
/// `whsec_` secret of 32 bytes (GitLab's size) or one `whpk_` public key. Only public keys
/// verify `v1a`, each at most `MAX_ED25519_SIGNATURES` times.
fn bench_v1a_flood(c: &mut Criterion) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let size = 1 << 20;
    let body = Bytes::from("x".repeat(size));
    let mut sigs: Vec<String> = (0..16u8)
        .map(|i| {
            let mut s = [i; 64];
            s[63] = 0; // a canonical scalar, so each entry costs a full verification
            format!("v1a,{}", b64(&s))
        })
        .collect();
    sigs.push(format!("v1,{}", b64(&[0; 32])));
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("webhook-id", "msg_flood".to_string()),
        ("webhook-timestamp", TS.to_string()),
        ("webhook-signature", sigs.join(" ")),
    ] {
        headers.insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(&v).expect("header"),
        );
    }
    let pk = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_bytes();
    let scheme = scheme_for(VendorKind::StandardWebhooks, &VendorOptions::default());
    let now = OffsetDateTime::from_unix_timestamp(TS).expect("valid timestamp");
    let mut group = c.benchmark_group("verify_v1a_flood/1MiB");
    group.throughput(Throughput::Bytes(size as u64));
    for (label, secret) in [
        ("whsec_32_bytes", format!("whsec_{}", b64(&pk))),
        ("whpk", format!("whpk_{}", b64(&pk))),
    ] {
        let keys = vec![scheme
            .prepare_key(&Secret::new(secret.as_str()))
            .expect("key")];
        let verifier = Verifier {
            source_id: "bench",
            scheme: scheme.as_ref(),
            keys: &keys,
            tolerance: TOLERANCE,
        };
        group.bench_function(label, |b| {
            b.iter_batched(
                || Unverified {
                    headers: headers.clone(),
                    query: None,
                    body: body.clone(),
                    received_at: now,
                },
                |req| verify(black_box(&verifier), req, black_box(now)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn bench_replay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let now = OffsetDateTime::from_unix_timestamp(TS).expect("valid timestamp");
    let mut group = c.benchmark_group("replay/memory");
    group.throughput(Throughput::Elements(1));
    for n_keys in [1usize, 2] {
        // The demo configuration's bound, in the steady state of a busy gateway: one event a
        // (simulated) millisecond, remembered for 50 s, so about 50,000 live events and one
        // expiring at each insert. (A store full of live ids refuses new ones; see replay.rs.)
        let store = MemoryStore::new(100_000);
        let ttl = Duration::from_secs(50);
        let counter = Cell::new(0u64);
        let next_keys = || {
            let n = counter.get();
            counter.set(n + 1);
            let at = now + Duration::from_millis(n);
            let keys = (0..n_keys)
                .map(|k| {
                    ReplayKey::new(
                        "bench-source",
                        if k == 0 { b"id" } else { b"digest" },
                        &n.to_be_bytes(),
                    )
                })
                .collect::<Vec<_>>();
            (keys, at)
        };
        group.bench_function(
            BenchmarkId::new("check_and_insert_unique", format!("{n_keys}key")),
            |b| {
                b.iter_batched(
                    &next_keys,
                    |(keys, at)| {
                        let seen = rt
                            .block_on(store.check_and_insert(&keys, at, ttl))
                            .expect("the store is never full of live ids here");
                        debug_assert_eq!(seen, Seen::New);
                        black_box(seen)
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // 15 benchmarks at ~1 s warm-up + 3 s measurement each: about a minute in all.
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_verify, bench_replay, bench_v1a_flood
}
criterion_main!(benches);
