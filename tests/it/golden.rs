//! Golden files: for every vendor, a request in and the exact OCSF events out.
//!
//! Each `tests/golden/<vendor>/<case>.json` holds a request as the vendor sends it (the body,
//! the unsigned headers it also sends, its event id and time) and the events siemgate must make
//! of it. The harness signs the body with the vendor's own scheme, verifies it as the gateway
//! does, normalizes it, and compares the events as JSON. Every event is also checked against the
//! OCSF schema subset in `tests/ocsf/`, and by an independent validator, the pydantic models of
//! `py-ocsf-models` (`tests/ocsf/validate.py`).
//!
//! `SIEMGATE_BLESS=1 cargo test --test it golden` writes the events a file lacks (or all of
//! them, when they changed): read the diff before committing it.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use siemgate::event::Origin;
use siemgate::vendors::VendorKind;
use siemgate::verify::{self, Unverified, Verifier};

use crate::ocsf_schema;
use crate::support::{secret_for, source};

const DEFAULT_NOW: &str = "2026-04-06T14:32:05Z";

fn golden_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files = Vec::new();
    for vendor in std::fs::read_dir(&root).unwrap() {
        let dir = vendor.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// What one golden case produces: the handshake answer, or the events.
pub struct Produced {
    pub handshake: Option<Value>,
    pub events: Vec<Value>,
}

/// Runs one case through signing, verification, handshake and normalization.
pub fn run_case(case: &Value) -> Produced {
    let vendor_name = case["vendor"].as_str().expect("vendor");
    let kind = VendorKind::from_name(vendor_name).expect("a known vendor");
    let secret = secret_for(kind, 1);
    let mut extra = case["source_extra"].as_str().unwrap_or("").to_string();
    let include_raw = case["include_raw"].as_bool().unwrap_or(false);
    extra.push_str(&format!("\ninclude_raw = {include_raw}\n"));
    let text = format!(
        "[spool]\ndir = \"spool\"\n{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"out.jsonl\"\n",
        source("golden", vendor_name, &[&secret], &extra)
    );
    let dir = tempfile::tempdir().unwrap();
    let config = siemgate::config::parse(&text, dir.path(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let src = &config.sources[0];
    let scheme = src.scheme();
    let keys: Vec<_> = src
        .secrets
        .iter()
        .map(|s| scheme.prepare_key(s).unwrap())
        .collect();
    let now = OffsetDateTime::parse(case["now"].as_str().unwrap_or(DEFAULT_NOW), &Rfc3339)
        .expect("now is RFC 3339");
    let body: Vec<u8> = match (&case["body"], case["body_text"].as_str()) {
        (Value::Null, Some(t)) => t.as_bytes().to_vec(),
        (Value::Null, None) => Vec::new(),
        (b, _) => serde_json::to_vec(b).unwrap(),
    };
    let id = case["id"].as_str().unwrap_or("golden-1");
    let mut headers = http::HeaderMap::new();
    for (k, v) in scheme.sign(&keys[0], &body, now, id) {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    if let Some(h) = case["headers"].as_object() {
        for (k, v) in h {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
    }
    let req = Unverified {
        headers,
        query: None,
        body: body.into(),
        received_at: now,
    };
    let verifier = Verifier {
        source_id: "golden",
        scheme: scheme.as_ref(),
        keys: &keys,
        tolerance: src.tolerance,
    };
    let verified = verify::verify(&verifier, req, now)
        .unwrap_or_else(|r| panic!("the golden request does not verify: {r:?}"));
    let input = siemgate::ocsf::Input::of(vendor_name, &verified);
    if let Some(h) = scheme.handshake(&input, &keys) {
        return Produced {
            handshake: Some(json!({"content_type": h.content_type, "body": h.body})),
            events: Vec::new(),
        };
    }
    let origin = Origin {
        source_id: "golden",
        vendor: vendor_name,
        include_raw,
    };
    siemgate::ocsf::check(scheme.as_ref(), &origin, &verified)
        .expect("within the events-per-request limit");
    let events = siemgate::ocsf::normalize(scheme.as_ref(), &origin, &verified)
        .into_iter()
        .map(|e| {
            // An event is written straight from its parts (event.rs), not from a JSON tree: the
            // same bytes as its tree would give, keys sorted and none twice.
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(serde_json::to_string(&e).unwrap(), v.to_string());
            v
        })
        .collect();
    Produced {
        handshake: None,
        events,
    }
}

#[test]
fn every_vendor_has_golden_files_and_each_produces_exactly_its_events() {
    let files = golden_files();
    let bless = std::env::var("SIEMGATE_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let mut vendors_seen = std::collections::BTreeSet::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut case: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        vendors_seen.insert(case["vendor"].as_str().unwrap_or("").to_string());
        let produced = run_case(&case);
        for (i, e) in produced.events.iter().enumerate() {
            for v in ocsf_schema::violations(e) {
                failures.push(format!("{} event {i}: OCSF: {v}", path.display()));
            }
        }
        let (key, got) = match produced.handshake {
            Some(h) => ("handshake", h),
            None => ("events", Value::Array(produced.events)),
        };
        if case[key] != got {
            if bless {
                case[key] = got;
                std::fs::write(path, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
            } else {
                failures.push(format!(
                    "{}: {key} differ\n  expected: {}\n  got:      {}",
                    path.display(),
                    case[key],
                    got
                ));
            }
        }
    }
    let missing: Vec<_> = VendorKind::ALL
        .iter()
        .map(|k| k.name())
        .filter(|n| !vendors_seen.contains(*n))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        missing.is_empty(),
        "vendors without golden files: {missing:?}"
    );
}

/// Every golden event passes an independent OCSF validator: `tests/ocsf/validate.py`, with the
/// pydantic models of `py-ocsf-models` (pinned in `tests/ocsf/requirements.txt`; `scripts/test`
/// installs it). `PYTHON` names the interpreter (default `python3`).
#[test]
fn every_golden_event_passes_the_py_ocsf_models_validator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/ocsf/validate.py"))
        .arg(root.join("tests/golden"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): scripts/test installs python3 and py-ocsf-models")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the OCSF validator refused golden events:\n{stderr}\n{stdout}"
    );
    // It checked the findings with the Detection Finding model, not nothing.
    assert!(stdout.contains("as DetectionFinding"), "{stdout}");
    assert!(stdout.contains("; 0 refused"), "{stdout}");
}
