//! From text to a validated [`Config`]: parse with spans, interpolate, deserialize each section on
//! its own (so one bad section does not hide the next), then check meaning. Every problem is
//! collected with its key path and line; nothing stops at the first.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

use super::raw::*;
use super::*;
use crate::conf::doc::{self, LineIndex};
use crate::conf::redact::Sensitive;
use crate::vendors::VendorKind;

fn rate(cx: &mut Ctx<'_>, path: &str, r: RawRate) -> Option<RateLimit> {
    let per_second = cx.positive(&format!("{path}.per_second"), r.per_second, 1_000_000)?;
    let burst = match r.burst {
        Some(b) => cx.positive(&format!("{path}.burst"), b, 10_000_000)?,
        None => per_second,
    };
    Some(RateLimit {
        per_second: per_second as u32,
        burst: burst as u32,
    })
}

pub(super) fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let (doc_table, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(syntax
            .into_iter()
            .map(|e| ConfigError {
                path: String::new(),
                line: e.span().map(|s| doc::line_at(text, s.start)),
                message: format!("TOML syntax: {}", e.message()),
            })
            .collect());
    }
    let mut table = doc_table.into_inner();
    let lines = doc::index_lines(text, &table);
    let mut errors = Vec::new();
    let mut sensitive = Sensitive::default();
    // Records every value taken from the environment...
    doc::interpolate(&mut table, env, &mut errors, &mut sensitive);
    // ...then every secret key's value as interpolated (or as written where interpolation
    // failed). Messages quote the table, never the source text, so that covers them all.
    sensitive.collect_secret_values(&table);

    let mut server = None;
    let mut admin = None;
    let mut spool = None;
    let mut replay = None;
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    for (key, value) in table.into_iter() {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "server" => server = de_section::<RawServer>(value, "server", text, &mut errors),
            "admin" => admin = de_section::<RawAdmin>(value, "admin", text, &mut errors),
            "spool" => spool = de_section::<RawSpool>(value, "spool", text, &mut errors),
            "replay" => replay = de_section::<RawReplay>(value, "replay", text, &mut errors),
            "sources" | "sinks" => {
                let span = value.span();
                match value.into_inner() {
                    DeValue::Array(items) => {
                        for (i, item) in items.into_iter().enumerate() {
                            let path = format!("{name}[{i}]");
                            if name == "sources" {
                                sources.push(de_section::<RawSource>(
                                    item,
                                    &path,
                                    text,
                                    &mut errors,
                                ));
                            } else {
                                sinks.push(crate::sink::table::de_sink(
                                    item,
                                    &path,
                                    text,
                                    &mut errors,
                                ));
                            }
                        }
                    }
                    _ => errors.push(ConfigError {
                        path: name.clone(),
                        line: Some(doc::line_at(text, span.start)),
                        message: format!("must be an array of tables: write [[{name}]]"),
                    }),
                }
            }
            _ => errors.push(ConfigError {
                path: name.clone(),
                line: Some(doc::line_at(text, key.span().start)),
                message: "unknown key; expected server, admin, spool, replay, sources or sinks"
                    .into(),
            }),
        }
    }

    let mut cx = Ctx {
        base,
        errors: Vec::new(),
    };
    let server = build_server(&mut cx, server.unwrap_or_default());
    let admin = build_admin(&mut cx, admin.unwrap_or_default());
    let spool = build_spool(&mut cx, spool.unwrap_or_default());
    let replay = build_replay(&mut cx, replay.unwrap_or_default());
    let sinks: Vec<SinkConfig> = sinks
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.map(|s| crate::sink::config::build_sink(&mut cx, &format!("sinks[{i}]"), s))
        })
        .collect();
    let sink_ids: HashSet<&str> = sinks.iter().map(|s| s.id.as_str()).collect();
    let sources: Vec<SourceConfig> = sources
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.and_then(|s| build_source(&mut cx, &format!("sources[{i}]"), s, &sink_ids))
        })
        .collect();
    unique_ids(&mut cx, "sources", sources.iter().map(|s| s.id.as_str()));
    unique_ids(&mut cx, "sinks", sinks.iter().map(|s| s.id.as_str()));
    if sources.is_empty() && errors.is_empty() && cx.errors.is_empty() {
        cx.err(
            "sources",
            "no [[sources]] configured: nothing could be received",
        );
    }
    if server.listen == admin.listen && server.listen.port() != 0 {
        cx.err(
            "admin.listen",
            "must differ from server.listen: the admin API is never served on the ingest listener",
        );
    }

    errors.extend(cx.errors);
    let errors = locate(errors, &lines)
        .into_iter()
        .map(|mut e| {
            e.message = sensitive.scrub(&e.message);
            e
        })
        .collect::<Vec<_>>();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        server,
        admin,
        spool,
        replay,
        sources,
        sinks,
    })
}

fn locate(errors: Vec<ConfigError>, lines: &LineIndex) -> Vec<ConfigError> {
    errors
        .into_iter()
        .map(|mut e| {
            if e.line.is_none() {
                e.line = lines.line_of(&e.path);
            }
            e
        })
        .collect()
}

fn unique_ids<'a>(cx: &mut Ctx<'_>, what: &str, ids: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            cx.err(format!("{what}[{i}].id"), format!("duplicate id {id:?}"));
        }
    }
}

fn socket(cx: &mut Ctx<'_>, path: &str, v: Option<String>, default: &str) -> SocketAddr {
    let s = v.unwrap_or_else(|| default.to_string());
    match s.parse() {
        Ok(a) => a,
        Err(_) => {
            cx.err(
                path,
                format!("{s:?} is not an address such as \"0.0.0.0:8443\""),
            );
            default.parse().expect("default address parses")
        }
    }
}

fn build_server(cx: &mut Ctx<'_>, r: RawServer) -> ServerConfig {
    let listen = socket(cx, "server.listen", r.listen, "0.0.0.0:8443");
    let max_body = match r.max_body {
        Some(s) if s.0 == 0 || s.0 > MAX_BODY_LIMIT => {
            cx.err(
                "server.max_body",
                format!(
                    "must be between 1 byte and {} MiB: the spool holds each event in one frame \
                     of at most {} MiB, and an event carries the body escaped as raw_data",
                    MAX_BODY_LIMIT >> 20,
                    crate::spool::frame::MAX_PAYLOAD >> 20
                ),
            );
            1 << 20
        }
        Some(s) => s.0,
        None => 1 << 20,
    };
    let max_inflight_body_bytes = match r.max_inflight_body_bytes {
        Some(s) if s.0 < max_body => {
            cx.err(
                "server.max_inflight_body_bytes",
                format!("must be at least server.max_body ({max_body} bytes), or no body of that size is ever read"),
            );
            max_body
        }
        Some(s) => s.0,
        None => (256 << 20).max(max_body),
    };
    let max_header_size = match r.max_header_size {
        Some(s) if s.0 < 8192 || s.0 > (1 << 24) => {
            cx.err("server.max_header_size", "must be between 8KiB and 16MiB");
            64 * 1024
        }
        Some(s) => s.0 as usize,
        None => 64 * 1024,
    };
    let max_connections = r
        .max_connections
        .and_then(|v| cx.positive("server.max_connections", v, 10_000_000))
        .unwrap_or(10_000) as usize;
    let max_tracked_clients = r
        .max_tracked_clients
        .and_then(|v| cx.positive("server.max_tracked_clients", v, 100_000_000))
        .unwrap_or(100_000) as usize;
    let client_rate_limit = r
        .client_rate_limit
        .and_then(|rl| rate(cx, "server.client_rate_limit", rl))
        .unwrap_or(RateLimit {
            per_second: 200,
            burst: 400,
        });
    let mut trusted_proxies = Vec::new();
    for (i, p) in r
        .trusted_proxies
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let parsed = p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => cx.err(
                format!("server.trusted_proxies[{i}]"),
                format!("{p:?} is not an address or network such as \"10.0.0.0/8\""),
            ),
        }
    }
    let tls = r.tls.map(|t| {
        let cert_file = cx.existing_file("server.tls.cert_file", &t.cert_file);
        let key_file = cx.existing_file("server.tls.key_file", &t.key_file);
        let client_ca_file = t
            .client_ca_file
            .map(|c| cx.existing_file("server.tls.client_ca_file", &c));
        TlsConfig {
            cert_file,
            key_file,
            client_ca_file,
        }
    });
    ServerConfig {
        listen,
        max_body,
        header_timeout: cx.duration(
            "server.header_timeout",
            r.header_timeout,
            Duration::from_secs(10),
        ),
        request_timeout: cx.duration(
            "server.request_timeout",
            r.request_timeout,
            Duration::from_secs(30),
        ),
        idle_timeout: cx.duration(
            "server.idle_timeout",
            r.idle_timeout,
            Duration::from_secs(60),
        ),
        handshake_timeout: cx.duration(
            "server.handshake_timeout",
            r.handshake_timeout,
            Duration::from_secs(10),
        ),
        // zero is allowed: no load balancer to wait for
        shutdown_grace: cx.duration_upto(
            "server.shutdown_grace",
            r.shutdown_grace,
            Duration::from_secs(5),
        ),
        drain_timeout: cx.duration(
            "server.drain_timeout",
            r.drain_timeout,
            Duration::from_secs(10),
        ),
        max_connections,
        max_header_size,
        max_inflight_body_bytes,
        client_rate_limit,
        max_tracked_clients,
        trusted_proxies,
        tls,
    }
}

fn build_admin(cx: &mut Ctx<'_>, r: RawAdmin) -> AdminConfig {
    let listen = socket(cx, "admin.listen", r.listen, "127.0.0.1:9090");
    let token = cx.secret("admin", "token", r.token, r.token_file, false);
    let max_connections = r
        .max_connections
        .and_then(|v| cx.positive("admin.max_connections", v, 10_000))
        .unwrap_or(64) as usize;
    AdminConfig {
        listen,
        token,
        max_connections,
    }
}

fn build_spool(cx: &mut Ctx<'_>, r: RawSpool) -> SpoolConfig {
    let dir = cx.resolve_path(r.dir.as_deref().unwrap_or("/var/lib/siemgate"));
    let max_size = match r.max_size {
        Some(s) if s.0 < (1 << 20) => {
            cx.err("spool.max_size", "must be at least 1MiB");
            10 << 30
        }
        Some(s) => s.0,
        None => 10 << 30,
    };
    let flush_timeout = cx.duration(
        "spool.flush_timeout",
        r.flush_timeout,
        Duration::from_secs(10),
    );
    SpoolConfig {
        dir,
        max_size,
        flush_timeout,
    }
}

/// A Redis key prefix: printable ASCII without spaces, so keys stay readable in `redis-cli`.
fn valid_key_prefix(p: &str) -> bool {
    !p.is_empty() && p.len() <= 64 && p.bytes().all(|b| b.is_ascii_graphic())
}

fn build_replay(cx: &mut Ctx<'_>, r: RawReplay) -> ReplayConfig {
    let redis_only = r.key_prefix.is_some() || r.tls.is_some();
    let store = match r.store.as_deref().unwrap_or("local") {
        kind @ ("local" | "memory") => {
            if r.redis_url.is_some() || r.redis_url_file.is_some() || redis_only {
                cx.err(
                    "replay",
                    "redis_url, key_prefix and tls are only used with store = \"redis\"",
                );
            }
            if kind == "local" {
                ReplayStoreKind::Local
            } else {
                ReplayStoreKind::Memory
            }
        }
        "redis" => match cx.secret("replay", "redis_url", r.redis_url, r.redis_url_file, true) {
            Some(url) => {
                let tls_url = match url.expose_str() {
                    Some(u) if u.starts_with("redis://") => false,
                    Some(u) if u.starts_with("rediss://") => true,
                    _ => {
                        cx.err(
                            "replay.redis_url",
                            "must start with redis:// or rediss:// (TLS)",
                        );
                        false
                    }
                };
                let key_prefix = r.key_prefix.unwrap_or_else(|| "siemgate:".to_string());
                if !valid_key_prefix(&key_prefix) {
                    cx.err(
                        "replay.key_prefix",
                        "1 to 64 printable ASCII characters, no spaces",
                    );
                }
                let ca_file = r.tls.and_then(|t| t.ca_file).map(|p| {
                    if tls_url {
                        cx.existing_file("replay.tls.ca_file", &p)
                    } else {
                        cx.err("replay.tls.ca_file", "only used with a rediss:// url");
                        cx.resolve_path(&p)
                    }
                });
                ReplayStoreKind::Redis {
                    url,
                    key_prefix,
                    ca_file,
                }
            }
            None => ReplayStoreKind::Memory,
        },
        other => {
            cx.err(
                "replay.store",
                format!("{other:?} is not a store; expected \"local\", \"redis\" or \"memory\""),
            );
            ReplayStoreKind::Memory
        }
    };
    let max_entries = r
        .max_entries
        .and_then(|v| cx.positive("replay.max_entries", v, 1_000_000_000))
        .unwrap_or(match store {
            // About 17 bytes a key: a day of 115 events a second (2 keys each) in ~350 MB.
            ReplayStoreKind::Local => 20_000_000,
            _ => 1_000_000,
        }) as usize;
    ReplayConfig {
        store,
        retention: cx.duration(
            "replay.retention",
            r.retention,
            Duration::from_secs(24 * 3600),
        ),
        max_entries,
    }
}

fn build_source(
    cx: &mut Ctx<'_>,
    path: &str,
    r: RawSource,
    sink_ids: &HashSet<&str>,
) -> Option<SourceConfig> {
    if !valid_id(&r.id) {
        cx.err(format!("{path}.id"), ID_RULE);
    }
    let vendor = match VendorKind::from_name(&r.vendor) {
        Some(v) => Some(v),
        None => {
            cx.err(
                format!("{path}.vendor"),
                format!(
                    "unknown vendor {:?}; expected one of {}",
                    r.vendor,
                    VendorKind::names().join(", ")
                ),
            );
            None
        }
    };
    let mut secrets: Vec<Secret> = Vec::new();
    for (i, s) in r
        .secrets
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if s.is_empty() {
            cx.err(format!("{path}.secrets[{i}]"), "must not be empty");
        } else {
            secrets.push(Secret::new(s));
        }
    }
    if let Some(files) = r.secrets_file.clone() {
        for (i, f) in files.into_vec().into_iter().enumerate() {
            if let Some(s) = cx.read_secret_file(&f, &format!("{path}.secrets_file[{i}]")) {
                secrets.push(s);
            }
        }
    }
    if secrets.is_empty() && r.secrets.is_none() && r.secrets_file.is_none() {
        cx.err(
            path,
            "missing secrets (or secrets_file): a source must be able to verify what it receives",
        );
    }
    if secrets.len() > 16 {
        cx.err(format!("{path}.secrets"), "at most 16 secrets per source");
    }
    let tolerance = cx.duration(
        &format!("{path}.tolerance"),
        r.tolerance,
        Duration::from_secs(300),
    );
    let rate_limit = r
        .rate_limit
        .and_then(|rl| rate(cx, &format!("{path}.rate_limit"), rl));
    if r.sinks.is_empty() {
        cx.err(format!("{path}.sinks"), "a source needs at least one sink");
    }
    for (i, s) in r.sinks.iter().enumerate() {
        if r.sinks[..i].contains(s) {
            cx.err(
                format!("{path}.sinks[{i}]"),
                format!("sink {s:?} is listed twice"),
            );
        } else if !sink_ids.contains(s.as_str()) {
            cx.err(
                format!("{path}.sinks[{i}]"),
                format!("no sink with id {s:?}"),
            );
        }
    }
    let vendor = vendor?;
    let set = r
        .vendor_keys
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let table = crate::vendors::OptionTable::with_values(path, set);
    let options = crate::vendors::options(vendor, &table, &mut |p, m| cx.err(p, m));
    if let Some(options) = &options {
        for (i, s) in secrets.iter().enumerate() {
            if let Err(m) = crate::vendors::check_secret(vendor, options, s) {
                cx.err(format!("{path}.secrets[{i}]"), m);
            }
        }
    }
    Some(SourceConfig {
        id: r.id,
        vendor,
        secrets,
        tolerance,
        rate_limit,
        sinks: r.sinks,
        include_raw: r.include_raw.unwrap_or(true),
        options: options?,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod edge_tests;
