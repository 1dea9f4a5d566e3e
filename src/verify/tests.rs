//! Engine behaviour that every vendor relies on, exercised through a few vendors.

use super::*;
use crate::config::{Secret, VendorOptions};
use crate::vendor::{scheme_for, VendorKind};

fn req(headers: &[(&str, &str)], body: &str) -> Unverified {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    Unverified {
        headers: h,
        query: None,
        body: Bytes::from(body.to_string()),
        received_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn run(kind: VendorKind, secrets: &[&str], r: Unverified, now: i64) -> Result<Verified, Rejection> {
    let scheme = scheme_for(kind, &VendorOptions::default());
    let keys: Vec<Key> = secrets
        .iter()
        .map(|s| scheme.prepare_key(&Secret::new(*s)).unwrap())
        .collect();
    let v = Verifier {
        source_id: "src",
        scheme: scheme.as_ref(),
        keys: &keys,
        tolerance: Duration::from_secs(300),
    };
    verify(&v, r, OffsetDateTime::from_unix_timestamp(now).unwrap())
}

const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
const GH_SECRET: &str = "It's a Secret to Everybody";

#[test]
fn github_documented_vector() {
    let v = run(
        VendorKind::Github,
        &[GH_SECRET],
        req(
            &[
                ("x-hub-signature-256", GH_SIG),
                ("x-github-delivery", "d-1"),
            ],
            "Hello, World!",
        ),
        0,
    )
    .unwrap();
    assert_eq!(v.event_id(), "d-1");
    // the delivery id is unsigned: the signed bytes are remembered as well
    assert_eq!(v.replay_keys().len(), 2);
}

#[test]
fn uppercase_hex_is_the_same_signature() {
    let upper = format!("sha256={}", GH_SIG[7..].to_uppercase());
    assert!(run(
        VendorKind::Github,
        &[GH_SECRET],
        req(&[("x-hub-signature-256", &upper)], "Hello, World!"),
        0
    )
    .is_ok());
}

#[test]
fn any_configured_secret_may_match() {
    let r = req(&[("x-hub-signature-256", GH_SIG)], "Hello, World!");
    assert!(run(VendorKind::Github, &["new-secret", GH_SECRET], r, 0).is_ok());
}

#[test]
fn header_problems_are_told_apart() {
    let reason = |headers: &[(&str, &str)]| {
        run(
            VendorKind::Github,
            &[GH_SECRET],
            req(headers, "Hello, World!"),
            0,
        )
        .unwrap_err()
        .reason
    };
    assert_eq!(reason(&[]), Reason::MissingHeader);
    // only the legacy SHA-1 header: still missing, SHA-1 is never accepted
    assert_eq!(
        reason(&[(
            "x-hub-signature",
            "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"
        )]),
        Reason::MissingHeader
    );
    assert_eq!(
        reason(&[
            ("x-hub-signature-256", GH_SIG),
            ("x-hub-signature-256", GH_SIG)
        ]),
        Reason::MalformedHeader
    );
    assert_eq!(
        reason(&[("x-hub-signature-256", "sha256=zz")]),
        Reason::MalformedHeader
    );
    assert_eq!(
        reason(&[("x-hub-signature-256", "sha256=abcd")]),
        Reason::MalformedHeader
    );
    assert_eq!(
        reason(&[(
            "x-hub-signature-256",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        )]),
        Reason::MalformedHeader
    );
    let long = format!("sha256={}", "a".repeat(MAX_SIGNATURE_HEADER_LEN));
    assert_eq!(
        reason(&[("x-hub-signature-256", &long)]),
        Reason::MalformedHeader
    );
    let wrong = format!("sha256={}", "0".repeat(64));
    assert_eq!(
        reason(&[("x-hub-signature-256", &wrong)]),
        Reason::BadSignature
    );
}

#[test]
fn thousands_of_list_entries_are_malformed_not_work() {
    let list = vec!["v1=00"; 5000].join(",");
    let r = req(&[("x-pagerduty-signature", &list)], "{}");
    assert_eq!(
        run(VendorKind::Pagerduty, &["k"], r, 0).unwrap_err().reason,
        Reason::MalformedHeader
    );
}

fn slack_req(ts: i64) -> Unverified {
    let scheme = scheme_for(VendorKind::Slack, &VendorOptions::default());
    let key = scheme.prepare_key(&Secret::new("k")).unwrap();
    let t = OffsetDateTime::from_unix_timestamp(ts).unwrap();
    let headers = scheme.sign(&key, b"{}", t, "id");
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    req(&pairs, "{}")
}

#[test]
fn window_is_checked_both_ways_at_its_edges() {
    let now = 1_700_000_000;
    assert!(run(VendorKind::Slack, &["k"], slack_req(now - 300), now).is_ok());
    assert!(run(VendorKind::Slack, &["k"], slack_req(now + 300), now).is_ok());
    assert_eq!(
        run(VendorKind::Slack, &["k"], slack_req(now - 301), now)
            .unwrap_err()
            .reason,
        Reason::TooOld
    );
    assert_eq!(
        run(VendorKind::Slack, &["k"], slack_req(now + 301), now)
            .unwrap_err()
            .reason,
        Reason::TooNew
    );
    // a forged timestamp fails the MAC before the window is looked at
    let mut r = slack_req(now);
    r.headers.insert(
        "x-slack-request-timestamp",
        (now - 1000).to_string().parse().unwrap(),
    );
    assert_eq!(
        run(VendorKind::Slack, &["k"], r, now).unwrap_err().reason,
        Reason::BadSignature
    );
}

#[test]
fn token_comparison() {
    let ok = run(
        VendorKind::Gitlab,
        &["tok"],
        req(&[("x-gitlab-token", "tok")], "{}"),
        0,
    );
    assert!(ok.is_ok());
    let bad = run(
        VendorKind::Gitlab,
        &["tok"],
        req(&[("x-gitlab-token", "tok2")], "{}"),
        0,
    );
    assert_eq!(bad.unwrap_err().reason, Reason::BadSignature);
}

#[test]
fn digest_ids_are_stable_and_body_bound() {
    let sign = |body: &str| {
        let scheme = scheme_for(VendorKind::Veritensor, &VendorOptions::default());
        let key = scheme.prepare_key(&Secret::new("k")).unwrap();
        let h = scheme.sign(&key, body.as_bytes(), OffsetDateTime::UNIX_EPOCH, "");
        run(
            VendorKind::Veritensor,
            &["k"],
            req(&[(h[0].0.as_str(), h[0].1.as_str())], body),
            0,
        )
        .unwrap()
    };
    let a = sign("not json");
    let b = sign("not json");
    let c = sign("not json!");
    assert!(a.event_id().starts_with("sha256:"));
    assert_eq!(a.event_id(), b.event_id());
    assert_ne!(a.event_id(), c.event_id());
    assert!(a.json().is_none());
}
