//! The legacy Azure Monitor HTTP Data Collector API (SharedKey).

use super::*;

pub(super) const WORKSPACE: &str = "00000000-1111-2222-3333-444444444444";
pub(super) const WORKSPACE_KEY: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

/// base64(HMAC-SHA256(base64decode(key), "POST\n<len>\napplication/json\nx-ms-date:<date>\n/api/logs")).
pub(super) fn shared_key_signature(key_b64: &str, content_length: usize, date: &str) -> String {
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(key_b64).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs").as_bytes(),
    );
    b64.encode(mac.finalize().into_bytes())
}

pub(super) fn dc_error(status: u16, error: &str, message: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_body(&json!({"Error": error, "Message": message}).to_string())
}

/// `Wed, 01 Jan 2025 00:00:05 GMT`.
pub(super) fn parse_rfc1123(s: &str) -> Option<OffsetDateTime> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &f)
        .ok()
        .map(|t| t.assume_utc())
}

/// What the Data Collector API checks, answered as it answers.
pub(super) fn data_collector_reply(c: &Captured) -> Reply {
    if c.path != "/api/logs" {
        return Reply::status(404);
    }
    if c.method != "POST" {
        return Reply::status(405);
    }
    match query(c).get("api-version").map(String::as_str) {
        None => {
            return dc_error(
                400,
                "MissingApiVersion",
                "The API version wasn't specified.",
            )
        }
        Some("2016-04-01") => {}
        Some(_) => {
            return dc_error(
                400,
                "InvalidApiVersion",
                "The API version specified wasn't recognized by the service.",
            )
        }
    }
    match c.header("content-type") {
        None => {
            return dc_error(
                400,
                "MissingContentType",
                "The content type wasn't specified.",
            )
        }
        Some("application/json") => {}
        Some(_) => {
            return dc_error(
                400,
                "UnsupportedContentType",
                "The content type was not set to application/json.",
            )
        }
    }
    match c.header("log-type") {
        None => {
            return dc_error(
                400,
                "MissingLogType",
                "The required value log type wasn't specified.",
            )
        }
        Some(t)
            if t.is_empty()
                || t.len() > 100
                || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            return dc_error(
                400,
                "InvalidLogType",
                "The log type contained special characters or numerics.",
            )
        }
        Some(_) => {}
    }
    if c.header("content-encoding").is_some() {
        return dc_error(
            400,
            "InvalidDataFormat",
            "Compressed bodies are not accepted.",
        );
    }
    let Some(date) = c.header("x-ms-date") else {
        return dc_error(403, "InvalidAuthorization", "x-ms-date is missing.");
    };
    match parse_rfc1123(date) {
        Some(t) if (t - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(15) => {}
        _ => {
            return dc_error(
                403,
                "InvalidAuthorization",
                "The date is invalid or skewed.",
            )
        }
    }
    // Signed over the byte length the service actually received.
    let want = format!(
        "SharedKey {WORKSPACE}:{}",
        shared_key_signature(WORKSPACE_KEY, c.body.len(), date)
    );
    if c.header("authorization") != Some(want.as_str()) {
        return dc_error(
            403,
            "InvalidAuthorization",
            "An invalid scheme was specified in the Authorization header.",
        );
    }
    let records = match serde_json::from_slice::<Value>(&c.body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        _ => return dc_error(400, "InvalidDataFormat", "An invalid JSON was submitted."),
    };
    for r in &records {
        for reserved in ["tenant", "TimeGenerated", "RawData"] {
            if r.get(reserved).is_some() {
                return dc_error(
                    400,
                    "InvalidDataFormat",
                    "A reserved property name was used.",
                );
            }
        }
    }
    Reply::status(200)
}

/// The Data Collector API of workspace [`WORKSPACE`], log type `WebhookEvents`.
pub(super) struct DataCollector;

impl Siem for DataCollector {
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\nid = \"{id}\"\ntype = \"sentinel_data_collector\"\nworkspace_id = \"{WORKSPACE}\"\nshared_key = \"{WORKSPACE_KEY}\"\nlog_type = \"WebhookEvents\"\nurl = \"{}\"\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
            fake.url("")
        )
    }

    fn is_ingest(c: &Captured) -> bool {
        c.path == "/api/logs"
    }

    fn request_uids(c: &Captured) -> Vec<String> {
        match c.json() {
            Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        }
        .iter()
        .map(|r| r["EventId"].as_str().unwrap().to_string())
        .collect()
    }
}

#[test]
fn the_shared_key_helper_matches_the_reference_vectors() {
    // §8.1 vectors A, B and C: the fake's check is right before it judges siemgate.
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, 1024, "Mon, 04 Apr 2016 08:00:00 GMT"),
        "kQfMluP3yBFQzfwH0Ye5adOjNq2FCEIWGh0n4uEtCrg="
    );
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, 103, "Wed, 01 Jan 2025 00:00:05 GMT"),
        "GAtVHo+diiyS32MOJsih0V1lD+cNUiosBQalCFTMKH0="
    );
    let body = r#"[{"EventId":"evt_2","Message":"Signatur geprüft ✓"}]"#;
    assert_eq!(body.len(), 55);
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, body.len(), "Wed, 01 Jan 2025 00:00:05 GMT"),
        "Z+a50+3280LJg0y+flsVoaRQttXIq4qHIdPgSpw5E+o="
    );
    assert!(parse_rfc1123("Wed, 01 Jan 2025 00:00:05 GMT").is_some());
}

#[tokio::test]
async fn sentinel_data_collector_signs_the_byte_length_of_non_ascii_bodies() {
    let fake = FakeServer::start(|c, _| data_collector_reply(c)).await;
    let gw = start(
        "",
        gh("dc-src", &["dc"]),
        DataCollector::sink("dc", &fake, QUICK, ""),
    )
    .await;
    gw.clock.advance(Duration::from_millis(321));
    accept_json(
        &gw,
        "dc-src",
        "dc-umlaut",
        json!({"action": "created", "title": "Signatur geprüft ✓", "severity": "high"}),
    )
    .await;
    let reqs = fake
        .wait_until("dc-umlaut delivered or refused thrice", |r| {
            DataCollector::uids(r).contains(&"dc-umlaut".to_string())
                || r.iter().filter(|c| c.answered >= 400).count() >= 3
        })
        .await;
    assert!(
        reqs.iter().all(|c| c.answered == 200),
        "refused: {:?}",
        reqs.iter()
            .filter(|c| c.answered != 200)
            .map(|c| (c.answered, c.header("authorization").map(str::to_string)))
            .collect::<Vec<_>>()
    );
    accept(&gw, "dc-src", "dc-plain").await;
    let reqs_after = fake
        .wait_until("dc-plain delivered", |r| {
            DataCollector::uids(r).contains(&"dc-plain".to_string())
        })
        .await;
    gw.delivered().await;
    assert_eq!(
        sorted(DataCollector::uids(&reqs_after)),
        ["dc-plain", "dc-umlaut"]
    );
    for c in &reqs_after {
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/api/logs");
        assert_eq!(
            query(c).get("api-version").map(String::as_str),
            Some("2016-04-01")
        );
        assert_eq!(c.header("content-type"), Some("application/json"));
        assert_eq!(c.header("log-type"), Some("WebhookEvents"));
        assert_eq!(c.header("time-generated-field"), Some("EventTime"));
        assert_eq!(c.header("content-encoding"), None);
        assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
        let records = match c.json() {
            Value::Array(a) => a,
            other => panic!("{other}"),
        };
        for r in records {
            let e: Value = serde_json::from_str(
                r["Event"]
                    .as_str()
                    .unwrap_or_else(|| panic!("Event is the OCSF event as a JSON string: {r}")),
            )
            .unwrap();
            assert_eq!(r["EventId"], uid_of(&e).as_str());
            assert_eq!(r["Source"], "dc-src");
            assert_eq!(r["Vendor"], "github");
            assert_eq!(r["ClassUid"], e["class_uid"]);
            assert_eq!(r["ClassName"], e["class_name"]);
            assert_eq!(r["SeverityId"], e["severity_id"]);
            assert_eq!(r["Severity"], e["severity"]);
            assert_eq!(r["Message"], e["message"]);
            assert_eq!(
                rfc3339_ms(r["EventTime"].as_str().unwrap()),
                e["time"].as_i64().unwrap()
            );
            assert_eq!(e["time"], T0 * 1000 + 321);
            if r["EventId"] == "dc-umlaut" {
                assert_eq!(r["Message"], "Signatur geprüft ✓");
                assert_eq!(r["Severity"], "High");
                let text = String::from_utf8(c.body.clone()).unwrap();
                assert_ne!(text.len(), text.chars().count(), "the body is not ASCII");
            }
        }
    }
}
