//! What the request path spends on a verified request after its signature: every vendor's
//! sample body, padded to 1 KiB, made into OCSF events (`siemgate::ocsf::normalize`) and each
//! event encoded as the JSON the spool keeps (`Event::to_json`). Verifying (and parsing the
//! body) is `cargo bench --bench verify`; here it happens untimed, in the setup of
//! `iter_batched`, and the verified request is dropped untimed too. The events and their JSON
//! are dropped within the timing, as the request path drops them.
//!
//! Run with `cargo bench --bench normalize`; filter with e.g. `cargo bench --bench normalize --
//! github`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use time::OffsetDateTime;

use siemgate::event::Origin;
use siemgate::fuzzing::{profile, Profile};
use siemgate::verify::Verified;

/// The signing time; verification runs at the same instant.
const TS: i64 = 1_700_000_000;
const EVENT_ID: &str = "evt-0001-bench";
const SIZE: usize = 1024;

/// The vendor's sample body with a `"padding"` string field making it `SIZE` bytes (or its
/// natural size when that is larger): the load tool's bodies have the same shape.
fn padded(sample: &str) -> String {
    let sample = sample.trim_end();
    let head = sample
        .strip_suffix('}')
        .expect("every sample body is a JSON object");
    let sep = if head.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let fixed = head.len() + sep.len() + r#""padding":""}"#.len();
    let fill = "x".repeat(SIZE.saturating_sub(fixed));
    format!(r#"{head}{sep}"padding":"{fill}"}}"#)
}

/// A signed request of one vendor, checked to verify, and what verifying it again needs.
struct Case {
    name: String,
    p: &'static Profile,
    body: String,
    ts: OffsetDateTime,
}

impl Case {
    /// `None` for a vendor whose signer cannot prove a request from headers alone (Graph).
    fn new(i: usize) -> Option<Case> {
        let p = profile(i as u8);
        if !p.header_signer {
            return None;
        }
        let ts = OffsetDateTime::from_unix_timestamp(TS).expect("valid timestamp");
        let body = padded(&p.scheme.sample_body(ts, EVENT_ID));
        let case = Case {
            name: format!("{}{}", p.source.vendor.name(), variant(i)),
            p,
            body,
            ts,
        };
        // Normalizing a rejected request would measure nothing: it must verify, and map to
        // events without a normalize error.
        let events = siemgate::ocsf::normalize(p.scheme.as_ref(), &case.origin(), &case.verified());
        assert!(
            !events.is_empty() && events.iter().all(|e| !e.normalize_error()),
            "{}: the sample body does not normalize",
            case.name
        );
        Some(case)
    }

    fn origin(&self) -> Origin<'_> {
        Origin {
            source_id: "bench-source",
            vendor: self.p.source.vendor.name(),
            include_raw: true,
        }
    }

    fn verified(&self) -> Verified {
        self.p
            .sign_and_verify(
                self.body.as_bytes(),
                self.ts,
                EVENT_ID,
                std::time::Duration::from_secs(300),
            )
            .unwrap_or_else(|r| panic!("{}: the signed request did not verify: {r:?}", self.name))
    }
}

/// Generic HMAC sources come in several schemes: each profile past the first is numbered.
fn variant(i: usize) -> String {
    let generic = siemgate::vendors::VendorKind::ALL.len();
    if i < generic {
        String::new()
    } else {
        format!("#{}", i + 2 - generic)
    }
}

fn bench_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_and_encode/1KiB");
    for case in (0..siemgate::fuzzing::profile_count()).filter_map(Case::new) {
        let origin = case.origin();
        group.bench_with_input(BenchmarkId::from_parameter(&case.name), &case, |b, case| {
            b.iter_batched(
                || case.verified(),
                |v| {
                    let events =
                        siemgate::ocsf::normalize(black_box(case.p.scheme.as_ref()), &origin, &v);
                    for e in &events {
                        black_box(e.to_json().expect("an event encodes"));
                    }
                    drop(events);
                    v
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_normalize);
criterion_main!(benches);
