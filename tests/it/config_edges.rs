//! The config at its edges, through the binary and a running gateway: a secret in a config
//! error is never shown (`check`, the admin reload answer, the log), and the largest allowed
//! timestamp window (or any window at all) cannot panic a request.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "MARKER-7c1d93e0a4";

/// `secrets` written as a string instead of a list: serde would quote the resolved value.
fn leaky_source() -> String {
    "[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsecrets = \"${GH_SECRET}\"\nsinks = [\"out\"]\n"
        .to_string()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn check_names_the_key_and_line_of_a_misplaced_secret_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leak.toml");
    let text = format!(
        "[admin]\ntoken = [\"${{GH_SECRET}}\"]\n\n{}\n[[sinks]]\nid = \"out\"\ntype = \"splunk_hec\"\nurl = \"https://splunk.example\"\ntoken = {{ value = \"${{GH_SECRET}}\" }}\n",
        leaky_source()
    );
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siemgate"))
        .args(["check", "--config", path.to_str().unwrap()])
        .env("GH_SECRET", MARKER)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(MARKER), "the secret was shown:\n{all}");
    for (key, needle) in [
        ("sources[0].secrets", "secrets = "),
        ("admin.token", "token = [\"${GH_SECRET}\"]"),
        ("sinks[0].token", "token = { value"),
    ] {
        let expected = format!("line {}: {key}: invalid type", line_of(&text, needle));
        assert!(all.contains(&expected), "missing {expected:?} in:\n{all}");
    }
    assert!(all.contains("expected a sequence, found a string"), "{all}");
}

/// `siemgate run`, with the environment given, its stderr lines sent to the returned channel.
fn run_binary(
    cfg: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_siemgate"));
    cmd.args([
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--log-format",
        "json",
    ])
    .env("RUST_LOG", "debug")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[tokio::test]
async fn a_refused_reload_names_the_key_and_line_in_its_answer_and_log_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "reload-test-token\n").unwrap();
    let top = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"0s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"admin-token\"\n[spool]\ndir = \"spool\"\n"
    );
    let sink = "[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n";
    let cfg = dir.path().join("gw.toml");
    let good = format!(
        "{top}[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsecrets = [\"${{GH_SECRET}}\"]\nsinks = [\"out\"]\n{sink}"
    );
    std::fs::write(&cfg, &good).unwrap();
    let (mut child, rx) = run_binary(&cfg, &[("GH_SECRET", MARKER)]);
    let mut lines = Vec::new();
    wait_line(&rx, &mut lines, &["siemgate listening"]);

    // The brackets forgotten: a string where a list is expected.
    let bad = format!("{top}{}{sink}", leaky_source());
    std::fs::write(&cfg, &bad).unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{admin}/v1/reload"))
        .bearer_auth("reload-test-token")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer = r.text().await.unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(
        !answer.contains(MARKER),
        "the secret in the answer: {answer}"
    );
    let expected = format!("line {}: sources[0].secrets", line_of(&bad, "secrets = "));
    assert!(answer.contains(&expected), "{expected:?} not in {answer}");
    wait_line(&rx, &mut lines, &["config reload refused"]);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    lines.extend(rx.try_iter());
    let log = lines.join("\n");
    assert!(!log.contains(MARKER), "the secret in the log:\n{log}");
    assert!(
        log.contains(&expected),
        "{expected:?} not in the log:\n{log}"
    );
}

fn stripe_at(
    gw: &TestGateway,
    at: time::OffsetDateTime,
    id: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = format!(
        r#"{{"id":"{id}","type":"charge.failed","created":{}}}"#,
        at.unix_timestamp()
    );
    let headers = siemgate::cli::sign_headers(&gw.config, "wide", body.as_bytes(), id, at).unwrap();
    (headers, body.into_bytes())
}

/// The largest window `check` allows (7 days), in a real request: inside it is accepted, past
/// it refused, on both sides.
#[tokio::test]
async fn the_largest_allowed_tolerance_accepts_and_refuses_at_its_edges() {
    let gw = TestGateway::start(Options::new(
        Tls::Off,
        "",
        source("wide", "stripe", &["whsec_wide"], "tolerance = \"7d\""),
    ))
    .await;
    let c = gw.client();
    let now = gw.clock_now();
    let week = time::Duration::days(7);
    let second = time::Duration::seconds(1);
    for (at, id, want) in [
        (now - week + second, "evt_old_inside", 200),
        (now + week - second, "evt_new_inside", 200),
        (now - week - second, "evt_old_outside", 401),
        (now + week + second, "evt_new_outside", 401),
    ] {
        let (headers, body) = stripe_at(&gw, at, id);
        let (status, answer) = gw.post(&c, "wide", &headers, body).await;
        assert_eq!(status, want, "{id}: {answer}");
    }
}

/// A window wider than time itself (set past validation, as a library user could) does not
/// panic the request: the edge beyond representable time is no edge.
#[tokio::test]
async fn a_window_beyond_representable_time_does_not_panic_a_request() {
    let gw = TestGateway::start(Options::new(
        Tls::Off,
        "",
        source("wide", "stripe", &["whsec_wide"], ""),
    ))
    .await;
    let gw = gw
        .restart_with(|c| c.sources[0].tolerance = Duration::from_secs(20_000 * 365 * 86_400))
        .await;
    let c = gw.client();
    let (headers, body) = stripe_at(
        &gw,
        gw.clock_now() - time::Duration::days(3650),
        "evt_ancient",
    );
    let (status, answer) = gw.post(&c, "wide", &headers, body).await;
    assert_eq!(status, 200, "{answer}");

    // and the engine itself, with the largest Duration there is
    let cfg = &gw.config.sources[0];
    let scheme = cfg.scheme();
    let keys: Vec<_> = cfg
        .secrets
        .iter()
        .map(|s| scheme.prepare_key(s).unwrap())
        .collect();
    let (headers, body) = stripe_at(&gw, gw.clock_now(), "evt_max");
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    let verifier = siemgate::verify::Verifier {
        source_id: "wide",
        scheme: scheme.as_ref(),
        keys: &keys,
        tolerance: Duration::MAX,
    };
    let req = siemgate::verify::Unverified {
        headers: map,
        query: None,
        body: body.into(),
        received_at: gw.clock_now(),
    };
    assert!(siemgate::verify::verify(&verifier, req, gw.clock_now()).is_ok());
}
