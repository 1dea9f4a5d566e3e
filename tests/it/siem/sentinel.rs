//! Microsoft Sentinel: Entra ID client credentials + the Logs Ingestion API.

use super::*;

pub(super) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub(super) const CLIENT_ID: &str = "0b3c6ac9-7e5f-4d2a-9c1e-3f4a5b6c7d8e";
pub(super) const CLIENT_SECRET: &str = "Qx8~client.secret_value-1";
pub(super) const DCR: &str = "dcr-00000000000000000000000000000000";
pub(super) const STREAM: &str = "Custom-WebhookEvents_CL";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum TokenMode {
    Issue,
    Down,
    InvalidClient,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum IngestMode {
    Up,
    Down,
    /// 413 for any body with more than one record.
    OneRecordOnly,
}

pub(super) struct AzState {
    token: TokenMode,
    /// Tokens `tok-1` .. `tok-<issued>` were issued; the ingestion API takes those above
    /// `revoked` (an unexpired token is good, whichever it is).
    issued: u32,
    revoked: u32,
    ingest: IngestMode,
    /// Federated tokens (workload identity) Entra ID takes as client assertions.
    assertions: Vec<String>,
}

#[derive(Clone)]
pub(super) struct Az(Arc<Mutex<AzState>>);

impl Az {
    pub(super) fn new() -> Az {
        Az(Arc::new(Mutex::new(AzState {
            token: TokenMode::Issue,
            issued: 0,
            revoked: 0,
            ingest: IngestMode::Up,
            assertions: Vec::new(),
        })))
    }

    fn trust_assertion(&self, a: &str) {
        self.0.lock().unwrap().assertions.push(a.to_string());
    }

    fn token(&self, m: TokenMode) {
        self.0.lock().unwrap().token = m;
    }

    pub(super) fn ingest(&self, m: IngestMode) {
        self.0.lock().unwrap().ingest = m;
    }

    /// The ingestion API stops taking every token issued so far.
    fn revoke_tokens(&self) {
        let mut st = self.0.lock().unwrap();
        st.revoked = st.issued;
    }
}

pub(super) fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

pub(super) fn ingest_path() -> String {
    format!("/dataCollectionRules/{DCR}/streams/{STREAM}")
}

pub(super) fn entra_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(&json!({"error": error, "error_description": description}).to_string())
}

pub(super) fn az_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_header("x-ms-error-code", code)
        .with_body(&json!({"error": {"code": code, "message": message}}).to_string())
}

/// Entra ID's token endpoint and the Logs Ingestion API on one server.
pub(super) fn azure_reply(az: &Az, c: &Captured) -> Reply {
    let mut st = az.0.lock().unwrap();
    if c.path == token_path() {
        if c.method != "POST" {
            return Reply::status(405);
        }
        if !c
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        {
            return entra_error(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.");
        }
        let f = form(&String::from_utf8_lossy(&c.body));
        let get = |k: &str| f.get(k).map(String::as_str);
        if get("grant_type") != Some("client_credentials") {
            return entra_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if get("client_id") != Some(CLIENT_ID) {
            return entra_error(
                400,
                "unauthorized_client",
                "AADSTS700016: Application not found in the directory.",
            );
        }
        let assertion_ok = get("client_assertion_type")
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && get("client_assertion").is_some_and(|a| st.assertions.iter().any(|t| t == a));
        if get("client_secret").is_some() && get("client_assertion").is_some() {
            return entra_error(
                400,
                "invalid_request",
                "AADSTS50027: Only one client credential may be used.",
            );
        }
        if get("client_secret") != Some(CLIENT_SECRET) && !assertion_ok {
            return entra_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        if get("scope") != Some("https://monitor.azure.com/.default") {
            return entra_error(
                400,
                "invalid_scope",
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            );
        }
        let mode = st.token;
        return match mode {
            TokenMode::Issue => {
                st.issued += 1;
                Reply::status(200)
                    .with_header("content-type", "application/json; charset=utf-8")
                    .with_body(
                        &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                "access_token": format!("tok-{}", st.issued)})
                        .to_string(),
                    )
            }
            TokenMode::Down => entra_error(
                503,
                "temporarily_unavailable",
                "AADSTS90033: A transient error has occurred.",
            ),
            TokenMode::InvalidClient => entra_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            ),
        };
    }
    if !c.path.starts_with("/dataCollectionRules/") {
        return Reply::status(404);
    }
    if c.method != "POST" {
        return Reply::status(405);
    }
    let good = c
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer tok-"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n > st.revoked && n <= st.issued);
    if !good {
        return az_error(
            401,
            "InvalidToken",
            "The authentication token provided is invalid or expired.",
        );
    }
    if c.path != ingest_path() {
        return az_error(
            404,
            "InvalidStream",
            "The stream or data collection rule does not exist.",
        );
    }
    if query(c).get("api-version").map(String::as_str) != Some("2023-01-01") {
        return az_error(
            400,
            "InvalidApiVersion",
            "The api-version is missing or not supported.",
        );
    }
    if c.header("content-type") != Some("application/json") {
        return az_error(
            415,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    if c.wire_len > 1_048_576 || c.body.len() > 1_048_576 {
        return az_error(
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 1048576 bytes (1 MB).",
        );
    }
    let records = match serde_json::from_slice::<Value>(&c.body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        _ => {
            return az_error(
                400,
                "InvalidContent",
                "The body is not a JSON array of objects.",
            )
        }
    };
    for r in &records {
        let ok = r["TimeGenerated"]
            .as_str()
            .is_some_and(|t| OffsetDateTime::parse(t, &Rfc3339).is_ok());
        if !ok {
            return az_error(400, "InvalidContent", "TimeGenerated is not a datetime.");
        }
    }
    let mode = st.ingest;
    match mode {
        IngestMode::Up => Reply::status(204),
        IngestMode::Down => az_error(503, "ServiceUnavailable", "The service is unavailable."),
        IngestMode::OneRecordOnly if records.len() > 1 => az_error(
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 1048576 bytes (1 MB).",
        ),
        IngestMode::OneRecordOnly => Reply::status(204),
    }
}

pub(super) async fn azure_fake(az: &Az) -> FakeServer {
    let az = az.clone();
    FakeServer::start(move |c, _| azure_reply(&az, c)).await
}

/// Entra ID's token endpoint and the Logs Ingestion API.
pub(super) struct Sentinel;

impl Siem for Sentinel {
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\nid = \"{id}\"\ntype = \"sentinel\"\nendpoint = \"{u}\"\nauthority = \"{u}\"\ndcr_id = \"{DCR}\"\nstream = \"{STREAM}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
            u = fake.url("")
        )
    }

    fn is_ingest(c: &Captured) -> bool {
        c.path.starts_with("/dataCollectionRules/")
    }

    fn request_uids(c: &Captured) -> Vec<String> {
        az_records(c)
            .iter()
            .map(|r| r["EventId"].as_str().unwrap().to_string())
            .collect()
    }
}

pub(super) fn is_token_request(c: &Captured) -> bool {
    c.path == token_path()
}

pub(super) fn az_records(c: &Captured) -> Vec<Value> {
    match c.json() {
        Value::Array(a) => {
            crate::ocsf_schema::assert_conforms("Sentinel records", a.iter().map(|r| &r["Event"]));
            a
        }
        other => panic!("expected a JSON array of records, got {other}"),
    }
}

pub(super) fn check_az_request(c: &Captured) {
    assert_eq!(c.method, "POST");
    assert_eq!(c.path, ingest_path());
    assert_eq!(
        query(c).get("api-version").map(String::as_str),
        Some("2023-01-01")
    );
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("content-encoding"), Some("gzip"));
    assert!(
        c.header("x-ms-client-request-id").is_some_and(is_uuid),
        "{:?}",
        c.header("x-ms-client-request-id")
    );
    assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
}

pub(super) fn check_az_record(r: &Value, src: &str) {
    let e = &r["Event"];
    assert!(e.is_object(), "Event is the OCSF object: {r}");
    assert_eq!(r["EventId"], uid_of(e).as_str(), "{r}");
    assert_eq!(r["Source"], src, "{r}");
    assert_eq!(r["Vendor"], "github", "{r}");
    assert_eq!(r["ClassUid"], e["class_uid"], "{r}");
    assert_eq!(r["ClassName"], e["class_name"], "{r}");
    assert_eq!(r["SeverityId"], e["severity_id"], "{r}");
    assert_eq!(r["Severity"], e["severity"], "{r}");
    assert_eq!(r["Message"], e["message"], "{r}");
    let t = rfc3339_ms(r["TimeGenerated"].as_str().unwrap());
    assert_eq!(t, e["time"].as_i64().unwrap(), "{r}");
}

#[tokio::test]
async fn sentinel_fetches_one_token_and_posts_gzipped_record_arrays() {
    let az = Az::new();
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("az-src", &["az"]),
        Sentinel::sink("az", &fake, QUICK, ""),
    )
    .await;
    let s = health_checked(&gw, "az").await;
    assert_eq!(s["health_check"], "passed", "{s}");
    assert_eq!(s["type"], "sentinel");
    gw.clock.advance(Duration::from_millis(123));
    // Three batches, one after the other.
    for i in 0..3 {
        let id = format!("az-{i}");
        accept(&gw, "az-src", &id).await;
        fake.wait_until(&format!("{id} delivered"), |r| {
            Sentinel::uids(r).contains(&id)
        })
        .await;
        gw.clock.advance(Duration::from_millis(250));
    }
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(Sentinel::uids(&reqs)), ["az-0", "az-1", "az-2"]);
    let tokens: Vec<&Captured> = reqs.iter().filter(|c| is_token_request(c)).collect();
    assert_eq!(tokens.len(), 1, "the token is cached across batches");
    assert!(tokens[0].delivered());
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| Sentinel::is_ingest(c)).collect();
    assert_eq!(
        ingests.len(),
        3,
        "every ingestion request was answered 204 at once"
    );
    let mut ids = HashSet::new();
    for c in &ingests {
        assert_eq!(c.answered, 204);
        assert_eq!(c.header("authorization"), Some("Bearer tok-1"));
        check_az_request(c);
        ids.insert(c.header("x-ms-client-request-id").unwrap().to_string());
        for r in az_records(c) {
            check_az_record(&r, "az-src");
            check_against_the_shipped_table(&r);
        }
    }
    assert_eq!(ids.len(), 3, "a new x-ms-client-request-id per request");
    let s = sink_status(&gw, "az").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
}

/// A record has exactly the columns of the table and DCR stream users create from
/// `deploy/sentinel/`, each with a JSON value of the column's type: a column the DCR does not
/// declare would be dropped by Azure without an error.
pub(super) fn check_against_the_shipped_table(record: &Value) {
    let read = |f: &str| -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/sentinel")
            .join(f);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let table = read("table.json");
    let dcr = read("dcr.json");
    let stream = dcr["resources"][0]["properties"]["streamDeclarations"]["Custom-SiemGate"]
        ["columns"]
        .clone();
    for columns in [&table["properties"]["schema"]["columns"], &stream] {
        let columns = columns.as_array().expect("a column list");
        let mut names: Vec<&str> = columns
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let mut keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort();
        keys.sort();
        assert_eq!(keys, names, "the record's fields are the shipped columns");
        for c in columns {
            let v = &record[c["name"].as_str().unwrap()];
            let ok = match c["type"].as_str().unwrap() {
                "string" => v.is_string(),
                "int" | "long" => v.is_i64() || v.is_u64(),
                "datetime" => v.as_str().is_some_and(|s| rfc3339_ms(s) > 0),
                "dynamic" => v.is_object(),
                other => panic!("unexpected column type {other}"),
            };
            assert!(ok, "column {c} holds {v}");
        }
    }
}

#[tokio::test]
async fn sentinel_signs_in_with_a_rotated_workload_identity_token_instead_of_a_secret() {
    let az = Az::new();
    az.trust_assertion("federated-token-1");
    let fake = azure_fake(&az).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-token-1\n").unwrap();
    let sink = Sentinel::sink("wi", &fake, QUICK, "").replace(
        &format!("client_secret = \"{CLIENT_SECRET}\"\n"),
        &format!(
            "client_assertion_file = {:?}\n",
            token_file.display().to_string()
        ),
    );
    let gw = start("", gh("wi-src", &["wi"]), sink).await;
    accept(&gw, "wi-src", "wi-0").await;
    gw.delivered().await;
    // The kubelet rotates the projected token; the next token request reads the new one.
    std::fs::write(&token_file, "federated-token-2").unwrap();
    az.trust_assertion("federated-token-2");
    az.revoke_tokens();
    accept(&gw, "wi-src", "wi-1").await;
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(Sentinel::uids(&reqs)), ["wi-0", "wi-1"]);
    let assertions: Vec<String> = reqs
        .iter()
        .filter(|c| is_token_request(c) && c.answered == 200)
        .map(|c| {
            let f = form(&String::from_utf8_lossy(&c.body));
            assert!(!f.contains_key("client_secret"), "{f:?}");
            f["client_assertion"].clone()
        })
        .collect();
    assert_eq!(
        assertions.last().map(String::as_str),
        Some("federated-token-2"),
        "{assertions:?}"
    );
    assert_eq!(assertions[0], "federated-token-1");
}

#[tokio::test]
async fn sentinel_keeps_each_call_within_one_million_bytes_and_cuts_the_raw_data_of_a_bigger_event()
{
    let az = Az::new();
    az.ingest(IngestMode::Down);
    let fake = azure_fake(&az).await;
    let gw = start(
        ROOMY,
        gh("azmb-src", &["azmb"]),
        Sentinel::sink(
            "azmb",
            &fake,
            "batch = { max_events = 100, max_bytes = \"10MiB\", timeout = \"20ms\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..5).map(|i| format!("azmb-{i}")).collect();
    // The first event is refused alone; the others wait in the spool meanwhile, so they are
    // all there to batch (1.5 MB and a 1 MB event) once the service is back.
    accept_padded(&gw, "azmb-src", &ids[0], 300_000).await;
    fake.wait_until("a refused first call", |r| {
        r.iter().any(Sentinel::is_ingest)
    })
    .await;
    accept_padded_with_huge(&gw, "azmb-src", &ids[1..], 300_000, ("azmb-huge", 2)).await;
    az.ingest(IngestMode::Up);
    fake.wait_until("six delivered records", |r| Sentinel::uids(r).len() >= 6)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let mut all = ids.clone();
    all.push("azmb-huge".into());
    assert_eq!(sorted(Sentinel::uids(&reqs)), all);
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| Sentinel::is_ingest(c)).collect();
    for c in &ingests {
        check_az_request(c);
        assert!(
            c.body.len() <= 1_000_000,
            "an ingestion call of {} bytes uncompressed",
            c.body.len()
        );
        for r in az_records(c) {
            check_az_record(&r, "azmb-src");
            let cut = r["Event"]["metadata"]["uid"] == "azmb-huge";
            assert_eq!(raw_cut(&r["Event"]), cut, "{}", r["EventId"]);
        }
    }
    assert!(
        ingests.iter().any(|c| az_records(c).len() >= 2),
        "the events were never sent together"
    );
    assert!(dead_letters(&gw, "azmb").await.is_empty());
}

#[tokio::test]
async fn sentinel_splits_a_batch_refused_with_413() {
    let az = Az::new();
    az.ingest(IngestMode::OneRecordOnly);
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("az413-src", &["az413"]),
        Sentinel::sink(
            "az413",
            &fake,
            "batch = { max_events = 4, timeout = \"5s\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..4).map(|i| format!("az413-{i}")).collect();
    for id in &ids {
        accept(&gw, "az413-src", id).await;
    }
    fake.wait_until("four delivered records", |r| Sentinel::uids(r).len() >= 4)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(Sentinel::uids(&reqs)), ids, "each delivered once");
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| Sentinel::is_ingest(c)).collect();
    assert_eq!(ingests[0].answered, 413);
    assert_eq!(az_records(ingests[0]).len(), 4);
    assert!(dead_letters(&gw, "az413").await.is_empty());
    assert_eq!(sink_status(&gw, "az413").await["queued_events"], 0);
}

#[tokio::test]
async fn sentinel_fetches_a_fresh_token_when_ingestion_answers_401() {
    let az = Az::new();
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("azr-src", &["azr"]),
        Sentinel::sink("azr", &fake, QUICK, ""),
    )
    .await;
    accept(&gw, "azr-src", "azr-0").await;
    fake.wait_until("azr-0 delivered", |r| {
        Sentinel::uids(r).contains(&"azr-0".to_string())
    })
    .await;
    // The service stops honouring tok-1; the next token issued is tok-2.
    az.revoke_tokens();
    accept(&gw, "azr-src", "azr-1").await;
    let reqs = fake
        .wait_until("azr-1 delivered", |r| {
            Sentinel::uids(r).contains(&"azr-1".to_string())
        })
        .await;
    let last = reqs.iter().rfind(|c| Sentinel::is_ingest(c)).unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer tok-2"));
    assert_eq!(Sentinel::request_uids(last), ["azr-1"]);
    assert_eq!(reqs.iter().filter(|c| is_token_request(c)).count(), 2);
    let refused: Vec<&Captured> = reqs
        .iter()
        .filter(|c| Sentinel::is_ingest(c) && c.answered == 401)
        .collect();
    assert_eq!(refused.len(), 1, "one 401, then the fresh token");
    assert_eq!(refused[0].header("authorization"), Some("Bearer tok-1"));
    gw.delivered().await;
    assert!(dead_letters(&gw, "azr").await.is_empty());
    let s = sink_status(&gw, "azr").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
}

#[tokio::test]
async fn sentinel_keeps_events_while_the_token_endpoint_fails_then_delivers() {
    let az = Az::new();
    az.token(TokenMode::Down);
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("azt-src", &["azt"]),
        Sentinel::sink("azt", &fake, QUICK, ""),
    )
    .await;
    let s = health_checked(&gw, "azt").await;
    assert_eq!(s["health_check"], "failed", "{s}");
    accept(&gw, "azt-src", "azt-0").await;
    fake.wait_until("token retries", |r| {
        r.iter()
            .filter(|c| is_token_request(c) && c.answered == 503)
            .count()
            >= 3
    })
    .await;
    let s = wait_status(&gw, "azt", "reported the token endpoint", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("token") && !e.starts_with("health check"))
    })
    .await;
    assert_eq!(s["healthy"], false, "{s}");
    assert_eq!(s["queued_events"], 1, "{s}");

    // A refused client secret: kept too, and unhealthy.
    az.token(TokenMode::InvalidClient);
    fake.wait_until("refused token requests", |r| {
        r.iter()
            .filter(|c| is_token_request(c) && c.answered == 401)
            .count()
            >= 2
    })
    .await;
    let s = wait_status(&gw, "azt", "reported the refused secret", |s| {
        s["last_error"].as_str().is_some_and(|e| {
            e.to_lowercase().contains("token")
                && (e.contains("401") || e.contains("invalid_client"))
        })
    })
    .await;
    assert_eq!(s["healthy"], false, "{s}");
    assert_eq!(s["queued_events"], 1, "{s}");
    assert!(dead_letters(&gw, "azt").await.is_empty());
    assert!(
        fake.requests().iter().all(|c| !Sentinel::is_ingest(c)),
        "no token, no ingestion call"
    );

    az.token(TokenMode::Issue);
    fake.wait_until("azt-0 delivered", |r| {
        Sentinel::uids(r).contains(&"azt-0".to_string())
    })
    .await;
    gw.delivered().await;
    let s = sink_status(&gw, "azt").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
    assert!(dead_letters(&gw, "azt").await.is_empty());
}
