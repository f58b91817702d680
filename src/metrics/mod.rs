//! Prometheus metrics: what the broker counts, and the `/metrics` endpoint that shows it
//! (`--metrics-listen`, off by default).
//!
//! - `registry.rs`: [`Metrics`], the one registry of every family (prometheus-client), and
//!   each shard's own series in it, labelled `shard="N"`.
//! - `probe.rs`: the hooks the server, the broker and the storage call (a line at each site),
//!   counting into the calling shard's series through a thread-local.
//! - `http.rs`: the endpoint, a small HTTP/1.1 responder on one shard.
//! - `process.rs`: the process's descriptors and memory, read at each scrape.
//! - `parse.rs`: the text format read back, for `sluice broker-stats`.
//!
//! A leaf: it names no other module of the crate but `limits`, so every layer may call it;
//! what only the broker knows at scrape time (partitions, leaders, consumer-group lag) the
//! broker hands in ([`set_shard_sample`], [`set_group_lags`]).
//!
//! Cost: a request costs a thread-local read, three atomic adds, two clock reads and one
//! uncontended histogram lock; nothing is allocated or formatted per request (a kind of request
//! gets its series, and its label text, the first time a shard sees it).

mod http;
mod parse;
mod probe;
mod process;
mod registry;

pub use http::{HttpLimits, Scrape, adopt, serve};
pub use parse::{ParseError, Sample, parse};
pub use probe::{
    RequestKind, RequestProbe, accept_failed, batch_cache_hit, batch_cache_miss, connection_closed,
    connection_moved_in, connection_moved_out, connection_opened, connection_refused, install, isr_changed,
    log_flushed, set_group_lags, set_shard_sample, start_request,
};
pub use registry::{Format, GroupLag, Metrics, ShardSample};
