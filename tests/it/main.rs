//! One integration binary: real gateways on 127.0.0.1:0, real sockets, real TLS.

mod binary;
mod cli;
mod config_edges;
mod conformance;
mod crash;
mod delivery;
mod edges;
mod fake;
mod fuzz_regressions;
mod golden;
mod handshake;
mod layering;
mod normalize;
mod normalize_props;
mod ocsf_schema;
mod ops;
mod redis;
mod reload;
mod replay_local;
mod server;
mod siem;
mod spool_edges;
mod support;
mod vectors;
mod vendor_edges;
