//! The `siemgate` command line. The only place that uses `anyhow`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use siemgate::config::{self, Config};
use siemgate::gateway::Gateway;
use siemgate::replay;
use siemgate::telemetry::{self, LogFormat};
use siemgate::verify::SystemClock;
use siemgate::{cli, event, server};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// After a replay-store fold frees its old index, mimalloc returns the freed memory to the
/// system at once rather than after its purge delay (1 s), which stays as it is for everything
/// else ([`siemgate::memory`]).
fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers; it may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Exit codes (CONTRACT §2).
const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "siemgate",
    version,
    about = "A verifying webhook gateway in front of your SIEM"
)]
struct Cli {
    /// Config file; with no command, serve it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr (default: text on a terminal, JSON lines otherwise).
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default). Without --config, the embedded demo config (config/demo.toml).
    Run,
    /// Validate the config, resolve every secret, print a redacted summary.
    Check,
    /// Print the headers a source's vendor would send for a body.
    Sign(SignArgs),
    /// Sign a body as a source's vendor would and POST it; print the answer.
    Send {
        #[command(flatten)]
        sign: SignArgs,
        /// The gateway's base URL (e.g. https://127.0.0.1:8443); the webhook path is appended.
        #[arg(long)]
        url: String,
        /// Extra CA certificate (PEM) to trust, for a gateway with a private certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Accept any server certificate (testing only).
        #[arg(long)]
        insecure: bool,
        /// An extra header the vendor sends unsigned, e.g. "X-GitHub-Event: code_scanning_alert"
        /// (repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
    },
    /// Inspect, replay or drop dead letters through the admin API.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Events queued for sinks that are no longer configured: list them, or drop them.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
        #[command(flatten)]
        target: AdminArgs,
    },
    /// Version, and the OCSF version emitted.
    Version,
}

/// Where the admin API is and how to authenticate to it (`dlq` and `spool`).
#[derive(clap::Args)]
struct AdminArgs {
    /// The admin listener's base URL (default: admin.listen from --config, else
    /// http://127.0.0.1:9090).
    #[arg(long, global = true)]
    admin: Option<String>,
    /// File holding the admin bearer token (default: $SIEMGATE_ADMIN_TOKEN, else the
    /// token in --config).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SpoolAction {
    /// The spool's size, and the sinks no longer configured that still have events in it.
    List {
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Delete the queued events of a sink that is no longer configured (a configured sink's
    /// are refused).
    Drop {
        #[arg(long)]
        sink: String,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List dead letters: sink, id, attempts, when, last error.
    List {
        #[command(flatten)]
        select: DlqSelect,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the API's JSON answer, events included.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in their sink's queue.
    Replay {
        #[command(flatten)]
        select: DlqSelect,
    },
    /// Delete dead letters (needs --sink, --id or --all).
    Drop {
        #[command(flatten)]
        select: DlqSelect,
        /// Every dead letter of every sink.
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args)]
struct DlqSelect {
    /// Only this sink's dead letters.
    #[arg(long)]
    sink: Option<String>,
    /// Only the dead letter with this id.
    #[arg(long)]
    id: Option<u64>,
}

#[derive(clap::Args)]
struct SignArgs {
    #[arg(long)]
    source: String,
    /// Body file (default: standard input).
    #[arg(long)]
    body: Option<PathBuf>,
    #[arg(long)]
    event_id: Option<String>,
    /// Unix seconds or RFC 3339 (default: now).
    #[arg(long)]
    timestamp: Option<String>,
}

enum Failure {
    Config(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    siemgate::memory::set_return_freed(return_freed_memory);
    let cli = Cli::parse();
    let logging = telemetry::init_logging(cli.log_format);
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config.as_deref()),
        Command::Check => check(cli.config.as_deref()),
        Command::Sign(args) => sign(cli.config.as_deref(), &args).map(|headers| {
            for (k, v) in headers {
                println!("{k}: {v}");
            }
        }),
        Command::Send {
            sign,
            url,
            ca_file,
            insecure,
            headers,
        } => send(
            cli.config.as_deref(),
            &sign,
            &url,
            ca_file.as_deref(),
            insecure,
            &headers,
        ),
        Command::Dlq { action, target } => dlq(cli.config.as_deref(), &action, &target),
        Command::Spool { action, target } => spool(cli.config.as_deref(), &action, &target),
        Command::Version => {
            println!("siemgate {}", env!("CARGO_PKG_VERSION"));
            println!("ocsf {}", event::OCSF_VERSION);
            Ok(())
        }
    };
    // Every log line out before the last words below.
    drop(logging);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(msg)) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("siemgate: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn load(path: Option<&Path>) -> Result<Config, Failure> {
    match path {
        Some(p) => config::load(p).map_err(|e| Failure::Config(e.to_string())),
        None => {
            tracing::warn!("no --config given: using the embedded demo config (demo secrets; not for production)");
            config::parse(config::DEMO_CONFIG, Path::new("."), &|k| {
                std::env::var(k).ok()
            })
            .map_err(|e| Failure::Config(e.to_string()))
        }
    }
}

fn check(path: Option<&Path>) -> Result<(), Failure> {
    let path = path.ok_or_else(|| Failure::Config("check needs --config FILE".into()))?;
    let config = load(Some(path))?;
    print!("{}", config.summary());
    println!("{}: OK", path.display());
    Ok(())
}

fn body_of(args: &SignArgs) -> anyhow::Result<Vec<u8>> {
    match &args.body {
        Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display())),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the body from standard input")?;
            Ok(buf)
        }
    }
}

fn sign(path: Option<&Path>, args: &SignArgs) -> Result<Vec<(String, String)>, Failure> {
    let config = load(path)?;
    let body = body_of(args)?;
    let ts = match &args.timestamp {
        Some(t) => cli::parse_timestamp(t).map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let id = args.event_id.clone().unwrap_or_else(cli::new_event_id);
    cli::sign_headers(&config, &args.source, &body, &id, ts).map_err(|e| Failure::Runtime(e.into()))
}

fn send(
    path: Option<&Path>,
    args: &SignArgs,
    url: &str,
    ca_file: Option<&Path>,
    insecure: bool,
    extra: &[String],
) -> Result<(), Failure> {
    let config = load(path)?;
    let mut extra_headers = Vec::with_capacity(extra.len());
    for h in extra {
        let (k, v) = h.split_once(':').ok_or_else(|| {
            Failure::Runtime(anyhow::anyhow!("--header {h:?}: expected \"Name: value\""))
        })?;
        extra_headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let body = body_of(args)?;
    let ts = match &args.timestamp {
        Some(t) => cli::parse_timestamp(t).map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?,
        None => time::OffsetDateTime::now_utc(),
    };
    let id = args.event_id.clone().unwrap_or_else(cli::new_event_id);
    let headers = cli::sign_headers(&config, &args.source, &body, &id, ts)
        .map_err(|e| Failure::Runtime(e.into()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .danger_accept_invalid_certs(insecure);
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem).context("CA file is not PEM")?,
            );
        }
        let client = builder.build().context("HTTP client")?;
        let target = format!("{}/v1/webhooks/{}", url.trim_end_matches('/'), args.source);
        let mut req = client
            .post(&target)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers.iter().chain(&extra_headers) {
            req = req.header(k, v);
        }
        let resp = req.send().await.with_context(|| format!("POST {target}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        println!("{}", status.as_u16());
        println!("{text}");
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Runtime(anyhow::anyhow!(
                "the gateway answered {status}"
            )))
        }
    })
}

/// The admin API's base URL and bearer token, from the flags, the environment or the config.
fn admin_target(path: Option<&Path>, target: &AdminArgs) -> Result<(String, String), Failure> {
    let admin = target.admin.as_deref();
    let token_file = target.token_file.as_deref();
    let config = match path {
        Some(p) => Some(load(Some(p))?),
        None => None,
    };
    let base = match (admin, &config) {
        (Some(a), _) => a.trim_end_matches('/').to_string(),
        (None, Some(c)) => {
            let mut addr = c.admin.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        (None, None) => "http://127.0.0.1:9090".to_string(),
    };
    let token = match token_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .trim()
            .to_string(),
        None => match std::env::var("SIEMGATE_ADMIN_TOKEN") {
            Ok(t) => t,
            Err(_) => config
                .as_ref()
                .and_then(|c| c.admin.token.as_ref())
                .map(|t| String::from_utf8_lossy(t.expose()).into_owned())
                .ok_or_else(|| {
                    Failure::Runtime(anyhow::anyhow!(
                        "no admin token: give --token-file, set SIEMGATE_ADMIN_TOKEN, or --config with admin.token"
                    ))
                })?,
        },
    };
    Ok((base, token))
}

/// Calls the admin API; an answer other than 2xx is a runtime failure naming the API's error.
fn admin_request(
    method: reqwest::Method,
    base: &str,
    endpoint: &str,
    query: &[(&str, String)],
    token: &str,
) -> Result<serde_json::Value, Failure> {
    let url = if query.is_empty() {
        format!("{base}{endpoint}")
    } else {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("{base}{endpoint}?{query}")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let (status, body): (reqwest::StatusCode, serde_json::Value) = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("HTTP client")?
            .request(method, &url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("{endpoint} at {base}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok::<_, anyhow::Error>((status, body))
    })?;
    if !status.is_success() {
        let msg = body["error"].as_str().unwrap_or("no error message");
        return Err(Failure::Runtime(anyhow::anyhow!(
            "the admin API answered {status}: {msg}"
        )));
    }
    Ok(body)
}

fn spool(path: Option<&Path>, action: &SpoolAction, target: &AdminArgs) -> Result<(), Failure> {
    let (base, token) = admin_target(path, target)?;
    match action {
        SpoolAction::List { json } => {
            let body = admin_request(reqwest::Method::GET, &base, "/v1/spool", &[], &token)?;
            if *json {
                println!("{body:#}");
                return Ok(());
            }
            println!(
                "spool {}: {} of {} bytes, {}",
                body["dir"].as_str().unwrap_or(""),
                body["bytes"],
                body["max_size"],
                if body["writable"] == true {
                    "writable"
                } else {
                    "NOT writable"
                }
            );
            let orphans = body["orphaned_sinks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if orphans.is_empty() {
                println!("no events queued for sinks that are no longer configured");
            } else {
                println!("SINK (not configured)\tQUEUED EVENTS\tDEAD LETTERS");
                for o in &orphans {
                    println!(
                        "{}\t{}\t{}",
                        o["id"].as_str().unwrap_or(""),
                        o["queued_events"],
                        o["dead_letters"]
                    );
                }
                println!("add a sink back to deliver its events, or drop them: siemgate spool drop --sink ID");
            }
        }
        SpoolAction::Drop { sink } => {
            let body = admin_request(
                reqwest::Method::POST,
                &base,
                "/v1/spool/drop",
                &[("sink", sink.clone())],
                &token,
            )?;
            println!(
                "dropped {} event(s) queued for sink {sink}; {} byte(s) freed",
                body["events"], body["bytes_freed"]
            );
        }
    }
    Ok(())
}

fn dlq(path: Option<&Path>, action: &DlqAction, target: &AdminArgs) -> Result<(), Failure> {
    let (base, token) = admin_target(path, target)?;
    let mut query = Vec::new();
    let (method, endpoint, select) = match action {
        DlqAction::List { select, limit, .. } => {
            if let Some(l) = limit {
                query.push(("limit", l.to_string()));
            }
            (reqwest::Method::GET, "/v1/dlq", select)
        }
        DlqAction::Replay { select } => (reqwest::Method::POST, "/v1/dlq/replay", select),
        DlqAction::Drop { select, all } => {
            if *all {
                query.push(("all", "true".to_string()));
            } else if select.sink.is_none() && select.id.is_none() {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "say which dead letters to drop: --sink, --id, or --all"
                )));
            }
            (reqwest::Method::POST, "/v1/dlq/drop", select)
        }
    };
    if let Some(s) = &select.sink {
        query.push(("sink", s.clone()));
    }
    if let Some(i) = select.id {
        query.push(("id", i.to_string()));
    }
    let body = admin_request(method, &base, endpoint, &query, &token)?;
    match action {
        DlqAction::List { json: true, .. } => println!("{body:#}"),
        DlqAction::List { .. } => {
            let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
            println!("SINK\tID\tATTEMPTS\tDEAD-LETTERED\tERROR");
            for d in &letters {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    d["sink"].as_str().unwrap_or(""),
                    d["id"],
                    d["attempts"],
                    d["dead_lettered_at"].as_str().unwrap_or(""),
                    d["error"].as_str().unwrap_or("")
                );
            }
            if let Some(counts) = body["counts"].as_object() {
                let total: u64 = counts.values().filter_map(|v| v.as_u64()).sum();
                println!("{} shown; {total} dead letter(s) in all", letters.len());
            }
        }
        DlqAction::Replay { .. } => {
            println!("replayed {} dead letter(s)", body["events"]);
        }
        DlqAction::Drop { .. } => {
            println!("dropped {} dead letter(s)", body["events"]);
        }
    }
    Ok(())
}

fn run(path: Option<&Path>) -> Result<(), Failure> {
    let config = load(path)?;
    // A Redis store connects on first use: an unreachable Redis makes the gateway not ready
    // and answer 503, rather than refusing to start.
    let replay =
        replay::from_config(&config.replay).map_err(|e| Failure::Config(format!("replay: {e}")))?;
    let gateway = Gateway::new(config, Arc::new(SystemClock), replay).map_err(|e| match e {
        // The config is fine; the disk is not.
        siemgate::gateway::BuildError::Spool(e) => Failure::Runtime(e.into()),
        e => Failure::Config(e.to_string()),
    })?;
    let gateway = Arc::new(gateway);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let options = server::Options {
            config_path: path.map(Path::to_path_buf),
            ..Default::default()
        };
        let handle = server::start_with(gateway, options)
            .await
            .map_err(|e| Failure::Runtime(e.into()))?;
        wait_for_shutdown(handle.reloader().clone()).await;
        handle.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

#[cfg(unix)]
async fn wait_for_shutdown(reloader: Arc<server::reload::Reloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Logged and counted by the reloader, as every trigger is.
            _ = hup.recv() => {
                let _ = reloader.reload(server::reload::Trigger::Signal).await;
            }
        }
    }
    // A second signal exits at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(EXIT_RUNTIME as i32);
    });
}

#[cfg(not(unix))]
async fn wait_for_shutdown(_reloader: Arc<server::reload::Reloader>) {
    let _ = tokio::signal::ctrl_c().await;
}
