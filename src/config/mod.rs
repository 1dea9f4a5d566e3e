//! Configuration: one TOML file, `${ENV}` interpolation, `*_file` secrets, unknown keys rejected.
//!
//! [`load`] reads the file and returns either a validated [`Config`] or every problem it found,
//! each with its key path and line. Loading has no effect beyond reading files, so a reload can
//! build a new `Config` beside the running one and swap it in only when it is valid.

pub(crate) mod raw;
mod validate;

pub(crate) use crate::conf::{de_section, doc::expand, resolve_path, valid_id, Ctx, ID_RULE};
pub use crate::conf::{units, ConfigError};

use ipnet::IpNet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::replay::{ReplayConfig, ReplayStoreKind};
pub use crate::vendors::VendorOptions;
pub use crate::verify::secret::{self, Secret};
pub use crate::verify::{MacAlgorithm, SigEncoding, TemplatePart, TimestampUnit};

use crate::vendors::VendorKind;

// A sink's part of the config is defined with the sinks (`sink/config.rs`, `sink/<name>/`).
pub use crate::sink::{SinkConfig, SinkKind};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub spool: SpoolConfig,
    pub replay: ReplayConfig,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
}

/// Declares [`Fixed`]: the settings a running gateway keeps until its next start, each with its
/// key and its place in [`Config`]. Everything else in a config is applied by a reload, so what
/// a reload changes is a fact of the types: a reloaded config carries the running gateway's
/// `Fixed` ([`Config::with_fixed`]), and the keys it could not apply are named
/// ([`Fixed::changes`]).
macro_rules! fixed_settings {
    ($($field:ident: $ty:ty = $key:literal at $($path:ident).+;)*) => {
        /// The settings only a start applies (see [`fixed_settings`]).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Fixed {
            $(pub $field: $ty,)*
        }

        impl Config {
            /// The settings of this config that only a start applies.
            pub fn fixed(&self) -> Fixed {
                Fixed {
                    $($field: self.$($path).+.clone(),)*
                }
            }

            /// This config with `fixed` in place of its own: what a running gateway applies
            /// of a reloaded config.
            pub fn with_fixed(mut self, fixed: Fixed) -> Config {
                $(self.$($path).+ = fixed.$field;)*
                self
            }
        }

        impl Fixed {
            /// The keys whose values differ in `new`, as the config file names them.
            pub fn changes(&self, new: &Fixed) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(if self.$field != new.$field {
                    out.push($key);
                })*
                out
            }
        }
    };
}

fixed_settings! {
    server_listen: SocketAddr = "server.listen" at server.listen;
    admin_listen: SocketAddr = "admin.listen" at admin.listen;
    spool_dir: PathBuf = "spool.dir" at spool.dir;
    spool_max_size: u64 = "spool.max_size" at spool.max_size;
    replay_store: ReplayStoreKind = "replay.store (with redis_url, key_prefix and tls)" at replay.store;
    replay_max_entries: usize = "replay.max_entries" at replay.max_entries;
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// At most [`MAX_BODY_LIMIT`].
    pub max_body: u64,
    /// A connection must send its first complete request head within this of being accepted
    /// (after the TLS handshake).
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this (HTTP/1.1 and h2).
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub handshake_timeout: Duration,
    /// After a shutdown signal: how long `/readyz` says 503 while requests are still served,
    /// so load balancers stop sending before the listener closes.
    pub shutdown_grace: Duration,
    /// Then: how long requests in flight may take to finish.
    pub drain_timeout: Duration,
    /// As configured; the listener clamps it below the open-file limit.
    pub max_connections: usize,
    pub max_header_size: usize,
    /// Bytes of request bodies being read or held at once, over every connection; at least
    /// `max_body`. Past it, requests are answered 503 + Retry-After.
    pub max_inflight_body_bytes: u64,
    pub client_rate_limit: RateLimit,
    /// Bound on the per-client limiter's key map; past it, new clients share one bucket.
    pub max_tracked_clients: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
    /// Open admin connections at most; their file descriptors are reserved out of the
    /// open-file limit before the ingest listener gets its share.
    pub max_connections: usize,
}

/// The largest `server.max_body`. The spool writes each event as one frame of at most
/// [`crate::spool::frame::MAX_PAYLOAD`] (256 MiB), and an event carries its body as
/// `raw_data`, JSON-escaped: a control byte becomes `\u00XX`, six bytes for one, and mapped
/// fields can copy parts of the body again. A body of an eighth of a frame (32 MiB) leaves
/// room for that six-fold growth and the rest of the event.
pub const MAX_BODY_LIMIT: u64 = crate::spool::frame::MAX_PAYLOAD as u64 / 8;

pub use crate::spool::SpoolConfig;

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub vendor: VendorKind,
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
    pub rate_limit: Option<RateLimit>,
    pub sinks: Vec<String>,
    pub include_raw: bool,
    pub options: VendorOptions,
}

impl SourceConfig {
    /// This source's vendor, with its options.
    pub fn scheme(&self) -> Box<dyn crate::vendors::Vendor> {
        crate::vendors::scheme_for(self.vendor, &self.options)
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        match &self.file {
            Some(p) => writeln!(f, "{} has {n} problem(s):", p.display())?,
            None => writeln!(f, "the config has {n} problem(s):")?,
        }
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates the config file at `path` against the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: Some(path.to_path_buf()),
        errors: vec![ConfigError::at("", format!("cannot read the file: {e}"))],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, &|k| std::env::var(k).ok()).map_err(|mut e| {
        e.file = Some(path.to_path_buf());
        e
    })
}

/// Parses config text. Relative `*_file` paths resolve against `base`; `env` answers `${NAME}`.
pub fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    validate::parse(text, base, env).map_err(|errors| ConfigErrors { file: None, errors })
}

/// The configuration a newcomer runs with: the example shipped in `config/demo.toml`.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

impl Config {
    pub fn source(&self, id: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// A human summary with every secret redacted, for `siemgate check`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let scheme = if self.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(
            s,
            "ingest: {scheme}://{} (max body {} bytes, {} connections max)",
            self.server.listen, self.server.max_body, self.server.max_connections
        );
        if let Some(tls) = &self.server.tls {
            let _ = writeln!(
                s,
                "tls: cert {} key {}{}",
                tls.cert_file.display(),
                tls.key_file.display(),
                match &tls.client_ca_file {
                    Some(ca) => format!(", client certificates required (CA {})", ca.display()),
                    None => String::new(),
                }
            );
        }
        let _ = writeln!(
            s,
            "admin: http://{} (token {})",
            self.admin.listen,
            if self.admin.token.is_some() {
                "[redacted]"
            } else {
                "not set: state-changing admin calls are refused"
            }
        );
        let _ = writeln!(
            s,
            "spool: {} (max {} bytes)",
            self.spool.dir.display(),
            self.spool.max_size
        );
        let store = match &self.replay.store {
            ReplayStoreKind::Local => format!(
                "local (durable, under spool.dir), at most {} keys",
                self.replay.max_entries
            ),
            ReplayStoreKind::Memory => {
                format!("memory, at most {} entries", self.replay.max_entries)
            }
            ReplayStoreKind::Redis { key_prefix, .. } => {
                format!("redis ([redacted] url), key prefix {key_prefix:?}")
            }
        };
        let _ = writeln!(s, "replay: {store}, retention {:?}", self.replay.retention);
        for src in &self.sources {
            let _ = writeln!(
                s,
                "source {}: vendor {}, {} secret(s) [redacted], tolerance {:?}, sinks [{}]",
                src.id,
                src.vendor.name(),
                src.secrets.len(),
                src.tolerance,
                src.sinks.join(", ")
            );
        }
        for sink in &self.sinks {
            let _ = writeln!(s, "sink {}: {}", sink.id, sink.kind.type_name());
        }
        s
    }
}
