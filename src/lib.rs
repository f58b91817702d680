//! Sluice: a Kafka-compatible streaming platform, thread-per-core on glommio.
//!
//! The layers, top to bottom; a module uses only modules below it (the arrows), never one
//! above, and `tests/it/tidy.rs` checks every import against this order (its `LAYERS` table):
//! ```text
//!   cli ─────────────────────────────────────────────┐  (everything)
//!   bench ──► client ──► protocol ──► model ──► limits
//!   broker ──► server ──► protocol                   shard (runtime, mesh) ◄── server, storage
//!      ├────► cluster ──► storage (the Raft metadata quorum, its image and transport)
//!      ├────► group ────► protocol
//!      ├────► txn ──────► protocol
//!      └────► storage ──► model
//! ```
//! `metrics` (Prometheus counters, the `/metrics` endpoint) is a leaf beside `limits`: the server,
//! the broker and the storage call its hooks, and it names none of them.
//! `server` knows nothing of Kafka's APIs: it hands frames to a `server::Dispatch`, which the
//! broker implements. `client` never imports `broker`; `storage` never imports `protocol`.
//! Inside `broker/`: `dispatch` → `handlers` → `shard` → `transactions` → `metadata`, `groups` → `partition` →
//! leaves. `testing` is for tests and benches only. ARCHITECTURE.md tells the whole story.

#![warn(missing_docs)]
#![deny(unused_must_use)]

pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod group;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod socket;
pub mod storage;
#[doc(hidden)]
pub mod testing;
pub mod txn;
