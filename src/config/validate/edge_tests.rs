//! The edges of validation: no secret in any message, ids that cannot name a path outside
//! their folder, and durations bounded so that no config can overflow time arithmetic.

use super::super::*;
use std::path::Path;

const MARKER: &str = "MARKER-9f1c2e7b";

fn env(k: &str) -> Option<String> {
    (k == "SECRET").then(|| MARKER.to_string())
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new("/nonexistent"), &env) {
        Ok(_) => panic!("config should not parse:\n{text}"),
        Err(e) => e.errors,
    }
}

/// A config around `source` (one `[[sources]]` table body) and `sinks` (more `[[sinks]]`).
fn config(top: &str, source: &str, sinks: &str) -> String {
    format!(
        "{top}\n[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsinks = [\"out\"]\n{source}\n\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"o.jsonl\"\n{sinks}"
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// Every secret key given a value of the wrong type, or a value that fails validation, from
/// the environment and literally: the messages name the key and its line, never the value.
#[test]
fn no_message_contains_a_secret_value() {
    let sink = |body: &str| format!("\n[[sinks]]\nid = \"s2\"\n{body}\n");
    let cases: Vec<(String, &str, &str)> = vec![
        // (config, key path reported, the line's text)
        (
            config("", "secrets = \"${SECRET}\"", ""),
            "sources[0].secrets",
            "secrets = ",
        ),
        (
            config("", &format!("secrets = \"{MARKER}\""), ""),
            "sources[0].secrets",
            "secrets = ",
        ),
        (
            config("", "secrets = [[\"${SECRET}\"]]", ""),
            "sources[0].secrets[0]",
            "secrets = ",
        ),
        (
            config("[admin]\ntoken = [\"${SECRET}\"]", "secrets = [\"s\"]", ""),
            "admin.token",
            "token = ",
        ),
        (
            config("[admin]\ntoken = 12345678", "secrets = [\"s\"]", ""),
            "admin.token",
            "token = ",
        ),
        (
            config(
                "[replay]\nstore = \"redis\"\nredis_url = [\"redis://:${SECRET}@h\"]",
                "secrets = [\"s\"]",
                "",
            ),
            "replay.redis_url",
            "redis_url = ",
        ),
        (
            config(
                "[replay]\nstore = \"redis\"\nredis_url = \"http://:${SECRET}@h\"",
                "secrets = [\"s\"]",
                "",
            ),
            "replay.redis_url",
            "redis_url = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"splunk_hec\"\nurl = \"https://x\"\ntoken = [\"${SECRET}\"]"),
            ),
            "sinks[1].token",
            "token = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"http\"\nurl = \"https://x\"\nsigning_secret = { v = \"${SECRET}\" }"),
            ),
            "sinks[1].signing_secret",
            "signing_secret = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"sentinel\"\nendpoint = \"https://x\"\ndcr_id = \"d\"\nstream = \"s\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = [\"${SECRET}\"]"),
            ),
            "sinks[1].client_secret",
            "client_secret = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"sentinel_data_collector\"\nworkspace_id = \"w\"\nshared_key = [\"${SECRET}\"]"),
            ),
            "sinks[1].shared_key",
            "shared_key = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"datadog\"\napi_key = 1.5\n"),
            ),
            "sinks[1].api_key",
            "api_key = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"datadog\"\napi_key = [\"${SECRET}\"]"),
            ),
            "sinks[1].api_key",
            "api_key = ",
        ),
        // not secret keys, but values from the environment: scrubbed all the same
        (
            config("[server]\nlisten = \"${SECRET}\"", "secrets = [\"s\"]", ""),
            "server.listen",
            "listen = ",
        ),
        (
            config(
                "",
                "secrets = [\"s\"]",
                &sink("type = \"splunk_hec\"\nurl = \"${SECRET}\"\ntoken = \"t\""),
            ),
            "sinks[1].url",
            "url = ",
        ),
        (
            config("", "secrets = [\"s\"]\ntolerance = \"${SECRET}\"", ""),
            "sources[0].tolerance",
            "tolerance = ",
        ),
        (
            config("", "secrets = [\"s\"]\nvendor_x = \"${SECRET}\"", ""),
            "sources[0].vendor_x",
            "vendor_x = ",
        ),
    ];
    for (text, path, line_text) in cases {
        let errs = errors(&text);
        let shown = ConfigErrors {
            file: None,
            errors: errs.clone(),
        }
        .to_string();
        assert!(!shown.contains(MARKER), "secret shown for {path}:\n{shown}");
        assert!(
            !shown.contains("MARKER"),
            "part of a secret shown:\n{shown}"
        );
        let e = errs
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} not named in:\n{shown}\n{text}"));
        assert_eq!(e.line, Some(line_of(&text, line_text)), "{shown}\n{text}");
    }
}

#[test]
fn a_type_error_says_what_was_expected_and_what_kind_was_found() {
    let text = config("", "secrets = \"${SECRET}\"", "");
    let errs = errors(&text);
    let e = errs
        .iter()
        .find(|e| e.path == "sources[0].secrets")
        .unwrap();
    assert_eq!(
        e.message,
        "invalid type: expected a sequence, found a string"
    );
}

#[test]
fn ids_start_with_a_letter_or_digit() {
    for bad in [
        ".",
        "..",
        "...",
        ".hidden",
        "-x",
        "_x",
        "",
        "a/b",
        "a b",
        &"a".repeat(65),
    ] {
        let text = config("", "secrets = [\"s\"]", "")
            .replace("id = \"gh\"", &format!("id = {bad:?}"))
            .replace("id = \"out\"", &format!("id = {bad:?}"))
            .replace("sinks = [\"out\"]", &format!("sinks = [{bad:?}]"));
        let errs = errors(&text);
        for path in ["sources[0].id", "sinks[0].id"] {
            assert!(
                errs.iter()
                    .any(|e| e.path == path && e.message.contains("start with a letter or digit")),
                "{bad:?} accepted as {path}: {errs:?}"
            );
        }
    }
    for good in ["a", "0", "a.b", "A-1_2.x", "x..y", &"a".repeat(64)] {
        assert!(valid_id(good), "{good:?}");
    }
}

/// The bound of each duration key, and a value just past it refused with a clear message.
#[test]
fn durations_are_bounded() {
    let ok = |text: &str| {
        parse(text, Path::new("/nonexistent"), &env)
            .unwrap_or_else(|e| panic!("should parse:\n{e}\n{text}"))
    };
    // tolerance: 7 days
    let c = ok(&config("", "secrets = [\"s\"]\ntolerance = \"7d\"", ""));
    assert_eq!(c.sources[0].tolerance, Duration::from_secs(7 * 86400));
    for (top, source, sink, path, bound) in [
        (
            "",
            "tolerance = \"20000y\"",
            "",
            "sources[0].tolerance",
            "\"7d\"",
        ),
        (
            "",
            "tolerance = \"7d 1s\"",
            "",
            "sources[0].tolerance",
            "\"7d\"",
        ),
        (
            "[replay]\nretention = \"31d\"",
            "",
            "",
            "replay.retention",
            "\"30d\"",
        ),
        (
            "[server]\nheader_timeout = \"2h\"",
            "",
            "",
            "server.header_timeout",
            "\"1h\"",
        ),
        (
            "[server]\nrequest_timeout = \"100y\"",
            "",
            "",
            "server.request_timeout",
            "\"1h\"",
        ),
        (
            "[server]\nshutdown_grace = \"11m\"",
            "",
            "",
            "server.shutdown_grace",
            "\"10m\"",
        ),
        (
            "[server]\ndrain_timeout = \"2h\"",
            "",
            "",
            "server.drain_timeout",
            "\"1h\"",
        ),
        (
            "[spool]\nflush_timeout = \"2h\"",
            "",
            "",
            "spool.flush_timeout",
            "\"1h\"",
        ),
        (
            "",
            "",
            "retry = { max_age = \"31d\" }",
            "sinks[0].retry.max_age",
            "\"30d\"",
        ),
        (
            "",
            "",
            "retry = { max_backoff = \"2d\" }",
            "sinks[0].retry.max_backoff",
            "\"1d\"",
        ),
        (
            "",
            "",
            "retry = { max_retry_after = \"25h\" }",
            "sinks[0].retry.max_retry_after",
            "\"1d\"",
        ),
        (
            "",
            "",
            "retry = { initial_backoff = \"2h\" }",
            "sinks[0].retry.initial_backoff",
            "\"1h\"",
        ),
        (
            "",
            "",
            "batch = { timeout = \"2h\" }",
            "sinks[0].batch.timeout",
            "\"1h\"",
        ),
        ("", "", "timeout = \"2h\"", "sinks[0].timeout", "\"1h\""),
    ] {
        let text = config(top, &format!("secrets = [\"s\"]\n{source}"), sink);
        let errs = errors(&text);
        let e = errs
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} not refused: {errs:?}"));
        assert_eq!(e.message, format!("must be at most {bound}"));
        assert!(e.line.is_some(), "{e:?}");
    }
    // the largest values of each are accepted
    let c = ok(&config(
        "[replay]\nretention = \"30d\"\n[server]\nrequest_timeout = \"1h\"\nshutdown_grace = \"10m\"",
        "secrets = [\"s\"]",
        "retry = { max_age = \"30d\", max_backoff = \"1d\", max_retry_after = \"1d\" }",
    ));
    assert_eq!(c.replay.retention, Duration::from_secs(30 * 86400));
    assert_eq!(c.sinks[0].retry.max_backoff, Duration::from_secs(86400));
    assert_eq!(c.sinks[0].retry.max_retry_after, Duration::from_secs(86400));
    // a duration too large to represent is refused without repeating it
    let errs = errors(&config(
        "",
        "secrets = [\"s\"]\ntolerance = \"99999999999999999999y\"",
        "",
    ));
    assert!(
        errs.iter().any(|e| e.path == "sources[0].tolerance"
            && e.message.contains("not a duration")
            && !e.message.contains("9999")),
        "{errs:?}"
    );
}

#[test]
fn a_secret_file_is_read_only_up_to_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![b'x'; 70 * 1024]).unwrap();
    let text = config("", "secrets_file = \"big\"", "");
    let errs = parse(&text, dir.path(), &env).unwrap_err().errors;
    assert!(
        errs.iter()
            .any(|e| e.path == "sources[0].secrets_file[0]" && e.message.contains("larger than")),
        "{errs:?}"
    );
}

/// A sink listed twice by a source would be counted twice per event in the spool and delivered
/// once, so its pending count would never drain.
#[test]
fn a_source_lists_each_sink_once() {
    let text = config("", "secrets = [\"s\"]", "")
        .replace("sinks = [\"out\"]", "sinks = [\"out\", \"out\"]");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.path == "sources[0].sinks[1]" && e.message.contains("listed twice")),
        "{errs:?}"
    );
}

/// A sink URL that is refused is quoted redacted: its userinfo and query values are credentials
/// the secret scrubber cannot know (a literal, or an env value ending in `/`, which is trimmed).
#[test]
fn a_refused_sink_url_is_quoted_without_its_credentials() {
    for url in [
        format!("ftp://user:{MARKER}@h.example/p?token={MARKER}"),
        "${SECRET}/".to_string(),
    ] {
        let text = config(
            "",
            "secrets = [\"s\"]",
            &format!("\n[[sinks]]\nid = \"s2\"\ntype = \"http\"\nurl = \"{url}\"\n"),
        );
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.path == "sinks[1].url" && e.message.contains("not an https:// URL")),
            "{errs:?}"
        );
        assert!(
            errs.iter().all(|e| !e.to_string().contains(MARKER)),
            "{errs:?}"
        );
    }
}
