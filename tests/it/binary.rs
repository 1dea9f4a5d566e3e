//! The gateway as users run it: the built binary, its logs and its signals.

use crate::support::{free_port, source, spawn_binary, wait_line};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test]
async fn run_logs_each_request_without_secrets_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[spool]\ndir = \"spool\"\n{}{}[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
            source("bin-okta", "okta", &["Basic c2VjcmV0LXRva2VuLXZhbHVl"], ""),
            source("bin-gh", "github", &["gh-very-secret"], ""),
        ),
    )
    .unwrap();
    let (mut child, rx) = spawn_binary(&cfg, |_| {});
    let mut lines = Vec::new();
    wait_line(&rx, &mut lines, &["siemgate listening"]);

    let c = reqwest::Client::new();
    let url = |s: &str| format!("http://127.0.0.1:{port}/v1/webhooks/{s}");
    // a good Okta request, and one with a wrong token
    let body = r#"{"eventType":"com.okta.event_hook","eventId":"e-1","data":{"events":[]}}"#;
    let r = c
        .post(url("bin-okta"))
        .header("authorization", "Basic c2VjcmV0LXRva2VuLXZhbHVl")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(url("bin-okta"))
        .header("authorization", "Basic d3JvbmctdG9rZW4tdmFsdWU=")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // a GitHub request with a wrong signature
    let r = c
        .post(url("bin-gh"))
        .header("x-hub-signature-256", format!("sha256={}", "ab".repeat(32)))
        .body(r#"{"secret_body_marker":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    wait_line(&rx, &mut lines, &["stopped"]);

    let requests: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(
        requests.len(),
        3,
        "one line per request:\n{}",
        lines.join("\n")
    );
    assert_eq!(requests[0]["outcome"], "accepted");
    assert_eq!(requests[1]["outcome"], "unauthorized");
    assert_eq!(requests[1]["reason"], "bad_signature");
    assert_eq!(requests[2]["reason"], "bad_signature");
    assert!(requests
        .iter()
        .all(|r| r["source"].is_string() && r["duration_ms"].is_number()));
    let all = lines.join("\n");
    for secret in [
        "c2VjcmV0LXRva2VuLXZhbHVl",
        "d3JvbmctdG9rZW4tdmFsdWU",
        "gh-very-secret",
        &"ab".repeat(32),
        "secret_body_marker",
    ] {
        assert!(
            !all.contains(secret),
            "{secret:?} appeared in the logs:\n{all}"
        );
    }
}

/// SIGTERM through the `kill` command (no unsafe code, no extra dependency).
fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// The built gateway with one GitHub source, `load-gh` (secret `load-secret`), whose limits no
/// load test reaches, and `sinks` (TOML); started and listening. Its ingest and admin ports.
fn gateway_for_load(dir: &std::path::Path, sinks: &str) -> (std::process::Child, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nclient_rate_limit = {{ per_second = 100000, burst = 100000 }}\nshutdown_grace = \"0s\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[spool]\ndir = \"spool\"\n{}{sinks}",
            source(
                "load-gh",
                "github",
                &["load-secret"],
                "rate_limit = { per_second = 100000, burst = 100000 }",
            ),
        ),
    )
    .unwrap();
    let (child, rx) = spawn_binary(&cfg, |_| {});
    wait_line(&rx, &mut Vec::new(), &["siemgate listening"]);
    (child, port, admin)
}

/// The load tool aimed at [`gateway_for_load`]'s source on `port`.
fn load_tool(port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_siemgate-load"));
    c.args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--source", "load-gh", "--secret", "load-secret"]);
    c
}

/// Stops the gateway, checks the load tool's run succeeded, and returns its last line: the
/// JSON summary.
fn stop_and_read_summary(
    mut gateway: std::process::Child,
    out: &std::process::Output,
) -> serde_json::Value {
    sigterm(gateway.id());
    gateway.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The load tool as the README runs it against the built gateway: two rounds of signed events,
/// the gateway's metrics watched, its `splunk_hec` sink delivering gzip batches to the tool's
/// fake SIEM, and the spool drained. Every count is checked against what was sent.
#[test]
fn the_load_tool_runs_rounds_watches_the_gateway_and_drains_into_its_fake_siem() {
    let dir = tempfile::tempdir().unwrap();
    let hec = free_port();
    let (child, port, admin) = gateway_for_load(
        dir.path(),
        &format!("[[sinks]]\nid = \"out\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:{hec}\"\ntoken = \"hec-token\"\nallow_http = true\nbatch = {{ max_events = 50, timeout = \"10ms\" }}\n"),
    );

    let out = load_tool(port)
        .args([
            "--connections",
            "4",
            "--requests",
            "120",
            "--rounds",
            "2",
            "--metrics",
            &format!("http://127.0.0.1:{admin}/metrics"),
            "--fake-siem",
            &format!("127.0.0.1:{hec}"),
            "--drain",
            "--drain-timeout",
            "60",
        ])
        .output()
        .unwrap();
    let last = stop_and_read_summary(child, &out);
    let rounds = last["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{last}");
    for r in rounds {
        assert_eq!(r["accepted"], 120, "{last}");
        let g = &r["gateway_metrics"];
        assert!(g["samples"].as_u64().unwrap() >= 1, "{last}");
        assert!(g["rss_max_mib"].as_f64().unwrap() > 1.0, "{last}");
        assert!(
            g["rss_less_replay_max_mib"].as_f64() <= g["rss_max_mib"].as_f64(),
            "{last}"
        );
    }
    for r in rounds {
        // The gateway's CPU time over the round, from its metrics, per request.
        assert!(
            r["gateway_metrics"]["cpu_seconds"].as_f64() >= Some(0.0),
            "{last}"
        );
        assert!(
            r["target_cpu_us_per_request"].as_f64() >= Some(0.0),
            "{last}"
        );
    }
    assert!(last["first_to_last"]["events_per_sec_change_pct"].is_number());
    assert_eq!(last["drain"]["emptied"], true, "{last}");
    assert_eq!(last["drain"]["backlog_after"], 0.0, "{last}");
    // Every accepted event reached the fake SIEM, in batches no bigger than configured.
    assert_eq!(last["siem"]["events"], 240, "{last}");
    assert_eq!(last["siem"]["malformed"], 0, "{last}");
    assert!(
        last["siem"]["batches"].as_u64().unwrap() >= 240 / 50,
        "{last}"
    );
}

/// `--baseline-process`: the bare server runs in a process of its own, answers every request
/// of the same load, reports what a request cost it in CPU time, and is gone when the tool
/// exits. The gateway leg goes to the gateway as usual.
#[test]
fn the_load_tool_runs_its_bare_server_in_a_process_of_its_own_and_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port, admin) = gateway_for_load(
        dir.path(),
        "[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
    );
    let out = load_tool(port)
        .args([
            "--connections",
            "2",
            "--requests",
            "300",
            "--baseline-process",
        ])
        .args(["--metrics", &format!("http://127.0.0.1:{admin}/metrics")])
        .output()
        .unwrap();
    let last = stop_and_read_summary(child, &out);
    let (g, b) = (&last["gateway"], &last["baseline"]);
    assert_eq!(g["accepted"], 300, "{last}");
    assert_eq!(b["accepted"], 300, "{last}");
    assert_eq!(b["server"], "own process", "{last}");
    // Another process than the tool's, and ended (and reaped) before the tool exited.
    let pid = b["server_pid"].as_u64().unwrap();
    assert_ne!(pid, u64::from(std::process::id()));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the bare server's process {pid} outlived the load tool"
    );
    // Both sides' CPU time per request; the comparison carries their ratio when the bare
    // server's was measurable (its clock ticks are 10 ms: 300 requests may take fewer).
    assert!(
        g["target_cpu_us_per_request"].as_f64() >= Some(0.0),
        "{last}"
    );
    let bare_cpu = b["target_cpu_us_per_request"].as_f64().unwrap();
    assert!(bare_cpu >= 0.0, "{last}");
    assert!(
        last["comparison"]["ratio"].as_f64().unwrap() > 0.0,
        "{last}"
    );
    assert_eq!(
        last["comparison"]["cpu_per_request_x"].is_number(),
        bare_cpu > 0.0,
        "{last}"
    );

    // The bare server on its own: the address it is given, and a usage error for one that
    // is no address.
    let bad = Command::new(env!("CARGO_BIN_EXE_siemgate-load"))
        .args(["--serve-baseline", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("127.0.0.1:0"));
}

/// `--requests 0` only makes sense with `--drain`: a usage error otherwise, before any load;
/// and a drain whose gateway cannot be read fails at once.
#[test]
fn the_load_tool_refuses_a_run_that_sends_nothing_and_a_drain_it_cannot_watch() {
    let load_nothing = |more: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_siemgate-load"))
            .args([
                "--url",
                "http://127.0.0.1:9",
                "--source",
                "s",
                "--secret",
                "k",
            ])
            .args(["--requests", "0"])
            .args(more)
            .output()
            .unwrap()
    };
    let out = load_nothing(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--drain"));

    // A drain with no gateway to watch ends at once, failed, instead of waiting its timeout.
    let metrics = format!("http://127.0.0.1:{}/metrics", free_port());
    let out = load_nothing(&["--drain", "--metrics", &metrics]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read --metrics"));
}
