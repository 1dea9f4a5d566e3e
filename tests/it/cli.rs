//! The command line, run as users run it: the built binary.

use crate::support::*;
use std::process::Command;

fn siemgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_siemgate"));
    c.env("RUST_LOG", "error");
    c
}

fn demo() -> String {
    format!("{}/config/demo.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_the_demo_and_redacts_secrets() {
    let out = siemgate()
        .args(["check", "--config", &demo()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("source github-demo: vendor github"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("demo-github-secret") && !stdout.contains("demo-admin-token"),
        "{stdout}"
    );
}

#[test]
fn check_names_every_problem_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"nowhere\"\n\n[[sources]]\nid = \"a\"\nvendor = \"githubb\"\nsecrets = [\"${SIEMGATE_TEST_UNSET}\"]\nsinks = [\"out\"]\n\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"o.jsonl\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = siemgate()
        .args(["check", "--config", path.to_str().unwrap()])
        .env_remove("SIEMGATE_TEST_UNSET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "line 2: server.listen",
        "line 6: sources[0].vendor",
        "line 7: sources[0].secrets[0]: environment variable SIEMGATE_TEST_UNSET is not set",
        "line 14: sinks[0]",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_version_names_ocsf() {
    assert_eq!(
        siemgate()
            .args(["frobnicate"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let out = siemgate().arg("version").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ocsf {}", siemgate::event::OCSF_VERSION)),
        "{stdout}"
    );
}

#[test]
fn sign_prints_headers_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body.json");
    std::fs::write(&body_path, br#"{"id":"evt_cli","type":"charge.failed"}"#).unwrap();
    let out = siemgate()
        .args([
            "sign",
            "--config",
            &demo(),
            "--source",
            "stripe-demo",
            "--body",
            body_path.to_str().unwrap(),
            "--timestamp",
            "1700000000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let header = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stripe-signature: "))
        .expect("a Stripe-Signature line");
    assert!(header.starts_with("t=1700000000,v1="), "{header}");

    // The printed signature is what the library computes for that secret.
    let config = siemgate::config::load(std::path::Path::new(&demo())).unwrap();
    let ts = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let expected = siemgate::cli::sign_headers(
        &config,
        "stripe-demo",
        &std::fs::read(&body_path).unwrap(),
        "x",
        ts,
    )
    .unwrap();
    assert_eq!(expected[0].1, header);
}

#[tokio::test]
async fn send_posts_a_signed_event_to_a_running_gateway() {
    let gw = TestGateway::start(Options {
        tls: Tls::On,
        server: String::new(),
        sources: source("cli-gh", "github", &["cli-secret"], ""),
        ..Default::default()
    })
    .await;
    // The same sources, in a config file the CLI can read.
    let cfg = gw.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"x.jsonl\"\n",
            source("cli-gh", "github", &["cli-secret"], "")
        ),
    )
    .unwrap();
    let ca = gw.dir.path().join("ca.crt");
    let body = gw.dir.path().join("body.json");
    std::fs::write(
        &body,
        br#"{"action":"created","alert":{"number":1,"html_url":"https://github.com/acme/api/security/code-scanning/1","rule":{"id":"js/sql-injection","description":"SQL injection","security_severity_level":"high"}},"repository":{"full_name":"acme/api"},"sender":{"login":"octocat"}}"#,
    )
    .unwrap();
    let url = gw.base();
    let args: Vec<String> = vec![
        "send".into(),
        "--config".into(),
        cfg.to_str().unwrap().into(),
        "--source".into(),
        "cli-gh".into(),
        "--url".into(),
        url,
        "--body".into(),
        body.to_str().unwrap().into(),
        "--ca-file".into(),
        ca.to_str().unwrap().into(),
        "--event-id".into(),
        "cli-delivery".into(),
        "--header".into(),
        "X-GitHub-Event: code_scanning_alert".into(),
    ];
    let port = gw.handle.ingest_addr.port();
    let out = tokio::task::spawn_blocking(move || {
        // `localhost` resolves to the test listener's loopback address.
        siemgate().args(&args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "port {port}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "200\n{\"status\":\"accepted\",\"events\":1}");
    // The README's first event: with its unsigned event header, a Detection Finding.
    let e = &gw.events().await[0];
    assert_eq!(e["metadata"]["uid"], "cli-delivery");
    assert_eq!(e["class_uid"], 2004, "{e}");
    assert_eq!(e["severity_id"], 4, "{e}");
}
