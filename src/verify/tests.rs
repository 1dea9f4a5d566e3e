//! Engine behaviour that every vendor relies on, exercised through a few vendors.

use super::Secret;
use super::*;
use crate::vendors::VendorOptions;
use crate::vendors::{scheme_for, VendorKind};

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

#[test]
fn debug_shows_header_names_and_body_length_never_values() {
    let r = req(
        &[
            ("x-hub-signature-256", GH_SIG),
            ("authorization", "Bearer tok-3f9a-secret"),
            ("x-github-delivery", "d-1"),
        ],
        "Hello, World! body-marker",
    );
    let shown = format!("{r:?}");
    for hidden in ["757107ea", "tok-3f9a-secret", "body-marker", "Hello"] {
        assert!(!shown.contains(hidden), "{hidden} in {shown}");
    }
    assert!(shown.contains("x-hub-signature-256") && shown.contains("body_len: 25"));
    let v = run(
        VendorKind::Github,
        &[GH_SECRET],
        req(&[("x-hub-signature-256", GH_SIG)], "Hello, World!"),
        0,
    )
    .unwrap();
    let shown = format!("{v:?}");
    assert!(
        !shown.contains("757107ea") && !shown.contains("Hello"),
        "{shown}"
    );
    let tok = run(
        VendorKind::Gitlab,
        &["tok-3f9a-secret"],
        req(&[("x-gitlab-token", "tok-3f9a-secret")], "{\"k\":1}"),
        0,
    )
    .unwrap();
    assert!(!format!("{tok:?}").contains("tok-3f9a-secret"));
    // The proof a vendor finds is shown by its kind and counts only.
    let scheme = scheme_for(VendorKind::Gitlab, &VendorOptions::default());
    let r = req(&[("x-gitlab-token", "tok-3f9a-secret")], "{}");
    let claim = scheme.claim(&r).unwrap();
    assert!(!format!("{claim:?}").contains("tok-3f9a-secret"));
}

/// A Standard Webhooks request whose header carries `n` `v1a` and `n` `v1` signatures, none
/// of them valid, and what checking it under `secrets` costs.
fn sw_work(secrets: &[String], n: usize) -> (Result<(), Rejection>, Work) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut sigs = Vec::new();
    for i in 0..n {
        use ed25519_dalek::Signer;
        sigs.push(format!("v1a,{}", b64(&sk.sign(&[i as u8]).to_bytes())));
        sigs.push(format!("v1,{}", b64(&[i as u8; 32])));
    }
    let sig = sigs.join(" ");
    let r = req(
        &[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", &sig),
        ],
        &"x".repeat(1 << 20),
    );
    let scheme = scheme_for(VendorKind::StandardWebhooks, &VendorOptions::default());
    let keys: Vec<Key> = secrets
        .iter()
        .map(|s| scheme.prepare_key(&Secret::new(s.as_str())).unwrap())
        .collect();
    let claim = scheme.claim(&r).unwrap();
    let mut work = Work::default();
    let out = check(&claim.check, &keys, &mut work);
    (out, work)
}

#[test]
fn ed25519_work_is_bounded_by_public_keys_and_never_uses_secrets() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let public = |seed: u8| {
        let vk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
        vk.to_bytes()
    };
    // Two HMAC secrets of 32 bytes, each of them a valid Ed25519 public key's bytes.
    let secrets = vec![
        format!("whsec_{}", b64(&public(1))),
        format!("whsec_{}", b64(&public(2))),
    ];
    let (out, work) = sw_work(&secrets, 8);
    assert_eq!(out.unwrap_err().reason, Reason::BadSignature);
    assert_eq!(
        work,
        Work {
            hmacs: 2,
            ed25519: 0
        },
        "secrets were tried as public keys"
    );

    // Two public keys and eight v1a signatures: at most MAX_ED25519_SIGNATURES per key.
    let keys = vec![
        format!("whpk_{}", b64(&public(3))),
        format!("whpk_{}", b64(&public(4))),
    ];
    let (out, work) = sw_work(&keys, 8);
    assert_eq!(out.unwrap_err().reason, Reason::BadSignature);
    assert_eq!(
        work,
        Work {
            hmacs: 0,
            ed25519: 2 * MAX_ED25519_SIGNATURES
        },
        "public keys were used as HMAC secrets, or too many signatures were tried"
    );
}

#[test]
fn private_signing_keys_are_refused_as_secrets() {
    let scheme = scheme_for(VendorKind::StandardWebhooks, &VendorOptions::default());
    assert!(scheme
        .prepare_key(&Secret::new("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        .is_err());
}

#[test]
fn timestamps_are_digits_only() {
    use super::TimestampUnit;
    for bad in ["+1700000000", "-5", "17e8", "0x10", "1 700", ""] {
        assert!(
            parse_timestamp(bad, TimestampUnit::Seconds).is_err(),
            "{bad:?}"
        );
        assert!(
            parse_timestamp(bad, TimestampUnit::Milliseconds).is_err(),
            "{bad:?}"
        );
    }
    assert!(parse_timestamp("1700000000", TimestampUnit::Seconds).is_ok());
}

#[test]
fn the_signed_bytes_digest_is_always_a_replay_key() {
    // Stripe's id is inside the signed body; the digest is recorded beside it all the same.
    let scheme = scheme_for(VendorKind::Stripe, &VendorOptions::default());
    let key = scheme.prepare_key(&Secret::new("whsec_k")).unwrap();
    let body = r#"{"id":"evt_1","object":"event"}"#;
    let h = scheme.sign(&key, body.as_bytes(), OffsetDateTime::UNIX_EPOCH, "");
    let v = run(
        VendorKind::Stripe,
        &["whsec_k"],
        req(&[(h[0].0.as_str(), h[0].1.as_str())], body),
        0,
    )
    .unwrap();
    assert_eq!(v.event_id(), "evt_1");
    assert_eq!(v.replay_keys().len(), 2);
}
