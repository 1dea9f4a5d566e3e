use super::super::*;
use crate::sink::EntraCredential;
use std::path::Path;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new("."), &no_env) {
        Ok(c) => c,
        Err(e) => panic!("config should parse:\n{e}"),
    }
}

fn parse_err(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new("."), &no_env) {
        Ok(_) => panic!("config should not parse"),
        Err(e) => e.errors,
    }
}

const MINIMAL: &str = r#"
[[sources]]
id = "gh"
vendor = "github"
secrets = ["s1"]
sinks = ["out"]

[[sinks]]
id = "out"
type = "file"
path = "/tmp/siemgate-test-out.jsonl"
"#;

#[test]
fn minimal_config_gets_contract_defaults() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.server.max_body, 1 << 20);
    assert_eq!(c.server.header_timeout, Duration::from_secs(10));
    assert_eq!(c.server.request_timeout, Duration::from_secs(30));
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(
        c.server.client_rate_limit,
        RateLimit {
            per_second: 200,
            burst: 400
        }
    );
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.replay.retention, Duration::from_secs(86400));
    // The contract's default store: durable, local; sized for a day of ~115 events a second.
    assert!(matches!(c.replay.store, ReplayStoreKind::Local));
    assert_eq!(c.replay.max_entries, 20_000_000);
    assert_eq!(c.spool.max_size, 10 << 30);
    let s = &c.sources[0];
    assert_eq!(s.tolerance, Duration::from_secs(300));
    assert!(s.include_raw);
    assert_eq!(s.secrets[0].expose(), b"s1");
}

#[test]
fn demo_config_parses() {
    let c = parse_ok(DEMO_CONFIG);
    assert!(c.sources.len() >= 5);
    assert!(c.server.tls.is_none());
}

#[test]
fn bench_config_parses() {
    let c = parse_ok(include_str!("../../../config/bench.toml"));
    assert!(c.server.client_rate_limit.per_second >= 1_000_000);
    assert_eq!(c.sinks[0].batch.max_events, 1000);
}

/// The example config, with its absolute paths moved into a temporary directory holding the
/// files it names, parses with the environment it references.
#[test]
fn example_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("etc");
    let text = include_str!("../../../config/example.toml")
        .replace("/etc/siemgate", root.to_str().unwrap());
    for f in [
        "tls/tls.crt",
        "tls/tls.key",
        "tls/ca.crt",
        "admin-token",
        "secrets/stripe",
        "secrets/azure-client-secret",
        "splunk-ca.pem",
    ] {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "value\n").unwrap();
    }
    let env = |k: &str| Some(format!("env-{k}"));
    let c = parse(&text, dir.path(), &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sources.len(), 6);
    assert_eq!(c.sinks.len(), 4);
    assert_eq!(c.sources[0].secrets.len(), 2);
    assert_eq!(c.sources[0].secrets[1].expose(), b"env-GH_SECRET_PREVIOUS");
    // secrets_file: trailing newline stripped
    assert_eq!(c.sources[1].secrets[0].expose(), b"value");
    assert!(c.admin.token.is_some());
    assert!(
        matches!(&c.sinks[2].kind, SinkKind::Datadog(d) if d.url == "https://http-intake.logs.datadoghq.eu")
    );
    // Nothing secret shows up when the whole config is printed.
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("env-GH_SECRET"),
        "a secret leaked into Debug output"
    );
    assert!(
        !c.summary().contains("env-"),
        "a secret leaked into the summary"
    );
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let text = format!("{MINIMAL}\n[server]\nlisten = \"127.0.0.1:1\"\nmax_bodyy = \"1MiB\"\n");
    let errs = parse_err(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.contains("max_bodyy"), "{errs:?}");
    assert_eq!(
        errs[0].line,
        Some(
            text.lines()
                .position(|l| l.starts_with("max_bodyy"))
                .unwrap()
                + 1
        )
    );
    let errs = parse_err(&format!("{MINIMAL}\n[serverr]\n"));
    assert!(
        errs[0].path == "serverr" && errs[0].line.is_some(),
        "{errs:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
max_body = "lots"

[[sources]]
id = "a b"
vendor = "nosuchvendor"
secrets = ["x"]
sinks = ["missing"]

[[sources]]
id = "ok"
vendor = "github"
secrets = ["${NOT_SET_ANYWHERE}"]
sinks = ["out"]

[[sinks]]
id = "out"
type = "file"
path = "x.jsonl"
"#;
    let errs = parse_err(text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "server.max_body",
        "sources[0].id",
        "sources[0].vendor",
        "sources[0].sinks[0]",
        "sources[1].secrets[0]",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} not reported in {errs:#?}"
        );
    }
    let env_err = errs
        .iter()
        .find(|e| e.path == "sources[1].secrets[0]")
        .unwrap();
    assert!(env_err.message.contains("NOT_SET_ANYWHERE"));
    assert_eq!(env_err.line, Some(14));
    assert!(errs.iter().all(|e| e.line.is_some()), "{errs:#?}");
}

#[test]
fn secret_files_and_env_are_resolved() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s1"), "from-file\r\n").unwrap();
    let text = MINIMAL.replace(
        r#"secrets = ["s1"]"#,
        r#"secrets = ["${A}"]
secrets_file = "s1""#,
    );
    let env = |k: &str| (k == "A").then(|| "from-env".to_string());
    let c = parse(&text, dir.path(), &env).unwrap();
    let got: Vec<&[u8]> = c.sources[0].secrets.iter().map(|s| s.expose()).collect();
    assert_eq!(got, vec![&b"from-env"[..], &b"from-file"[..]]);

    let text = MINIMAL.replace(r#"secrets = ["s1"]"#, r#"secrets_file = "missing-file""#);
    let errs = parse(&text, dir.path(), &env).unwrap_err().errors;
    assert_eq!(errs[0].path, "sources[0].secrets_file[0]");
}

#[test]
fn vendor_keys_are_checked_per_vendor() {
    let errs = parse_err(&MINIMAL.replace(
        "vendor = \"github\"",
        "vendor = \"github\"\nheader = \"X-Sig\"",
    ));
    assert_eq!(errs[0].path, "sources[0].header");
    assert!(errs[0].message.contains("not a key of vendor github"));

    // No list of vendor keys is kept: any key the vendor does not read is refused, with its
    // line; a vendor's own key that is not a string is named as such.
    let errs = parse_err(&MINIMAL.replace(
        "vendor = \"github\"",
        "vendor = \"github\"\nsecretz = [\"y\"]",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "sources[0].secretz");
    assert!(errs[0].message.contains("not a key of vendor github"));
    assert!(errs[0].line.is_some(), "{errs:?}");
    let errs = parse_err(&MINIMAL.replace("vendor = \"github\"", "vendor = \"okta\"\nheader = 5"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0].path.as_str(), errs[0].message.as_str()),
        ("sources[0].header", "must be a string")
    );

    let generic = MINIMAL.replace(
        "vendor = \"github\"",
        "vendor = \"generic_hmac\"\nheader = \"X-Sig\"\nsigned_template = \"{timestamp}.{bodyy}\"\nalgorithm = \"md5\"",
    );
    let errs = parse_err(&generic);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"sources[0].signed_template"), "{errs:?}");
    assert!(paths.contains(&"sources[0].algorithm"), "{errs:?}");

    let ok = MINIMAL.replace(
        "vendor = \"github\"",
        "vendor = \"generic_hmac\"\nheader = \"X-Sig\"\nsigned_template = \"v0:{timestamp}:{body}\"\ntimestamp_header = \"X-Ts\"",
    );
    let c = parse_ok(&ok);
    let g = c.sources[0].options.generic.as_ref().unwrap();
    assert_eq!(
        g.signed.to_vec(),
        vec![
            TemplatePart::Literal("v0:".into()),
            TemplatePart::Timestamp,
            TemplatePart::Literal(":".into()),
            TemplatePart::Body
        ]
    );
}

#[test]
fn vendor_secret_forms_are_checked() {
    let errs = parse_err(
        &MINIMAL
            .replace("vendor = \"github\"", "vendor = \"standard_webhooks\"")
            .replace("\"s1\"", "\"whsec_!!notbase64!!\""),
    );
    assert_eq!(errs[0].path, "sources[0].secrets[0]");
    // A Graph clientState is at most 128 characters.
    let long = "c".repeat(129);
    let errs = parse_err(
        &MINIMAL
            .replace("vendor = \"github\"", "vendor = \"msgraph\"")
            .replace("\"s1\"", &format!("{long:?}")),
    );
    assert_eq!(errs[0].path, "sources[0].secrets[0]");
    parse_ok(&MINIMAL.replace("vendor = \"github\"", "vendor = \"msgraph\""));
}

#[test]
fn sinks_are_checked_by_type() {
    let text = format!(
        "{MINIMAL}\n[[sinks]]\nid = \"splunk\"\ntype = \"splunk_hec\"\nurl = \"http://splunk:8088\"\ntoken = \"t\"\nsite = \"datadoghq.com\"\n"
    );
    let errs = parse_err(&text);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"sinks[1].url"),
        "plain http must be refused: {errs:?}"
    );
    assert!(
        paths.contains(&"sinks[1].site"),
        "site is not a splunk key: {errs:?}"
    );
    let ok = text.replace("\nsite = \"datadoghq.com\"", "\nallow_http = true");
    let c = parse_ok(&ok);
    assert!(
        matches!(&c.sinks[1].kind, SinkKind::SplunkHec(hec) if hec.url == "http://splunk:8088")
    );
}

#[test]
fn duplicate_ids_and_shared_listeners_are_refused() {
    let text = format!("{MINIMAL}\n[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsecrets = [\"x\"]\nsinks = [\"out\"]\n");
    let errs = parse_err(&text);
    assert!(
        errs.iter()
            .any(|e| e.path == "sources[1].id" && e.message.contains("duplicate")),
        "{errs:?}"
    );
    let errs = parse_err(&format!(
        "{MINIMAL}\n[server]\nlisten = \"127.0.0.1:9090\"\n"
    ));
    assert!(errs.iter().any(|e| e.path == "admin.listen"), "{errs:?}");
}

#[test]
fn syntax_errors_have_lines() {
    let errs = parse_err("[server]\nlisten = \n");
    assert_eq!(errs[0].line, Some(2));
}

#[test]
fn a_sentinel_sink_takes_a_client_secret_or_a_workload_identity_token_file_not_both() {
    let sink = |cred: &str| {
        format!(
            "{}\n[[sinks]]\nid = \"az\"\ntype = \"sentinel\"\nendpoint = \"https://dce.example\"\ndcr_id = \"dcr-1\"\nstream = \"Custom-SiemGate\"\ntenant_id = \"t\"\nclient_id = \"c\"\n{cred}\n",
            MINIMAL.replace("sinks = [\"out\"]", "sinks = [\"out\", \"az\"]")
        )
    };
    let token = std::env::temp_dir().join("siemgate-test-federated-token");
    std::fs::write(&token, "jwt").unwrap();
    let file = format!("client_assertion_file = {:?}", token.display().to_string());
    let c = parse_ok(&sink(&file));
    assert!(matches!(
        &c.sinks[1].kind,
        SinkKind::Sentinel(az) if matches!(&az.credential, EntraCredential::AssertionFile(p) if *p == token)
    ));
    let c = parse_ok(&sink("client_secret = \"s\""));
    assert!(matches!(
        &c.sinks[1].kind,
        SinkKind::Sentinel(az) if matches!(az.credential, EntraCredential::Secret(_))
    ));
    let both = parse_err(&sink(&format!("client_secret = \"s\"\n{file}")));
    assert!(
        both.iter().any(|e| e.message.contains("not both")),
        "{both:?}"
    );
    let neither = parse_err(&sink(""));
    assert!(
        neither
            .iter()
            .any(|e| e.message.contains("missing client_secret")),
        "{neither:?}"
    );
    let missing = parse_err(&sink("client_assertion_file = \"/nonexistent/token\""));
    assert!(
        missing
            .iter()
            .any(|e| e.path.ends_with("client_assertion_file")),
        "{missing:?}"
    );
}
